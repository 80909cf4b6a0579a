//! The fault matrix every backend's `--faults` produces: one fault at a time, its probe (the
//! suites of the checks it must fail, through `camunda-conformance run`), the judgement of each
//! expected check by its symptom words, the heal run after the fault is undone, and the matrix in
//! human, JSON and JUnit form. How a fault is put into a stack is the backend's business
//! (`local::faults`, `kind::faults`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camunda_conformance::run::PASSWORD_ENV;
use camunda_conformance_suites::faults::FaultInfo;
use camunda_conformance_suites::SessionMode;
use serde::{Deserialize, Serialize};

/// One `camunda-conformance run` of a few suites.
const PROBE_BOUND: Duration = Duration::from_secs(600);

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The line that opens a fault's part of the run: what is broken and what must fail.
pub fn announce(fault: &FaultInfo, mode: SessionMode) {
    println!(
        "\nfault {}: {} -> expecting {} to fail",
        fault.id,
        fault.description,
        fault
            .expected(mode)
            .map(|e| e.check)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Every check the fault touched: the expected ones and any other that failed under it (the
/// heal run must see them all pass again).
pub fn touched(fault: &FaultInfo, mode: SessionMode, probed: &Result<Report>) -> Vec<String> {
    fault
        .expected(mode)
        .map(|e| e.check.to_string())
        .chain(probed.iter().flat_map(|report| {
            report
                .checks
                .iter()
                .filter(|c| c.status == "fail")
                .map(|c| c.id.clone())
        }))
        .collect()
}

/// The matrix rows of one fault: each expected check is detected when it failed and its
/// message holds the expected words (case-insensitive). Prints why the stack did not heal, then
/// one line per check.
pub fn judge(
    fault: &FaultInfo,
    mode: SessionMode,
    probed: &Result<Report>,
    healed: &Result<()>,
    started: Instant,
) -> Vec<MatrixRow> {
    if let Err(err) = healed {
        println!("  NOT HEALED: {err:#}");
    }
    let healed = healed.is_ok();
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    fault
        .expected(mode)
        .map(|expect| {
            let (observed, message) = match probed {
                Ok(report) => report
                    .checks
                    .iter()
                    .find(|c| c.id == expect.check)
                    .map(|c| (c.status.clone(), c.message.clone()))
                    .unwrap_or_else(|| ("error".into(), "no result for the check".into())),
                Err(err) => ("error".into(), format!("the probe could not run: {err:#}")),
            };
            let detected = observed == "fail"
                && message
                    .to_lowercase()
                    .contains(&expect.because.to_lowercase());
            println!(
                "  {:<8} {:<36} {}",
                if detected { "detected" } else { "MISSED" },
                expect.check,
                first_line(&message)
            );
            MatrixRow {
                fault: fault.id.into(),
                description: fault.description.into(),
                check: expect.check.into(),
                target_fault: fault.target,
                expected_words: expect.because.into(),
                observed,
                detected,
                healed,
                message,
                duration_ms,
            }
        })
        .collect()
}

/// One row of the fault matrix: a fault, one check it must fail, and what happened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatrixRow {
    pub fault: String,
    pub description: String,
    pub check: String,
    /// The fault edits only the target description, not the deployment.
    pub target_fault: bool,
    pub expected_words: String,
    /// pass | fail | skip, or `error` when the probe could not run.
    pub observed: String,
    pub detected: bool,
    /// After the fault was undone, its suites passed again.
    pub healed: bool,
    pub message: String,
    pub duration_ms: u64,
}

/// What `camunda-conformance run --format json` reports (only the fields used here).
#[derive(Deserialize)]
pub struct Report {
    pub checks: Vec<ReportCheck>,
}

#[derive(Deserialize)]
pub struct ReportCheck {
    pub id: String,
    pub status: String,
    pub message: String,
}

/// `camunda-conformance run --suite S,... --format json --output F` and its report.
pub fn probe(
    cli: &Path,
    target: &Path,
    suites: &[String],
    output: &Path,
    strict: bool,
    password: Option<&str>,
) -> Result<Report> {
    let mut command = Command::new(cli);
    // The CLI is another process: a password reaches it in its environment, never on disk.
    if let Some(password) = password {
        command.env(PASSWORD_ENV, password);
    }
    command
        .arg("run")
        .arg("--target")
        .arg(target)
        .args(["--suite", &suites.join(","), "--format", "json", "--output"])
        .arg(output);
    if strict {
        command.arg("--strict");
    }
    // Its live progress goes beside the JSON report, not onto the terminal.
    let ran = crate::command::output(command, "camunda-conformance run", PROBE_BOUND)?;
    let log = output.with_extension("log");
    write(
        &log,
        &format!(
            "{}{}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        ),
    )?;
    if !matches!(ran.status.code(), Some(0 | 1)) {
        bail!(
            "camunda-conformance run could not run ({}); see {}",
            ran.status,
            log.display()
        );
    }
    let text =
        std::fs::read_to_string(output).with_context(|| format!("reading {}", output.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", output.display()))
}

/// After the fault was undone: no check fails, and every check it touched passes again (a
/// touched check that skips proves nothing healed).
pub fn heal_problems(report: &Report, touched: &[String]) -> Result<()> {
    let problems: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == "fail" || (c.status != "pass" && touched.contains(&c.id)))
        .map(|c| format!("{} {}: {}", c.id, c.status, first_line(&c.message)))
        .chain(
            touched
                .iter()
                .filter(|id| !report.checks.iter().any(|c| &c.id == *id))
                .map(|id| format!("{id}: not run by the heal run")),
        )
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("after undoing the fault: {}", problems.join("; "))
    }
}

/// The suites a fault's expected checks belong to, in run order.
pub fn suites_of(fault: &FaultInfo, mode: SessionMode) -> Vec<String> {
    let catalog = camunda_conformance_suites::catalog();
    let mut suites: Vec<String> = catalog
        .iter()
        .filter(|c| fault.expected(mode).any(|e| e.check == c.id))
        .map(|c| c.suite.to_string())
        .collect();
    suites.dedup();
    suites
}

pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Prints the matrix and writes fault-matrix.{txt,json,xml}; `Ok(true)` when every fault was
/// detected and every fault healed.
pub fn report(rows: &[MatrixRow], dir: &Path, took: Duration) -> Result<bool> {
    let text = matrix_text(rows, took);
    println!("\n{text}");
    write(&dir.join("fault-matrix.txt"), &text)?;
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "faults": rows,
        "summary": {
            "faults": rows.iter().map(|r| &r.fault).collect::<std::collections::BTreeSet<_>>().len(),
            "expectations": rows.len(),
            "detected": rows.iter().filter(|r| r.detected).count(),
            "target_faults": rows.iter().filter(|r| r.target_fault).map(|r| &r.fault).collect::<std::collections::BTreeSet<_>>().len(),
            "healed": rows.iter().filter(|r| r.healed).count(),
            "duration_ms": took.as_millis(),
        }
    }))?;
    write(&dir.join("fault-matrix.json"), &json)?;
    write(&dir.join("fault-matrix.xml"), &matrix_junit(rows, took)?)?;
    println!(
        "fault matrix: {} (also .json, .xml)",
        dir.join("fault-matrix.txt").display()
    );
    Ok(rows.iter().all(|r| r.detected && r.healed))
}

