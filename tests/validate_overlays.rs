//! Every overlay the project ships validates with no finding at all (not even a warning).

use std::path::PathBuf;

use camunda_conformance::validate::validate_paths;
use rstest::rstest;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[rstest]
#[case("manifests/overlays/e2e")]
#[case("manifests/overlays/e2e-shared")]
#[case("manifests/overlays/e2e-operaton")]
#[case("manifests/overlays/e2e-shared-operaton")]
#[case("manifests/overlays/production-example")]
fn shipped_overlay_is_clean(#[case] overlay: &str) {
    let report = validate_paths(&[repo(overlay)]).expect("the overlay renders");
    assert!(
        report.findings.is_empty(),
        "{overlay}: {:#?}",
        report.findings
    );
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
