//! `camunda-conformance run` through the real binary: where the target comes from is a usage
//! decision (exactly one of --target and --kube-context), refused with exit 2.

use assert_cmd::Command;
use predicates::prelude::*;
use rstest::rstest;

#[rstest]
#[case::neither(&[], "--target")]
#[case::both(&["--target", "t.toml", "--kube-context", "c", "--namespace", "n"], "cannot be used with")]
#[case::context_without_namespace(&["--kube-context", "c"], "--namespace")]
#[case::discovery_flag_with_a_file(&["--target", "t.toml", "--ca", "ca.pem"], "--kube-context")]
fn the_target_source_is_a_usage_decision(#[case] args: &[&str], #[case] says: &str) {
    Command::cargo_bin("camunda-conformance")
        .expect("binary built")
        .arg("run")
        .args(args)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(says));
}

#[test]
fn an_unknown_context_is_an_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    Command::cargo_bin("camunda-conformance")
        .expect("binary built")
        .env("KUBECONFIG", &kubeconfig)
        .args(["run", "--kube-context", "nowhere", "--namespace", "camunda"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nowhere"));
}
