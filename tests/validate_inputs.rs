//! Unreadable inputs are an `InputError` naming the file and the problem (exit code 2 in the CLI),
//! never a panic and never an empty, passing report.

use std::path::{Path, PathBuf};

use camunda_conformance::validate::{validate_paths, InputError};
use rstest::rstest;

fn validate_text(dir: &Path, name: &str, text: &str) -> Result<(), InputError> {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    validate_paths(&[path]).map(|_| ())
}

#[rstest]
#[case::malformed_yaml(
    "bad.yaml",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
    "bad.yaml: malformed YAML in document 1"
)]
#[case::not_a_mapping(
    "list.yaml",
    "- a\n- b\n",
    "list.yaml: document 1 is not a mapping but a sequence"
)]
#[case::scalar_second_document(
    "two.yaml",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\njust text\n",
    "two.yaml: document 2 is not a mapping but a string"
)]
#[case::no_kind(
    "nokind.yaml",
    "apiVersion: v1\nmetadata: {name: x}\n",
    "nokind.yaml: document 1 is not a Kubernetes object: no kind"
)]
#[case::no_name(
    "noname.yaml",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    "no metadata.name"
)]
#[case::only_comments("empty.yaml", "# nothing here\n", "empty.yaml: no manifests")]
fn unreadable_file(#[case] name: &str, #[case] text: &str, #[case] expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = validate_text(dir.path(), name, text).expect_err("must not pass");
    let message = err.to_string();
    assert!(message.contains(expected), "{message}");
}

#[test]
fn missing_path() {
    let err = validate_paths(&[PathBuf::from("/no/such/overlay")]).expect_err("must not pass");
    assert_eq!(
        err.to_string(),
        "/no/such/overlay: no such file or directory"
    );
}

#[test]
fn empty_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = validate_paths(&[dir.path().to_path_buf()]).expect_err("must not pass");
    assert!(
        err.to_string()
            .ends_with(": no manifests (*.yaml, *.yml, *.json) in this directory"),
        "{err}"
    );
}

#[test]
fn failing_kustomization_names_the_directory_and_the_cause() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - does-not-exist.yaml\n",
    )
    .expect("write kustomization");
    let err = validate_paths(&[dir.path().to_path_buf()]).expect_err("must not pass");
    let message = err.to_string();
    assert!(
        message.starts_with(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("kustomize failed"), "{message}");
    assert!(message.contains("does-not-exist.yaml"), "{message}");
}

/// A directory of plain manifests is read recursively; findings name each file.
#[test]
fn plain_directory_attributes_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("nested")).expect("mkdir");
    std::fs::write(
        dir.path().join("nested/redis.yml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: redis}\nspec:\n  selector: {matchLabels: {app: redis}}\n  template:\n    metadata: {labels: {app: redis}}\n    spec:\n      containers: [{name: redis, image: redis}]\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("README.txt"), "not a manifest").expect("write");
    let report = validate_paths(&[dir.path().to_path_buf()]).expect("reads");
    assert_eq!(report.inputs[0].renderer, "plain");
    assert_eq!(report.inputs[0].objects, 1);
    let tag = report
        .findings
        .iter()
        .find(|f| f.rule == "image-tag")
        .expect("untagged image found");
    assert!(
        tag.file
            .as_deref()
            .unwrap_or_default()
            .ends_with("nested/redis.yml"),
        "{tag:?}"
    );
    assert_eq!(tag.namespace, None);
}
