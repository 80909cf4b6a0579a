use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Bundle, Finding, Rule, Severity};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rustc_hash::FxHashMap as HashMap;

use crate::validate::bundle::Entry;

pub const RULE: Rule = Rule {
    id: "pdb",
    severity: Severity::Warning,
    description: "Camunda with more than one replica has a PodDisruptionBudget that keeps one serving yet still allows node drains",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    // Workload → the PDBs selecting its pods in its namespace, in bundle order: one lookup per
    // PDB in the label index instead of every PDB tried against every workload.
    let mut covering: HashMap<*const Entry, Vec<(&Entry, &PodDisruptionBudget)>> =
        HashMap::default();
    for (entry, pdb) in bundle.pdbs() {
        let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        let mut selects_any = false;
        for workload in bundle.workloads_selected_by(selector) {
            if workload.entry.same_namespace(entry) {
                selects_any = true;
                covering
                    .entry(std::ptr::from_ref(workload.entry))
                    .or_default()
                    .push((entry, pdb));
            }
        }
        if !selects_any {
            out.push(RULE.finding(
                entry,
                "spec.selector matches no pod template of the bundle: use the Camunda pod labels".to_string(),
            ));
        }
    }
    for (workload, _) in bundle.camunda_workloads() {
        if bundle.max_pods(&workload) <= 1 || workload.labels().is_none() {
            continue;
        }
        let covering = covering
            .get(&std::ptr::from_ref(workload.entry))
            .map_or(&[][..], Vec::as_slice);
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
