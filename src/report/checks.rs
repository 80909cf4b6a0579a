//! Reports of `run`: live progress while checks run, then human text, JSON or JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use anyhow::{Context, Result};
use camunda_conformance_suites::{CheckResult, RunEvent, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::{Format, Paint, Sink};

/// The results of one `run`, with what they ran against.
pub struct CheckReport {
    pub target: String,
    pub results: Vec<CheckResult>,
    pub duration: Duration,
    /// `run --strict`: a run where no check ran proves nothing and fails.
    pub strict: bool,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        !self.results.iter().any(|r| r.status == Status::Fail) && !self.nothing_ran()
    }

    /// Under `--strict`, no check passed or failed: everything skipped or was not run.
    fn nothing_ran(&self) -> bool {
        self.strict
            && !self
                .results
                .iter()
                .any(|r| matches!(r.status, Status::Pass | Status::Fail))
    }

    /// Results of this status; skips exclude the checks a read-only target did not run.
    fn count(&self, status: Status) -> usize {
        self.results
            .iter()
            .filter(|r| r.status == status && !r.not_run)
            .count()
    }

    fn not_run(&self) -> usize {
        self.results.iter().filter(|r| r.not_run).count()
    }

    fn simulated(&self) -> usize {
        self.results.iter().filter(|r| r.simulated).count()
    }

    /// `P passed[ (K on simulated load)], F failed[, N not run (read-only)], S skipped[ (nothing
    /// ran: --strict fails)]`.
    pub fn summary_line(&self) -> String {
        let simulated = match self.simulated() {
            0 => String::new(),
            n => format!(" ({n} on simulated load)"),
        };
        let not_run = match self.not_run() {
            0 => String::new(),
            n => format!(", {n} not run (read-only)"),
        };
        let nothing = if self.nothing_ran() {
            " (nothing ran: --strict fails)"
        } else {
            ""
        };
        format!(
            "{} passed{simulated}, {} failed{not_run}, {} skipped{nothing}",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip)
        )
    }
}

/// Shows each check as it finishes, and a spinner naming the running one (terminal only).
/// With a human report on standard output the finished lines are the report itself; otherwise
/// they go to standard error so that CI logs still show progress.
pub struct LiveProgress {
    spinner: ProgressBar,
    paint: Paint,
    to_stdout: bool,
}

impl LiveProgress {
    pub fn new(sink: &Sink) -> Self {
        let to_stdout = sink.format == Format::Human && sink.output.is_none();
        let spinner = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            spinner,
            paint: Paint(to_stdout && sink.colours()),
            to_stdout,
        }
    }

    pub fn on_event(&mut self, event: RunEvent) {
        match event {
            RunEvent::SuiteStarted(suite) => self.line(&self.paint.bold(&format!("suite {suite}"))),
            RunEvent::CheckStarted { id, .. } => {
                self.spinner.reset_elapsed();
                self.spinner.set_message(id);
            }
            RunEvent::CheckFinished(result) => self.line(&human_result(&result, self.paint)),
        }
    }

    fn line(&self, text: &str) {
        self.spinner.suspend(|| {
            let line = format!("{text}\n");
            // Progress is best effort: a closed pipe must not end the run.
            let _ = if self.to_stdout {
                super::write_stdout(&line)
            } else {
                std::io::stderr().write_all(line.as_bytes())
            };
        });
    }

    pub fn finish(self) {
        self.spinner.finish_and_clear();
    }
}

fn human_result(result: &CheckResult, paint: Paint) -> String {
    let status = match result.status {
        Status::Pass if result.simulated => paint.green("PASS (simulated)"),
        Status::Pass => paint.green("PASS"),
        Status::Fail => paint.red("FAIL"),
        Status::Skip if result.not_run => paint.yellow("NOT RUN (read-only)"),
        Status::Skip => paint.yellow("SKIP"),
    };
    let mut line = format!(
        "  {status} {:<40} {}",
        result.id,
        paint.dim(&format!("{} ms", result.duration_ms))
    );
    for message_line in result.message.lines() {
        let _ = write!(line, "\n         {message_line}");
    }
    line
}

