//! Reporters: turn validate findings and check results into human text, JSON or JUnit XML.
//! They only format; deciding pass/fail lives with the data.

mod checks;
mod findings;
mod sarif;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;

pub use checks::{CheckReport, LiveProgress};
pub use findings::validate_passed;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Junit,
    /// SARIF 2.1.0 (validate only): findings on the lines of the files that caused them.
    Sarif,
}

/// Where a report goes: standard output (colours only on a terminal) or a file (never colours).
pub struct Sink {
    pub format: Format,
    pub output: Option<PathBuf>,
}

impl Sink {
    pub fn new(format: Format, output: Option<PathBuf>) -> Self {
        Self { format, output }
    }

    /// Colours only for humans at a terminal, and never when NO_COLOR is set.
    pub fn colours(&self) -> bool {
        self.format == Format::Human
            && self.output.is_none()
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none()
    }

    pub fn emit(&self, text: &str) -> Result<()> {
        match &self.output {
            Some(path) => std::fs::write(path, text)
                .with_context(|| format!("writing the report to {}", path.display())),
            None => write_stdout(text).context("writing the report to standard output"),
        }
    }
}

/// Writes to standard output; a reader that went away (`| head`) ends the output, not the
/// program.
pub(crate) fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// ANSI styling that disappears when colours are off.
#[derive(Clone, Copy)]
pub(crate) struct Paint(pub bool);

impl Paint {
    pub fn red(self, text: &str) -> String {
        self.wrap("1;31", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
    fn wrap(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// `camunda-conformance rules`.
pub fn rules_text() -> String {
    let mut out = String::new();
    for rule in crate::validate::rules::catalog() {
        let _ = writeln!(
            out,
            "{:<28} {:<8} {}",
            rule.id,
            rule.severity.as_str(),
            rule.description
        );
    }
    out
}

/// `camunda-conformance checks`: every check, and the faults of the catalogue that fail it.
pub fn checks_text() -> String {
    use camunda_conformance_suites::faults;
    let mut out = String::new();
    for check in camunda_conformance_suites::catalog() {
        let disruptive = if check.disruptive {
            " (disruptive)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<36} {:<9} {}{disruptive}",
            check.id, check.suite, check.description
        );
        let proving: Vec<&str> = faults::proving(check.id).iter().map(|f| f.id).collect();
        let proof = if proving.is_empty() {
            "no fault in the local catalogue (Kubernetes only: proven on the kwok and kind backends)"
                .to_string()
        } else {
            format!("faults that fail it: {}", proving.join(", "))
        };
        let _ = writeln!(out, "{:<46} {proof}", "");
    }
    out
}
