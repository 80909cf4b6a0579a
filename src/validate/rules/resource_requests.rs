use super::{container_label, Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "resource-requests",
    severity: Severity::Error,
    description:
        "every container requests cpu and memory (scheduling and HPA utilization depend on them)",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        for container in workload.main_containers() {
            let resources = container.resources.as_ref();
            let requests = resources.and_then(|r| r.requests.as_ref());
            let limits = resources.and_then(|r| r.limits.as_ref());
            // The API server defaults a missing request to the limit.
            let missing: Vec<&str> = ["cpu", "memory"]
                .into_iter()
                .filter(|r| {
                    !requests.is_some_and(|q| q.contains_key(*r))
                        && !limits.is_some_and(|q| q.contains_key(*r))
                })
                .collect();
            if !missing.is_empty() {
                out.push(RULE.finding(
                    workload.entry,
                    format!(
                        "{} requests no {}: set resources.requests.{}",
                        container_label(container),
                        missing.join(" and no "),
                        missing.join(" and resources.requests.")
                    ),
                ));
            }
        }
    }
}
