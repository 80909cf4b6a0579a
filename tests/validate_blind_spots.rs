//! Where `validate` went silent or judged what a bundle cannot know: each case is a variant of
//! the broken corpus (fixtures/validate/broken/<rule>/<variant>/) with the finding it must raise,
//! at the severity it must have, and each twin must pass every rule.

use std::path::PathBuf;

use camunda_conformance::validate::{validate_paths, Finding, Severity};
use rstest::rstest;

fn findings(rule: &str, variant: &str) -> Vec<Finding> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/validate/broken")
        .join(rule)
        .join(variant);
    validate_paths(&[path])
        .unwrap_or_else(|err| panic!("{rule}/{variant} does not render: {err}"))
        .findings
}

#[rstest]
// An HPA whose body does not match its apiVersion still scales the engine: its bounds count.
#[case(
    "no-h2-with-replicas",
    "hpa-v1-v2-body",
    Severity::Error,
    "up to 100 replicas"
)]
#[case(
    "session-strategy",
    "hpa-v1-v2-body",
    Severity::Error,
    "up to 100 replicas"
)]
// A team image nobody declared: said, with the images seen and the annotation to use.
#[case(
    "camunda-workload",
    "unknown-image",
    Severity::Warning,
    "ghcr.io/acme/bpm-engine:1.4.2"
)]
#[case(
    "camunda-workload",
    "annotation-on-deployment",
    Severity::Warning,
    "spec.template.metadata.annotations"
)]
// `spring.session.store-type: none` is read as what it says: sessions in memory.
#[case(
    "session-strategy",
    "store-type-none",
    Severity::Error,
    "in-memory sessions"
)]
// A TLS Secret from outside the bundle: must exist before rollout, not an error.
#[case(
    "ingress-tls",
    "out-of-band-secret",
    Severity::Warning,
    "must exist in the cluster before rollout"
)]
#[case("ingress-tls", "opaque-secret", Severity::Error, "type Opaque")]
// TLS at the Gateway: a route with backends on the plain HTTP listener; an out-of-band Secret.
#[case(
    "ingress-tls",
    "gateway-plain-http",
    Severity::Error,
    "plain HTTP listener `http`"
)]
#[case(
    "ingress-tls",
    "gateway-out-of-band-secret",
    Severity::Warning,
    "must exist in the cluster before rollout"
)]
// prometheus.io/* annotations only: the assumption named, not a failure; a wrong port fails.
#[case(
    "metrics-scraped",
    "annotations-only",
    Severity::Warning,
    "annotation-based scrape configs"
)]
#[case(
    "metrics-scraped",
    "annotation-wrong-port",
    Severity::Error,
    "is not the metrics port 9404"
)]
fn blind_spot_is_reported(
    #[case] rule: &str,
    #[case] variant: &str,
    #[case] severity: Severity,
    #[case] says: &str,
) {
    let findings = findings(rule, variant);
    let fired: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == rule && f.message.contains(says))
        .collect();
    assert!(
        !fired.is_empty(),
        "{rule}/{variant}: no {rule} finding says {says:?}: {findings:#?}"
    );
    for finding in fired {
        assert_eq!(finding.severity, severity, "{finding:#?}");
        assert!(finding.file.is_some(), "{finding:#?}");
    }
}

/// The schema mistake is still reported once, beside the findings its fields feed.
#[test]
fn schema_mistake_is_reported_once() {
    let findings = findings("no-h2-with-replicas", "hpa-v1-v2-body");
    let schema: Vec<&Finding> = findings.iter().filter(|f| f.rule == "schema").collect();
    assert_eq!(schema.len(), 1, "{findings:#?}");
    assert!(schema[0].message.contains("spec.metrics"), "{schema:#?}");
}

#[rstest]
fn twin_passes(
    #[values(
        ("hpa-target", "ok-v1"),
        ("camunda-workload", "ok"),
        ("session-strategy", "ok-spring-session"),
        ("ingress-tls", "ok-external-secret"),
        ("ingress-tls", "ok-gateway")
    )]
    twin: (&str, &str),
) {
    let (rule, variant) = twin;
    let findings = findings(rule, variant);
    assert!(findings.is_empty(), "{rule}/{variant}: {findings:#?}");
}
