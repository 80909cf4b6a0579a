//! `validate --format sarif`: SARIF 2.1.0 that passes the schema (vendored with its sha256 in
//! fixtures/validate/sarif/), each finding with its rule, level, message and the file and line
//! of the manifest or chart template that caused it.

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn schema() -> jsonschema::Validator {
    let bytes = std::fs::read(repo("fixtures/validate/sarif/sarif-2.1.0-rtm.5.json")).unwrap();
    assert_eq!(
        format!("{:x}", Sha256::digest(&bytes)),
        "2d99159ae54a3eea97f81781cff48780548657c35949f4b7f25e99a2ba4de4f8",
        "the vendored schema is the pinned one"
    );
    // rtm.5's malformed `language` regex (an unbalanced `]`), as the final 2.1.0 schema
    // corrected it; the rest of the schema is used as shipped.
    let text = String::from_utf8(bytes).unwrap();
    let malformed = r#""^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$""#;
    assert!(text.contains(malformed));
    let text = text.replace(malformed, r#""^[a-zA-Z]{2}(-[a-zA-Z]{2})?$""#);
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft4::new(&schema).expect("the SARIF schema compiles")
}

fn sarif(args: &[&str], dir: &std::path::Path) -> Value {
    let output = Command::cargo_bin("camunda-conformance")
        .unwrap()
        .current_dir(dir)
        .arg("validate")
        .args(["--format", "sarif"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let errors: Vec<String> = schema().iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "not SARIF 2.1.0: {errors:?}");
    // The schema can fail: a level SARIF does not know.
    let mut wrong = log.clone();
    wrong["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!schema().is_valid(&wrong));
    log
}

/// The results of a log as (rule, level, uri, line).
fn results(log: &Value) -> Vec<(String, String, String, Option<u64>)> {
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let index = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(
                rules[index]["id"], r["ruleId"],
                "ruleIndex points at its rule"
            );
            assert!(!r["message"]["text"].as_str().unwrap().is_empty());
            let physical = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["level"].as_str().unwrap().to_string(),
                physical["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                physical["region"]["startLine"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn plain_manifests_point_at_the_document_of_the_object() {
    let dir = tempfile::tempdir().unwrap();
    // The second document starts after a comment: the Deployment's own first line is 8.
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: app}\ndata: {a: b}\n---\n# the engine\n\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: camunda, namespace: app}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: c}}\n  template:\n    metadata: {labels: {app: c}}\n    spec:\n      containers: [{name: camunda, image: 'camunda/camunda-bpm-platform:7.24.0'}]\n";
    std::fs::write(dir.path().join("app.yaml"), text).unwrap();
    let log = sarif(&["app.yaml"], dir.path());
    let found = results(&log);
    assert!(!found.is_empty());
    let h2 = found
        .iter()
        .find(|(rule, ..)| rule == "no-h2-with-replicas")
        .expect("3 replicas on H2 are reported");
    assert_eq!(h2.1, "error");
    assert_eq!((h2.2.as_str(), h2.3), ("app.yaml", Some(8)));
    assert!(found.iter().any(|(_, level, ..)| level == "warning"));
}

#[test]
fn chart_findings_point_at_the_template_line() {
    let dir = repo("fixtures/validate/helm");
    let log = sarif(&["camunda", "-f", "camunda/values-prod.yaml"], &dir);
    let found = results(&log);
    let session = found
        .iter()
        .find(|(rule, ..)| rule == "session-strategy")
        .expect("2 replicas without affinity are reported");
    // `kind: Deployment` is the template's second line.
    assert_eq!(
        (session.2.as_str(), session.3),
        ("camunda/templates/deployment.yaml", Some(2))
    );
}
