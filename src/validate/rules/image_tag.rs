use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::bundle::image_tag;

pub const RULE: Rule = Rule {
    id: "image-tag",
    severity: Severity::Error,
    description:
        "every container image is pinned to an exact tag or digest, never `latest` (or a `<flavour>-latest` such as `run-latest`) or untagged",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        for container in workload.containers() {
            let Some(image) = container.image.as_deref() else {
                continue;
            };
            if image.contains("@sha256:") {
                continue;
            }
            let problem = match image_tag(image) {
                None => "has no tag".to_string(),
                Some(tag) if tag == "latest" || tag.ends_with("-latest") => {
                    format!("uses the moving tag `{tag}`")
                }
                Some(_) => continue,
            };
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "{} image `{image}` {problem}: pin an exact version tag or a digest",
                    container_label(container)
                ),
            ));
        }
    }
}
