//! `camunda-conformance deploy` through the real binary, where no cluster is needed: validate's
//! errors stop it before any connection, unreadable input is exit 2. The cluster side is proven
//! by `cargo xtask test-control-plane` against a real kube-apiserver.

use std::path::PathBuf;

use assert_cmd::Command;
use predicates::prelude::*;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn deploy() -> Command {
    let mut command = Command::cargo_bin("camunda-conformance").expect("binary built");
    // A context no kubeconfig has: reaching for the cluster would fail differently.
    command.args(["deploy", "--kube-context", "no-such-context"]);
    command
}

#[test]
fn validate_errors_stop_the_deploy_before_the_cluster() {
    deploy()
        .arg(repo(
            "fixtures/validate/broken/metrics-scraped/seed-mistake",
        ))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error   metrics-scraped"))
        .stderr(
            predicate::str::contains("not deploying")
                .and(predicate::str::contains("no-such-context").not()),
        );
}

#[test]
fn an_unreadable_overlay_is_exit_2_naming_it() {
    deploy()
        .arg(repo("fixtures/validate/does-not-exist"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "does-not-exist: no such file or directory",
        ));
}

#[test]
fn a_bad_timeout_is_a_usage_error() {
    deploy()
        .args(["--timeout", "soon"])
        .arg(repo("manifests/overlays/e2e"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`soon` is not a duration"));
}