impl Sink {
    /// The final report. For a human report on standard output the checks were already shown
    /// live, so only the summary remains.
    pub fn write_checks(&self, report: &CheckReport) -> Result<()> {
        let text = match self.format {
            Format::Human if self.output.is_none() => human_summary(report, Paint(self.colours())),
            Format::Human => human_full(report),
            Format::Json => json(report)?,
            Format::Junit => junit(report)?,
            Format::Sarif => anyhow::bail!("--format sarif is for validate findings; run reports checks as human, json or junit"),
        };
        self.emit(&text)
    }
}

fn human_summary(report: &CheckReport, paint: Paint) -> String {
    let verdict = if report.passed() {
        paint.green("ok")
    } else {
        paint.red("FAILED")
    };
    format!(
        "\n{verdict}: {} against {} in {:.1} s\n",
        report.summary_line(),
        report.target,
        report.duration.as_secs_f64()
    )
}

fn human_full(report: &CheckReport) -> String {
    let mut out = String::new();
    for result in &report.results {
        let _ = writeln!(out, "{}", human_result(result, Paint(false)));
    }
    out.push_str(&human_summary(report, Paint(false)));
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    target: &'a str,
    checks: &'a [CheckResult],
    summary: JsonSummary,
}

#[derive(Serialize)]
struct JsonSummary {
    passed: usize,
    failed: usize,
    skipped: usize,
    /// Checks a read-only target did not run (not among `skipped`).
    not_run: usize,
    /// Passes on load the harness simulated (kwok), among `passed`.
    simulated: usize,
    /// `--strict` and no check passed or failed.
    nothing_ran: bool,
    duration_ms: u128,
}

pub(super) fn json(report: &CheckReport) -> Result<String> {
    let doc = JsonReport {
        target: &report.target,
        checks: &report.results,
        summary: JsonSummary {
            passed: report.count(Status::Pass),
            failed: report.count(Status::Fail),
            skipped: report.count(Status::Skip),
            not_run: report.not_run(),
            simulated: report.simulated(),
            nothing_ran: report.nothing_ran(),
            duration_ms: report.duration.as_millis(),
        },
    };
    let mut text = serde_json::to_string_pretty(&doc).context("serialising the JSON report")?;
    text.push('\n');
    Ok(text)
}

/// One JUnit test suite per live suite, one test case per check.
pub(super) fn junit(report: &CheckReport) -> Result<String> {
    let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
    for result in &report.results {
        let suite_name = result.suite.to_string();
        let status = match result.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(first_line(&result.message));
                status.set_description(result.message.clone());
                status
            }
            Status::Skip => {
                let mut status = TestCaseStatus::skipped();
                let prefix = if result.not_run {
                    "not run (read-only): "
                } else {
                    ""
                };
                status.set_message(format!("{prefix}{}", first_line(&result.message)));
                status
            }
        };
        let mut case = TestCase::new(result.id.clone(), status);
        case.set_classname(suite_name.clone());
        case.set_time(Duration::from_millis(result.duration_ms));
        if result.simulated {
            case.set_system_out(format!("{SIMULATED_NOTE}: {}", result.message));
        } else if result.status == Status::Pass && !result.message.is_empty() {
            case.set_system_out(result.message.clone());
        }
        suites
            .entry(suite_name.clone())
            .or_insert_with(|| TestSuite::new(suite_name))
            .add_test_case(case);
    }
    if report.nothing_ran() {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message("no check passed or failed: every one skipped or was not run, and --strict fails a run that proves nothing");
        let mut case = TestCase::new("nothing-ran", status);
        case.set_classname("run");
        suites
            .entry("run".into())
            .or_insert_with(|| TestSuite::new("run"))
            .add_test_case(case);
    }
    let mut junit = Report::new(format!(
        "camunda-conformance run ({}): {}",
        report.target,
        report.summary_line()
    ));
    junit.set_time(report.duration);
    junit.add_test_suites(suites.into_values());
    junit.to_string().context("serialising the JUnit report")
}

