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

/// `camunda-conformance checks`: every check, and the faults of the catalogue that fail it, per
/// backend whose `--faults` injects them; `(target)` marks a fault that edits only the
/// harness's view of the deployment.
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
        let proving = faults::proving(check.id);
        if proving.is_empty() {
            let _ = writeln!(
                out,
                "{:<46} no fault in the catalogue yet: nothing shows this check able to fail",
                ""
            );
        }
        for (backend, names) in by_backend(&proving) {
            let _ = writeln!(out, "{:<46} faults on {backend}: {}", "", names.join(", "));
        }
        if !proving.is_empty() && proving.iter().all(|f| f.target) {
            let _ = writeln!(
                out,
                "{:<46} only target faults: no fault of a real component fails it yet",
                ""
            );
        }
    }
    out
}

/// The faults' ids per backend that injects them, in the backends' order.
fn by_backend(
    proving: &[&camunda_conformance_suites::faults::FaultInfo],
) -> Vec<(String, Vec<String>)> {
    use camunda_conformance_suites::Backend;
    [
        Backend::Local,
        Backend::Node,
        Backend::Kind,
        Backend::Existing,
        Backend::Kwok,
    ]
    .into_iter()
    .filter_map(|backend| {
        let names: Vec<String> = proving
            .iter()
            .filter(|f| f.injected_on(backend))
            .map(|f| {
                if f.target {
                    format!("{} (target)", f.id)
                } else {
                    f.id.to_string()
                }
            })
            .collect();
        (!names.is_empty()).then(|| (format!("{backend:?}").to_lowercase(), names))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_show_their_faults_per_backend_and_mark_target_faults() {
        let text = checks_text();
        let block = |id: &str| -> String {
            let start = text.find(&format!("{id} ")).unwrap();
            text[start..]
                .lines()
                .take_while(|l| l.starts_with(' ') || l.starts_with(id))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let tls = block("tls.certificate");
        assert!(tls.contains("faults on local: other-ca"), "{tls}");
        assert!(tls.contains("faults on node: other-ca"), "{tls}");
        let distinct = block("cluster.distinct-replicas");
        assert!(
            distinct.contains("faults on local: same-jvm-twice (target)"),
            "{distinct}"
        );
        assert!(distinct.contains("only target faults"), "{distinct}");
        assert!(!tls.contains("only target faults"), "{tls}");
        let hpa = block("scaling.hpa-metrics");
        assert!(
            hpa.contains("faults on node: metrics-server-stopped, hpa-metric-unresolved"),
            "{hpa}"
        );
        let new_pods = block("scaling.new-pods-ready");
        assert!(
            new_pods.contains("no fault in the catalogue yet"),
            "{new_pods}"
        );
    }
}
