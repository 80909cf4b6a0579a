//! Reports of `validate`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::{Format, Paint, Sink};
use crate::validate::{Finding, Severity, ValidateReport};

/// Errors always fail; warnings fail only under `--strict`.
pub fn validate_passed(report: &ValidateReport, strict: bool) -> bool {
    !report
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error || strict)
}

struct Counts {
    errors: usize,
    warnings: usize,
    objects: usize,
}

fn counts(report: &ValidateReport) -> Counts {
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    Counts {
        errors,
        warnings: report.findings.len() - errors,
        objects: report.inputs.iter().map(|i| i.objects).sum(),
    }
}

impl Sink {
    pub fn write_validate(&self, report: &ValidateReport, strict: bool) -> Result<()> {
        let text = match self.format {
            Format::Human => human(report, strict, Paint(self.colours())),
            Format::Json => json(report, strict)?,
            Format::Junit => junit(report)?,
            Format::Sarif => super::sarif::sarif(report).context("serialising the SARIF report")?,
        };
        self.emit(&text)
    }
}

/// "rendered by kubectl kustomize", or "read as plain YAML" for manifests read as they are.
fn how_read(renderer: &str) -> String {
    if renderer == crate::validate::input::PLAIN_RENDERER {
        "read as plain YAML".to_string()
    } else {
        format!("rendered by {renderer}")
    }
}

fn human(report: &ValidateReport, strict: bool, paint: Paint) -> String {
    let mut out = String::new();
    for input in &report.inputs {
        let _ = writeln!(
            out,
            "{}",
            paint.dim(&format!(
                "{}: {} objects, {} in {} ms",
                input.path.display(),
                input.objects,
                how_read(&input.renderer),
                input.render_ms
            ))
        );
    }
    // Grouped by resource (and source, as inputs may hold same-named objects) so that
    // everything to change in one object reads together.
    type Key<'a> = (&'a str, &'a str, Option<usize>, &'a str, &'a str);
    let mut by_resource: BTreeMap<Key, Vec<&Finding>> = BTreeMap::new();
    for finding in &report.findings {
        let key = (
            finding.input.as_deref().unwrap_or_default(),
            finding.file.as_deref().unwrap_or_default(),
            finding.line,
            finding.namespace.as_deref().unwrap_or_default(),
            finding.resource.as_str(),
        );
        by_resource.entry(key).or_default().push(finding);
    }
    for ((input, file, line, namespace, resource), findings) in &by_resource {
        let mut heading = resource.to_string();
        if !namespace.is_empty() {
            let _ = write!(heading, " in {namespace}");
        }
        match (file.is_empty(), line) {
            (true, _) => {}
            (false, Some(line)) => {
                let _ = write!(heading, " ({file}:{line})");
            }
            (false, None) => {
                let _ = write!(heading, " ({file})");
            }
        }
        if !input.is_empty() && report.inputs.len() > 1 {
            let _ = write!(heading, " of {input}");
        }
        let _ = writeln!(out, "\n{}", paint.bold(&heading));
        for finding in findings {
            let severity = match finding.severity {
                Severity::Error => paint.red("error  "),
                Severity::Warning => paint.yellow("warning"),
            };
            let _ = writeln!(out, "  {severity} {:<26} {}", finding.rule, finding.message);
        }
    }
    let counts = counts(report);
    let verdict = if validate_passed(report, strict) {
        paint.green("ok")
    } else {
        paint.red("FAILED")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: {} errors, {} warnings in {} objects from {} (render {} ms, checks {} ms)",
        counts.errors,
        counts.warnings,
        counts.objects,
        plural(report.inputs.len(), "input"),
        report.render_ms,
        report.check_ms
    );
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    findings: &'a [Finding],
    summary: JsonSummary<'a>,
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    passed: bool,
    strict: bool,
    errors: usize,
    warnings: usize,
    objects: usize,
    inputs: &'a [crate::validate::InputSummary],
    render_ms: u128,
    check_ms: u128,
}

fn json(report: &ValidateReport, strict: bool) -> Result<String> {
    let counts = counts(report);
    let doc = JsonReport {
        findings: &report.findings,
        summary: JsonSummary {
            passed: validate_passed(report, strict),
            strict,
            errors: counts.errors,
            warnings: counts.warnings,
            objects: counts.objects,
            inputs: &report.inputs,
            render_ms: report.render_ms,
            check_ms: report.check_ms,
        },
    };
    let mut text = serde_json::to_string_pretty(&doc).context("serialising the JSON report")?;
    text.push('\n');
    Ok(text)
}

/// One test case per rule: CI dashboards then track each rule over time.
fn junit(report: &ValidateReport) -> Result<String> {
    let mut suite = TestSuite::new("validate");
    for rule in crate::validate::rules::catalog() {
        let errors: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.rule == rule.id && f.severity == Severity::Error)
            .collect();
        let warnings: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.rule == rule.id && f.severity == Severity::Warning)
            .collect();
        let mut case = if errors.is_empty() {
            TestCase::new(rule.id, TestCaseStatus::success())
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("{} error finding(s)", errors.len()));
            status.set_description(describe(&errors));
            TestCase::new(rule.id, status)
        };
        case.set_classname("validate");
        if !warnings.is_empty() {
            case.set_system_out(describe(&warnings));
        }
        suite.add_test_case(case);
    }
    let mut junit = Report::new("camunda-conformance validate");
    junit.add_test_suite(suite);
    junit.to_string().context("serialising the JUnit report")
}

fn describe(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let place = f
                .file
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            format!("{}{place}: {}", f.resource, f.message)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
