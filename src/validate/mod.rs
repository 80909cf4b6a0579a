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
pub mod yaml;

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// The line of `file` the object is written at, when known (human and SARIF output; the
    /// JSON finding keeps the contract's six keys).
    #[serde(skip)]
    pub line: Option<usize>,
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
    /// `kubectl kustomize`, `kustomize`, `helm <version>` or `plain`.
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

/// Renders/reads every path and checks bundles: each kustomize directory and Helm chart is a bundle of its own
/// (two overlays of one base share object names and must not be read as one stack), and all
/// plain-manifest inputs together form one bundle, so that rules such as `metrics-scraped`
/// follow references across the files given. Each object is schema-checked as soon as its
/// document is parsed and only its [`bundle::Entry`] is kept.
pub fn validate_paths(paths: &[PathBuf]) -> Result<ValidateReport, InputError> {
    validate_with(paths, &input::Options::default())
}

/// [`validate_paths`] with the values for the Helm charts among `paths`.
pub fn validate_with(
    paths: &[PathBuf],
    options: &input::Options,
) -> Result<ValidateReport, InputError> {
    validate_for(paths, options, None)
}

/// [`validate_with`], also judging what moving to `front_door` would lose (rule `front-door`).
pub fn validate_for(
    paths: &[PathBuf],
    options: &input::Options,
    front_door: Option<rules::FrontDoor>,
) -> Result<ValidateReport, InputError> {
    options.check_against(paths)?;
    let mut report = ValidateReport {
        findings: Vec::new(),
        inputs: Vec::new(),
        render_ms: 0,
        check_ms: 0,
    };
    let mut plain_entries = Vec::new();
    let mut bundles = Vec::new();
    let mut checking = Duration::ZERO;
    for path in paths {
        let mut entries = Vec::new();
        let mut typing = Duration::ZERO;
        let mut summary = input::load(path, options, &mut |raw| {
            let started = Instant::now();
            entries.push(bundle::Entry::checked(&raw));
            typing += started.elapsed();
        })?;
        // Rendering and reading only: the schema checks done meanwhile count as checking.
        summary.render_ms = summary.render_ms.saturating_sub(typing.as_millis());
        report.render_ms += summary.render_ms;
        checking += typing;
        if summary.renderer == input::PLAIN_RENDERER {
            plain_entries.extend(entries);
        } else {
            bundles.push((Some(path.display().to_string()), entries));
        }
        report.inputs.push(summary);
    }
    if !plain_entries.is_empty() {
        bundles.push((None, plain_entries));
    }
    for (input, entries) in bundles {
        let started = Instant::now();
        let findings = check_entries_for(entries, front_door);
        checking += started.elapsed();
        report
            .findings
            .extend(findings.into_iter().map(|finding| Finding {
                input: input.clone(),
                ..finding
            }));
    }
    report.check_ms = checking.as_millis();
    Ok(report)
}

/// Schema and policy checks over already loaded objects; the benchmark times this apart from
/// rendering. Borrows the objects: the checks never change them.
pub fn check(objects: &[input::RawObject]) -> Vec<Finding> {
    check_entries(objects.iter().map(bundle::Entry::checked).collect())
}

/// Every rule over the schema-checked entries of one bundle.
pub fn check_entries(entries: Vec<bundle::Entry>) -> Vec<Finding> {
    check_entries_for(entries, None)
}

/// [`check_entries`] with the front door rule `front-door` judges for.
pub fn check_entries_for(
    entries: Vec<bundle::Entry>,
    front_door: Option<rules::FrontDoor>,
) -> Vec<Finding> {
    let mut bundle = bundle::Bundle::new(entries);
    bundle.front_door = front_door;
    let mut findings = Vec::new();
    for rule in rules::catalog() {
        (rule.check)(&bundle, &mut findings);
    }
    findings
}