fn matrix_text(rows: &[MatrixRow], took: Duration) -> String {
    let mut out = format!(
        "{:<32} {:<36} {:<8} {:<8} {:<6} message\n",
        "fault", "expected failing check", "observed", "detected", "healed"
    );
    for row in rows {
        let mut message: String = first_line(&row.message).chars().take(120).collect();
        if message.len() < row.message.len() {
            message.push('…');
        }
        let fault = if row.target_fault {
            format!("{} (target)", row.fault)
        } else {
            row.fault.clone()
        };
        out.push_str(&format!(
            "{:<32} {:<36} {:<8} {:<8} {:<6} {message}\n",
            fault,
            row.check,
            row.observed,
            if row.detected { "yes" } else { "NO" },
            if row.healed { "yes" } else { "NO" },
        ));
    }
    let detected = rows.iter().filter(|r| r.detected).count();
    let healed = rows.iter().filter(|r| r.healed).count();
    out.push_str(&format!(
        "{detected} of {} expectations detected, {healed} healed, in {:.0} s; (target): a target fault, which edits only the harness's view of the stack\n",
        rows.len(),
        took.as_secs_f64()
    ));
    out
}

/// One test case per (fault, check): a failure when the check did not fail for the expected
/// reason or the stack did not heal.
fn matrix_junit(rows: &[MatrixRow], took: Duration) -> Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("faults");
    for row in rows {
        let status = if row.detected && row.healed {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(if row.detected {
                "the stack did not heal after the fault was undone".to_string()
            } else {
                format!(
                    "expected {} to fail with `{}`; observed {}",
                    row.check, row.expected_words, row.observed
                )
            });
            status.set_description(row.message.clone());
            status
        };
        let kind = if row.target_fault { " (target)" } else { "" };
        let mut case = TestCase::new(format!("{}{kind} -> {}", row.fault, row.check), status);
        case.set_classname(row.fault.clone());
        case.set_time(Duration::from_millis(row.duration_ms));
        suite.add_test_case(case);
    }
    let mut report = Report::new("camunda-conformance fault matrix");
    report.set_time(took);
    report.add_test_suite(suite);
    report
        .to_string()
        .context("serialising the fault matrix as JUnit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use camunda_conformance_suites::faults;

    fn row(detected: bool, healed: bool) -> MatrixRow {
        MatrixRow {
            fault: "single-upstream".into(),
            description: "the ingress has a single upstream replica".into(),
            check: "sessions.fresh-clients-spread".into(),
            target_fault: false,
            expected_words: "expected at least two replicas".into(),
            observed: if detected { "fail" } else { "pass" }.into(),
            detected,
            healed,
            message: "camunda-0 grew by 30, camunda-1 by 0".into(),
            duration_ms: 1200,
        }
    }

    #[test]
    fn the_matrix_fails_on_a_missed_fault_or_a_stack_that_did_not_heal() {
        let dir = tempfile::tempdir().unwrap();
        assert!(report(&[row(true, true)], dir.path(), Duration::from_secs(3)).unwrap());
        assert!(!report(&[row(false, true)], dir.path(), Duration::from_secs(3)).unwrap());
        assert!(!report(&[row(true, false)], dir.path(), Duration::from_secs(3)).unwrap());
        let junit = std::fs::read_to_string(dir.path().join("fault-matrix.xml")).unwrap();
        assert!(
            junit.contains("single-upstream -&gt; sessions.fresh-clients-spread"),
            "{junit}"
        );
        assert!(junit.contains("did not heal"), "{junit}");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("fault-matrix.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["summary"]["healed"], 0);
        assert_eq!(json["faults"][0]["check"], "sessions.fresh-clients-spread");
    }

    #[test]
    fn every_fault_of_the_catalogue_runs_its_expected_checks_suites() {
        for fault in faults::CATALOGUE {
            for mode in [SessionMode::Sticky, SessionMode::Shared] {
                if !fault.applies_to(mode) {
                    continue;
                }
                let suites = suites_of(fault, mode);
                assert!(!suites.is_empty(), "{} runs no suite", fault.id);
                for expect in fault.expected(mode) {
                    let suite = expect.check.split('.').next().unwrap();
                    assert!(suites.iter().any(|s| s == suite), "{}: {suite}", fault.id);
                }
            }
        }
    }
}

#[cfg(test)]
mod heal_tests {
    use super::*;

    fn check(id: &str, status: &str) -> ReportCheck {
        ReportCheck {
            id: id.into(),
            status: status.into(),
            message: format!("{id} says {status}"),
        }
    }

    #[test]
    fn a_heal_needs_every_touched_check_to_pass_and_no_check_to_fail() {
        let touched = vec!["auth.no-credentials".to_string()];
        let report = |checks| Report { checks };
        assert!(heal_problems(
            &report(vec![
                check("auth.no-credentials", "pass"),
                check("auth.other", "skip")
            ]),
            &touched
        )
        .is_ok());
        for (checks, seen) in [
            (
                vec![check("auth.no-credentials", "skip")],
                "auth.no-credentials skip",
            ),
            (
                vec![
                    check("auth.no-credentials", "pass"),
                    check("auth.other", "fail"),
                ],
                "auth.other fail",
            ),
            (
                vec![check("auth.other", "pass")],
                "auth.no-credentials: not run",
            ),
        ] {
            let err = heal_problems(&report(checks), &touched).unwrap_err();
            assert!(format!("{err:#}").contains(seen), "{err:#}");
        }
    }
}
