use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "hpa-replicas-field",
    severity: Severity::Warning,
    description: "a workload scaled by an HPA leaves spec.replicas unset, so each apply does not reset the HPA's count",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        let (Some(replicas), Some((hpa, _))) = (workload.replicas, bundle.hpa_for(&workload))
        else {
            continue;
        };
        out.push(RULE.finding(
            workload.entry,
            format!(
                "sets spec.replicas: {replicas} while HPA `{}` scales it: every apply resets the replica count; remove spec.replicas and set the HPA's minReplicas instead",
                hpa.name()
            ),
        ));
    }
}
