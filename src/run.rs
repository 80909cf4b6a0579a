//! `camunda-conformance run`: load the target, run the suites with live progress, report.

use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use camunda_conformance_suites::{Suite, Target};

use crate::report::{CheckReport, Format, LiveProgress, Sink};

/// `Ok(false)` when a check failed; `Err` when the target could not be read (exit 2).
pub fn command(
    target_file: &Path,
    suite_names: &[String],
    report_dir: Option<&Path>,
    strict: bool,
    sink: Sink,
) -> Result<bool> {
    let target = Target::load(target_file)?;
    let suites = select_suites(suite_names)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let started = Instant::now();
    let mut progress = LiveProgress::new(&sink);
    let results = runtime.block_on(camunda_conformance_suites::run(
        &target,
        &suites,
        strict,
        &mut |event| progress.on_event(event),
    ));
    progress.finish();
    let report = CheckReport {
        target: target.name.clone(),
        results,
        duration: started.elapsed(),
    };

    if let Some(dir) = report_dir {
        write_report_dir(&report, dir)?;
    }
    sink.write_checks(&report)?;
    Ok(report.passed())
}

fn select_suites(names: &[String]) -> Result<Vec<Suite>> {
    if names.is_empty() {
        return Ok(Suite::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            Suite::from_str(name).map_err(|_| {
                anyhow::anyhow!(
                    "unknown suite `{name}` in --suite; known: {}",
                    Suite::ALL.map(|s| s.to_string()).join(", ")
                )
            })
        })
        .collect()
}

/// The machine-readable reports CI publishes, beside whatever went to the terminal.
fn write_report_dir(report: &CheckReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the report folder {}", dir.display()))?;
    for (format, name) in [
        (Format::Json, "report.json"),
        (Format::Junit, "junit.xml"),
        (Format::Human, "report.txt"),
    ] {
        Sink::new(format, Some(dir.join(name))).write_checks(report)?;
    }
    Ok(())
}