/// What a simulated pass says in JUnit, where a passing case has no status message.
const SIMULATED_NOTE: &str =
    "simulated: passed on CPU the harness wrote into kwok's pods, not on real load";

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use camunda_conformance_suites::Suite;

    fn result(id: &str, status: Status, not_run: bool) -> CheckResult {
        CheckResult {
            id: id.into(),
            suite: Suite::Cluster,
            status,
            duration_ms: 1,
            message: "why".into(),
            not_run,
            simulated: false,
        }
    }

    fn report(results: Vec<CheckResult>, strict: bool) -> CheckReport {
        CheckReport {
            target: "unit".into(),
            results,
            duration: Duration::from_millis(5),
            strict,
        }
    }

    #[test]
    fn read_only_checks_are_counted_apart_from_passes_and_skips() {
        let report = report(
            vec![
                result("cluster.a", Status::Pass, false),
                result("cluster.b", Status::Skip, true),
                result("cluster.c", Status::Skip, true),
                result("cluster.d", Status::Skip, false),
            ],
            true,
        );
        assert!(report.passed());
        assert_eq!(
            report.summary_line(),
            "1 passed, 0 failed, 2 not run (read-only), 1 skipped"
        );
        let json: serde_json::Value = serde_json::from_str(&json(&report).unwrap()).unwrap();
        assert_eq!(json["summary"]["skipped"], 1);
        assert_eq!(json["summary"]["not_run"], 2);
        assert_eq!(json["summary"]["nothing_ran"], false);
        assert_eq!(json["checks"][1]["not_run"], true);
        assert!(json["checks"][0].get("not_run").is_none());
        let xml = junit(&report).unwrap();
        assert!(xml.contains("not run (read-only): why"), "{xml}");
        assert!(xml.contains("2 not run (read-only)"), "{xml}");
        assert!(!xml.contains("nothing-ran"), "{xml}");
        let human = human_full(&report);
        assert!(human.contains("NOT RUN (read-only) cluster.b"), "{human}");
        assert!(human.contains("SKIP cluster.d"), "{human}");
    }

    #[test]
    fn simulated_passes_say_so_in_every_format() {
        let mut simulated = result("scaling.scale-out", Status::Pass, false);
        simulated.suite = Suite::Scaling;
        simulated.simulated = true;
        let report = report(
            vec![simulated, result("cluster.a", Status::Pass, false)],
            false,
        );
        assert_eq!(
            report.summary_line(),
            "2 passed (1 on simulated load), 0 failed, 0 skipped"
        );
        let human = human_full(&report);
        assert!(
            human.contains("PASS (simulated) scaling.scale-out"),
            "{human}"
        );
        assert!(human.contains("  PASS cluster.a"), "{human}");
        let json: serde_json::Value = serde_json::from_str(&json(&report).unwrap()).unwrap();
        assert_eq!(json["summary"]["simulated"], 1);
        assert_eq!(json["checks"][0]["simulated"], true);
        assert!(json["checks"][1].get("simulated").is_none());
        let xml = junit(&report).unwrap();
        assert_eq!(xml.matches("simulated: passed on CPU").count(), 1, "{xml}");
    }

    #[test]
    fn under_strict_a_run_where_nothing_ran_fails_in_every_format() {
        let skipped = vec![
            result("cluster.a", Status::Skip, true),
            result("cluster.b", Status::Skip, false),
        ];
        assert!(report(skipped.clone(), false).passed());
        let strict = report(skipped, true);
        assert!(!strict.passed());
        assert!(
            strict
                .summary_line()
                .ends_with("(nothing ran: --strict fails)"),
            "{}",
            strict.summary_line()
        );
        assert!(human_full(&strict).contains("FAILED"));
        let json: serde_json::Value = serde_json::from_str(&json(&strict).unwrap()).unwrap();
        assert_eq!(json["summary"]["nothing_ran"], true);
        let xml = junit(&strict).unwrap();
        assert!(xml.contains("nothing-ran"), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        // A failure is something that ran.
        let failed = report(vec![result("cluster.a", Status::Fail, false)], true);
        assert!(!failed.passed());
        assert!(!failed.nothing_ran());
        assert!(report(vec![result("cluster.a", Status::Pass, false)], true).passed());
    }
}
