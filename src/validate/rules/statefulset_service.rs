use super::{Bundle, Finding, Rule, Severity};
use crate::validate::schema::Typed;

pub const RULE: Rule = Rule {
    id: "statefulset-service",
    severity: Severity::Warning,
    description: "a StatefulSet's serviceName names a headless Service (clusterIP: None) of the bundle that selects its pods, which gives each pod its stable DNS name",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        let Typed::StatefulSet(set) = &workload.entry.typed else {
            continue;
        };
        let Some(name) = set.spec.as_ref().and_then(|s| s.service_name.as_deref()) else {
            out.push(RULE.finding(
                workload.entry,
                "has no spec.serviceName: name a headless Service (clusterIP: None) selecting its pods".to_string(),
            ));
            continue;
        };
        let problem = match bundle.service_named(workload.entry, name) {
            None => format!("spec.serviceName `{name}` is not a Service of the bundle: add a headless Service (clusterIP: None) of that name selecting its pods"),
            Some((_, service)) => {
                let headless = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.cluster_ip.as_deref())
                    == Some("None");
                if headless {
                    continue;
                }
                format!("spec.serviceName `{name}` names a Service that is not headless: pods get no stable DNS names; add a Service with clusterIP: None and name it here (the ClusterIP Service can stay for clients)")
            }
        };
        out.push(RULE.finding(workload.entry, problem));
    }
}
