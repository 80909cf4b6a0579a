use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "spread",
    severity: Severity::Warning,
    description: "Camunda with more than one replica (or an HPA) spreads its pods over nodes (topologySpreadConstraints or pod anti-affinity), so one node failing does not take every replica",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, _) in bundle.camunda_workloads() {
        let pods = bundle.max_pods(&workload);
        if pods <= 1 {
            continue;
        }
        let spec = workload.template.spec.as_ref();
        let spread = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let anti_affinity = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .is_some_and(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
                    .is_some_and(|t| !t.is_empty())
                    || a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                        .is_some_and(|t| !t.is_empty())
            });
        if !(spread || anti_affinity) {
            out.push(RULE.finding(
                workload.entry,
                format!("runs up to {pods} replicas with no topologySpreadConstraints or pod anti-affinity: the scheduler may put every replica on one node; spread them over kubernetes.io/hostname (whenUnsatisfiable: ScheduleAnyway keeps a one-node cluster schedulable)"),
            ));
        }
    }
}
