//! `validate` on a Helm chart: rendered by `helm template` with the values given, the renderer
//! and its version said, findings on the template each object came from; and the errors a user
//! gets without helm, with a missing values file, a failing template or values and no chart.

use std::path::PathBuf;

use assert_cmd::Command;
use camunda_conformance::validate::input::{Options, HELM_INSTALL, HELM_VERSION};
use camunda_conformance::validate::validate_with;
use predicates::prelude::*;

const CHART: &str = "fixtures/validate/helm/camunda";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn options(values: &[&str], set: &[&str]) -> Options {
    Options {
        values: values.iter().map(|v| repo(v)).collect(),
        set: set.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn a_chart_is_rendered_with_its_values() {
    let report = validate_with(&[repo(CHART)], &options(&[], &[])).expect("renders");
    let input = &report.inputs[0];
    assert_eq!(input.renderer, format!("helm {HELM_VERSION}"));
    // Secret, Service, Deployment; the HPA only when autoscaling is on.
    assert_eq!(input.objects, 3);
    assert!(
        !report.findings.iter().any(|f| f.rule == "session-strategy"),
        "one replica needs no session strategy: {:?}",
        report.findings
    );

    let prod = validate_with(
        &[repo(CHART)],
        &options(
            &[&format!("{CHART}/values-prod.yaml")],
            &["autoscaling.enabled=true"],
        ),
    )
    .expect("renders");
    assert_eq!(
        prod.inputs[0].objects, 4,
        "--set autoscaling.enabled=true adds the HPA"
    );
    let session = prod
        .findings
        .iter()
        .find(|f| f.rule == "session-strategy")
        .expect("2..5 replicas with in-memory sessions and no affinity");
    // Shown relative to the working directory (the package root under `cargo test`).
    assert_eq!(
        session.file.as_deref(),
        Some("fixtures/validate/helm/camunda/templates/deployment.yaml")
    );
    assert_eq!(
        session.line,
        Some(2),
        "the template's `kind: Deployment` line"
    );
    assert!(
        session.message.contains("up to 5 replicas"),
        "{}",
        session.message
    );
}

#[test]
fn the_ci_script_installs_the_pinned_helm() {
    let script = std::fs::read_to_string(repo(".ci/run")).unwrap();
    assert!(
        script.contains(HELM_INSTALL),
        ".ci/run must run `{HELM_INSTALL}`"
    );
    assert!(HELM_INSTALL.ends_with(&format!("@{HELM_VERSION}")));
}

fn validate() -> Command {
    let mut command = Command::cargo_bin("camunda-conformance").unwrap();
    command.current_dir(repo("")).arg("validate");
    command
}

#[test]
fn without_helm_the_error_names_the_install_command() {
    // A PATH with the tools of the system but not the folder holding helm.
    let dir = tempfile::tempdir().unwrap();
    validate()
        .env("PATH", dir.path())
        .arg(CHART)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(CHART))
        .stderr(predicate::str::contains(HELM_INSTALL));
}

#[test]
fn a_missing_values_file_is_named_with_the_chart() {
    validate()
        .args([CHART, "-f", "values-nowhere.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{CHART}: values file values-nowhere.yaml: no such file"
        )));
}

#[test]
fn a_failing_template_names_the_chart_the_values_and_the_template() {
    let values = format!("{CHART}/values-prod.yaml");
    validate()
        .args([CHART, "-f", &values, "--set", "database.url=null"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{CHART} with values {values} and 1 --set value(s): helm template"
        )))
        .stderr(predicate::str::contains("database.url is required"))
        .stderr(predicate::str::contains("templates/deployment.yaml"));
}

#[test]
fn values_without_a_chart_are_refused() {
    validate()
        .args(["manifests/overlays/e2e", "--set", "a=b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("apply to Helm charts"));
}
