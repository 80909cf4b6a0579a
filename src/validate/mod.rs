//! `camunda-conformance validate`: offline checks of kustomize overlays and plain manifests.
//!
//! Pipeline: [`input`] renders or reads every path into objects, [`schema`] checks each object
//! against the typed Kubernetes/CRD schemas and keeps the typed value, [`bundle`] indexes the
//! whole set, and every rule of [`rules`] is a small function over that index.

pub mod api_server;
pub mod bundle;
mod env;
pub mod input;
pub mod routes;
pub mod rules;
pub mod schema;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

pub use input::InputError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// `Kind/name`.
    pub resource: String,
    pub namespace: Option<String>,
    /// The manifest the object came from, or the kustomization that generated it.
    pub file: Option<String>,
    pub message: String,
    /// The kustomize directory given on the command line whose bundle this came from (absent for
    /// plain manifests): two overlays of one base share files and object names. Human output
    /// only: the JSON finding keeps exactly the contract's six keys.
    #[serde(skip)]
    pub input: Option<String>,
}

/// One rendered or read input path.
#[derive(Clone, Debug, Serialize)]
pub struct InputSummary {
    pub path: PathBuf,
    /// `kubectl kustomize`, `kustomize` or `plain`.
    pub renderer: String,
    pub objects: usize,
    pub render_ms: u128,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidateReport {
    pub findings: Vec<Finding>,
    pub inputs: Vec<InputSummary>,
    pub render_ms: u128,
    pub check_ms: u128,
}

/// Renders/reads every path and checks bundles: each kustomize directory is a bundle of its own
/// (two overlays of one base share object names and must not be read as one stack), and all
/// plain-manifest inputs together form one bundle, so that rules such as `metrics-scraped`
/// follow references across the files given.
pub fn validate_paths(paths: &[PathBuf]) -> Result<ValidateReport, InputError> {
    let mut report = ValidateReport {
        findings: Vec::new(),
        inputs: Vec::new(),
        render_ms: 0,
        check_ms: 0,
    };
    let mut plain_objects = Vec::new();
    let mut bundles = Vec::new();
    for path in paths {
        let started = Instant::now();
        let loaded = input::load(path)?;
        report.render_ms += started.elapsed().as_millis();
        if loaded.summary.renderer == input::PLAIN_RENDERER {
            plain_objects.extend(loaded.objects);
        } else {
            bundles.push((Some(path.display().to_string()), loaded.objects));
        }
        report.inputs.push(loaded.summary);
    }
    if !plain_objects.is_empty() {
        bundles.push((None, plain_objects));
    }
    for (input, objects) in &bundles {
        let (findings, check_ms) = check_timed(objects);
        report.check_ms += check_ms;
        report
            .findings
            .extend(findings.into_iter().map(|finding| Finding {
                input: input.clone(),
                ..finding
            }));
    }
    Ok(report)
}

/// Schema and policy checks over already loaded objects; the benchmark times this apart from
/// rendering. Borrows the objects: the checks never change them.
pub fn check(objects: &[input::RawObject]) -> Vec<Finding> {
    let entries = objects
        .iter()
        .map(|raw| {
            let (typed, schema_findings) = schema::check(raw);
            bundle::Entry::new(raw, typed, schema_findings)
        })
        .collect();
    let bundle = bundle::Bundle::new(entries);
    let mut findings = Vec::new();
    for rule in rules::catalog() {
        (rule.check)(&bundle, &mut findings);
    }
    findings
}

fn check_timed(objects: &[input::RawObject]) -> (Vec<Finding>, u128) {
    let started = Instant::now();
    let findings = check(objects);
    (findings, started.elapsed().as_millis())
}
