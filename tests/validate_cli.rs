//! `camunda-conformance validate` through the real binary: exit codes 0/1/2 and the JSON shape
//! other tools depend on.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;
use rstest::rstest;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn validate() -> Command {
    let mut command = Command::cargo_bin("camunda-conformance").expect("binary built");
    command.arg("validate");
    command
}

#[rstest]
#[case::clean_overlay(&["manifests/overlays/e2e"], 0)]
#[case::error_finding(&["fixtures/validate/broken/metrics-scraped/seed-mistake"], 1)]
#[case::warning_only(&["fixtures/validate/broken/pdb/missing"], 0)]
#[case::warning_strict(&["--strict", "fixtures/validate/broken/pdb/missing"], 1)]
#[case::out_of_band_secret(&["fixtures/validate/broken/reference/missing-secret"], 0)]
#[case::out_of_band_secret_strict(&["--strict", "fixtures/validate/broken/reference/missing-secret"], 1)]
#[case::missing_path(&["fixtures/validate/does-not-exist"], 2)]
fn exit_codes(#[case] args: &[&str], #[case] code: i32) {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("--") {
                a.to_string()
            } else {
                repo(a).display().to_string()
            }
        })
        .collect();
    validate().args(&args).assert().code(code);
}

#[test]
fn unreadable_input_names_the_file_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, "kind: [unclosed\n").expect("write");
    validate()
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("broken.yaml: malformed YAML"));
}

#[test]
fn json_report_has_the_contract_shape() {
    let output = validate()
        .args(["--format", "json"])
        .arg(repo(
            "fixtures/validate/broken/metrics-scraped/seed-mistake",
        ))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let findings = report["findings"].as_array().expect("findings array");
    assert!(!findings.is_empty());
    for finding in findings {
        let keys: Vec<&str> = finding
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 6, "{finding}");
        for key in [
            "rule",
            "severity",
            "resource",
            "namespace",
            "file",
            "message",
        ] {
            assert!(keys.contains(&key), "{key} missing in {finding}");
        }
    }
    let scraped = findings
        .iter()
        .find(|f| f["resource"] == "ServiceMonitor/camunda")
        .expect("the ServiceMonitor is reported");
    assert_eq!(scraped["rule"], "metrics-scraped");
    assert_eq!(scraped["severity"], "error");
    assert_eq!(scraped["namespace"], "camunda");
    assert!(report["summary"].is_object());
}

/// Plain manifests are "read as plain YAML", not "rendered by plain".
#[test]
fn plain_input_is_said_to_be_read_as_plain_yaml() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("cm.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {a: b}\n",
    )
    .expect("write");
    validate()
        .arg(&file)
        .assert()
        .stdout(predicate::str::contains("1 objects, read as plain YAML in"))
        .stdout(predicate::str::contains("rendered by plain").not());
}
