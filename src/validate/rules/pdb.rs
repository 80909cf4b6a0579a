use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::selector_matches;
use crate::validate::schema::Typed;

pub const RULE: Rule = Rule {
    id: "pdb",
    severity: Severity::Warning,
    description: "Camunda with more than one replica has a PodDisruptionBudget that keeps one serving yet still allows node drains",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    let pdbs: Vec<_> = bundle
        .entries
        .iter()
        .filter_map(|e| match &e.typed {
            Typed::Pdb(p) => Some((e, p)),
            _ => None,
        })
        .collect();
    for (entry, pdb) in &pdbs {
        let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        let selects_any = bundle.workloads().any(|w| {
            w.entry.same_namespace(entry)
                && w.labels().is_some_and(|l| selector_matches(selector, l))
        });
        if !selects_any {
            out.push(RULE.finding(
                entry,
                "spec.selector matches no pod template of the bundle: use the Camunda pod labels".to_string(),
            ));
        }
    }
    for (workload, _) in bundle.camunda_workloads() {
        if bundle.max_pods(&workload) <= 1 {
            continue;
        }
        let Some(labels) = workload.labels() else {
            continue;
        };
        let covering: Vec<_> = pdbs
            .iter()
            .filter(|(e, p)| {
                e.same_namespace(workload.entry)
                    && p.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .is_some_and(|s| selector_matches(s, labels))
            })
            .collect();
        if covering.is_empty() {
            out.push(RULE.finding(
                workload.entry,
                "has no PodDisruptionBudget: add one with maxUnavailable: 1 so drains keep a replica serving".to_string(),
            ));
        }
        let min_pods = bundle.min_pods(&workload);
        for (entry, pdb) in covering {
            let Some(spec) = &pdb.spec else { continue };
            let blocks = match (&spec.max_unavailable, &spec.min_available) {
                (Some(IntOrString::Int(0)), _) => Some("maxUnavailable 0".to_string()),
                (Some(IntOrString::String(p)), _) if p == "0%" => {
                    Some("maxUnavailable 0%".to_string())
                }
                (None, Some(IntOrString::Int(n))) if *n >= min_pods => {
                    Some(format!("minAvailable {n} with {min_pods} replicas"))
                }
                (None, Some(IntOrString::String(p))) if p == "100%" => {
                    Some("minAvailable 100%".to_string())
                }
                _ => None,
            };
            if let Some(blocks) = blocks {
                out.push(RULE.finding(
                    entry,
                    format!("{blocks} blocks every voluntary eviction (node drains hang): use maxUnavailable: 1"),
                ));
            }
        }
    }
}
