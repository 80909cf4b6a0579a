//! Every overlay the project ships validates with no finding at all (not even a warning), except
//! what is true of the e2e overlays: their credentials come from outside the bundle.

use std::path::PathBuf;

use camunda_conformance::validate::{validate_paths, Severity};
use rstest::rstest;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Secrets `cargo xtask e2e` generates per run and the e2e overlays therefore do not ship.
const E2E_OUT_OF_BAND: [&str; 2] = ["camunda-db", "camunda-admin"];

#[rstest]
#[case("manifests/overlays/e2e", &E2E_OUT_OF_BAND)]
#[case("manifests/overlays/e2e-shared", &E2E_OUT_OF_BAND)]
#[case("manifests/overlays/e2e-operaton", &E2E_OUT_OF_BAND)]
#[case("manifests/overlays/e2e-shared-operaton", &E2E_OUT_OF_BAND)]
#[case("manifests/overlays/production-example", &[])]
fn shipped_overlay_is_clean(#[case] overlay: &str, #[case] out_of_band: &[&str]) {
    let report = validate_paths(&[repo(overlay)]).expect("the overlay renders");
    let unexpected: Vec<_> = report
        .findings
        .iter()
        .filter(|f| {
            !(f.rule == "reference"
                && f.severity == Severity::Warning
                && f.message
                    .contains("must exist in the cluster before rollout")
                && out_of_band
                    .iter()
                    .any(|s| f.message.contains(&format!("Secret `{s}`"))))
        })
        .collect();
    assert!(unexpected.is_empty(), "{overlay}: {unexpected:#?}");
    for secret in out_of_band {
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.message.contains(&format!("Secret `{secret}`"))),
            "{overlay}: no out-of-band warning for {secret}: {:#?}",
            report.findings
        );
    }
    let input = &report.inputs[0];
    assert!(
        input.objects > 15,
        "{overlay} rendered only {} objects",
        input.objects
    );
    assert!(input.renderer.contains("kustomize"), "{}", input.renderer);
}

#[test]
fn every_shipped_overlay_is_covered() {
    let mut overlays: Vec<String> = std::fs::read_dir(repo("manifests/overlays"))
        .expect("manifests/overlays exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    overlays.sort();
    assert_eq!(
        overlays,
        [
            "e2e",
            "e2e-operaton",
            "e2e-shared",
            "e2e-shared-operaton",
            "production-example"
        ]
    );
}

/// Findings point at the file an object came from, not only at the overlay.
#[test]
fn findings_name_the_source_file() {
    let report = validate_paths(&[repo("manifests/base")]).expect("the base renders");
    let scraped: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "metrics-scraped")
        .collect();
    assert_eq!(scraped.len(), 1, "{:#?}", report.findings);
    assert_eq!(scraped[0].resource, "Deployment/camunda");
    assert_eq!(scraped[0].namespace.as_deref(), Some("camunda"));
    let file = scraped[0].file.as_deref().unwrap_or_default();
    assert!(
        file.ends_with("manifests/base/camunda/deployment.yaml"),
        "{file}"
    );
}
