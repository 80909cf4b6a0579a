//! `validate --front-door`: fixtures/validate/front-door/<front door>/broken fires rule
//! `front-door` with what the move loses; .../ok passes every rule for that front door.

use std::path::PathBuf;

use assert_cmd::Command;
use camunda_conformance::validate::input::Options;
use camunda_conformance::validate::rules::FrontDoor;
use camunda_conformance::validate::{validate_for, validate_paths, Finding, Severity};
use rstest::rstest;

fn fixture(door: &str, variant: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/validate/front-door")
        .join(door)
        .join(variant)
}

fn findings(door: FrontDoor, name: &str, variant: &str) -> Vec<Finding> {
    validate_for(&[fixture(name, variant)], &Options::default(), Some(door))
        .unwrap_or_else(|err| panic!("{name}/{variant} does not render: {err}"))
        .findings
}

fn front_door(findings: &[Finding]) -> Vec<&Finding> {
    findings.iter().filter(|f| f.rule == "front-door").collect()
}

/// Each entry: the annotation or object, the severity, and words of what the team loses.
#[rstest]
#[case(FrontDoor::Traefik, "traefik", &[
    ("whitelist-source-range", Severity::Error, "reachable from anywhere"),
    ("app-root", Severity::Error, "redirect"),
    ("session-cookie-expires", Severity::Warning, "lifetime"),
    ("affinity-mode: balanced", Severity::Warning, "only persistent mode"),
])]
#[case(FrontDoor::GatewayApi, "gateway-api", &[
    ("nginx.ingress.kubernetes.io/affinity`", Severity::Error, "stickiness"),
    ("session-cookie-name", Severity::Error, "the affinity cookie's name"),
    ("session-cookie-secure", Severity::Warning, "Secure attribute"),
    ("affinity-mode", Severity::Warning, "affinity mode"),
])]
#[case(FrontDoor::IngressNginx, "ingress-nginx", &[
    ("ingress class traefik", Severity::Error, "route is lost"),
    ("service.sticky.cookie`", Severity::Error, "stickiness"),
    ("service.sticky.cookie.name", Severity::Error, "cookie's name"),
    ("router.entrypoints", Severity::Warning, "what it configured"),
])]
fn broken_loses(
    #[case] door: FrontDoor,
    #[case] name: &str,
    #[case] expected: &[(&str, Severity, &str)],
) {
    let findings = findings(door, name, "broken");
    let fired = front_door(&findings);
    for (setting, severity, loses) in expected {
        let found = fired
            .iter()
            .find(|f| f.message.contains(setting))
            .unwrap_or_else(|| panic!("{name}: nothing about {setting}: {fired:#?}"));
        assert_eq!(found.severity, *severity, "{found:#?}");
        assert!(found.message.contains(loses), "{found:#?}");
        assert!(found.file.is_some(), "{found:#?}");
    }
    // One finding per setting: nothing reported twice.
    let mut messages: Vec<(&str, &str)> = fired
        .iter()
        .map(|f| (f.resource.as_str(), f.message.as_str()))
        .collect();
    let all = messages.len();
    messages.sort_unstable();
    messages.dedup();
    assert_eq!(messages.len(), all, "{fired:#?}");
}

#[rstest]
#[case(FrontDoor::Traefik, "traefik")]
#[case(FrontDoor::GatewayApi, "gateway-api")]
#[case(FrontDoor::IngressNginx, "ingress-nginx")]
fn twin_passes(#[case] door: FrontDoor, #[case] name: &str) {
    let findings = findings(door, name, "ok");
    assert!(findings.is_empty(), "{name}/ok: {findings:#?}");
}

/// Without `--front-door` the rule judges nothing: the same bundle has no `front-door` finding.
#[test]
fn silent_without_a_front_door() {
    let report = validate_paths(&[fixture("gateway-api", "broken")]).expect("renders");
    assert!(front_door(&report.findings).is_empty(), "{report:#?}");
}

/// An HTTPRoute relying on sessionPersistence keeps its stickiness only where the Gateway
/// implementation supports the experimental field: said under `--front-door gateway-api`.
#[test]
fn session_persistence_is_named_as_an_assumption() {
    let dir = tempfile::tempdir().expect("temp dir");
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: camunda, namespace: camunda}\nspec:\n  parentRefs: [{name: camunda}]\n  rules:\n    - backendRefs: [{name: camunda, port: 8080}]\n      sessionPersistence: {sessionName: INGRESSCOOKIE, type: Cookie}\n";
    std::fs::write(dir.path().join("route.yaml"), route).expect("writes");
    let report = validate_for(
        &[dir.path().to_path_buf()],
        &Options::default(),
        Some(FrontDoor::GatewayApi),
    )
    .expect("reads");
    let fired = front_door(&report.findings);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].severity, Severity::Warning);
    assert!(fired[0].message.contains("GEP-1619"), "{fired:#?}");
}

#[test]
fn cli_takes_the_front_door() {
    let output = Command::cargo_bin("camunda-conformance")
        .expect("binary")
        .args(["validate", "--front-door", "traefik", "--format", "json"])
        .arg(fixture("traefik", "broken"))
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&output).expect("JSON report");
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"front-door"), "{report:#}");
    Command::cargo_bin("camunda-conformance")
        .expect("binary")
        .args(["validate", "--front-door", "haproxy"])
        .arg(fixture("traefik", "ok"))
        .assert()
        .code(2);
}
