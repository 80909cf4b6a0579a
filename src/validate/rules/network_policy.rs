use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{Bundle, Finding, Rule, Severity};
use rustc_hash::FxHashMap as HashMap;

use crate::validate::bundle::{Entry, Workload};

pub const RULE: Rule = Rule {
    id: "network-policy",
    severity: Severity::Warning,
    description: "a NetworkPolicy limits who reaches Camunda (its metrics port), the database and the session store; without one every pod of the cluster can",
    check,
};

/// Images whose pods hold data or sessions: reachable by Camunda only.
const GUARDED: [(&str, &str); 8] = [
    ("postgres", "the database"),
    ("mysql", "the database"),
    ("mariadb", "the database"),
    ("redis", "the session store"),
    ("valkey", "the session store"),
    ("memcached", "the session store"),
    ("twemproxy", "the session store's proxy"),
    ("nutcracker", "the session store's proxy"),
];

/// What the workload is, if the rule guards it.
fn guarded(workload: &Workload) -> Option<&'static str> {
    if workload.camunda_container().is_some() {
        return Some("Camunda (its metrics port included)");
    }
    workload.main_containers().find_map(|c| {
        let image = c.image.as_deref()?;
        let name = crate::validate::bundle::image_repository(image)
            .rsplit('/')
            .next()?
            .to_ascii_lowercase();
        GUARDED
            .iter()
            .find(|(known, _)| name.contains(known))
            .map(|(_, what)| *what)
    })
}

/// Whether the policy limits ingress (its policyTypes, defaulting to Ingress) and does not
/// let everything in again with a rule of no peers and no ports.
fn limits_ingress(policy: &NetworkPolicy) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    let ingress_type = match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == "Ingress"),
        None => true,
    };
    let opens_all = spec.ingress.iter().flatten().any(|rule| {
        rule.from.as_ref().is_none_or(Vec::is_empty)
            && rule.ports.as_ref().is_none_or(Vec::is_empty)
    });
    ingress_type && !opens_all
}

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    // Workload → the policies selecting its pods in its namespace, in bundle order (an empty
    // or absent podSelector selects every pod): one label-index lookup per policy.
    let mut selected: HashMap<*const Entry, Vec<(&Entry, &NetworkPolicy)>> = HashMap::default();
    for (entry, policy) in bundle.network_policies() {
        let Some(spec) = &policy.spec else { continue };
        let workloads: Vec<Workload> = match &spec.pod_selector {
            Some(selector) => bundle.workloads_selected_by(selector).collect(),
            None => bundle
                .workloads()
                .filter(|w| w.labels().is_some())
                .collect(),
        };
        for workload in workloads {
            if workload.entry.same_namespace(entry) {
                selected
                    .entry(std::ptr::from_ref(workload.entry))
                    .or_default()
                    .push((entry, policy));
            }
        }
    }
    for workload in bundle.workloads() {
        let Some(what) = guarded(&workload) else {
            continue;
        };
        if workload.labels().is_none() {
            continue;
        }
        let selecting = selected
            .get(&std::ptr::from_ref(workload.entry))
            .map_or(&[][..], Vec::as_slice);
        if selecting.is_empty() {
            out.push(RULE.finding(
                workload.entry,
                format!("no NetworkPolicy selects its pods: {what} is reachable from every pod of the cluster; add one that admits only the pods that need it"),
            ));
        } else if !selecting.iter().any(|(_, p)| limits_ingress(p)) {
            let names: Vec<&str> = selecting.iter().map(|(e, _)| e.name()).collect();
            out.push(RULE.finding(
                workload.entry,
                format!("NetworkPolicy {} selects its pods but admits every source: {what} is still reachable from every pod; name the peers (podSelector/namespaceSelector) in each ingress rule", names.join(", ")),
            ));
        }
    }
}
