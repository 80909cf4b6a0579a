use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{Workload, ENGINE_ANNOTATION};

pub const RULE: Rule = Rule {
    id: "camunda-workload",
    severity: Severity::Warning,
    description: "the bundle's workloads include one recognised as Camunda 7 (by its image name, or the pod annotation camunda-conformance.io/engine), else the Camunda rules check nothing",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        declaration_problems(&workload, out);
    }
    if bundle.camunda_workloads().next().is_some() {
        return;
    }
    let Some(first) = bundle.workloads().next() else {
        return; // nothing runs at all: no rule about a workload applies
    };
    let mut images: Vec<&str> = bundle
        .workloads()
        .flat_map(|w| w.main_containers())
        .filter_map(|c| c.image.as_deref())
        .collect();
    images.sort_unstable();
    images.dedup();
    out.push(RULE.finding(
        first.entry,
        format!(
            "no workload of the bundle is recognised as Camunda 7 (images seen: {}): rest-auth, session-strategy, probes, memory-limit, metrics and pdb checked nothing; if one of them runs Camunda, annotate its pod template with `{ENGINE_ANNOTATION}: \"true\"` (or the Camunda container's name)",
            if images.is_empty() { "none".to_string() } else { images.join(", ") }
        ),
    ));
}

/// The annotation where the rules do not read it, or naming a container the pod does not have.
fn declaration_problems(workload: &Workload, out: &mut Vec<Finding>) {
    match workload.pod_annotation(ENGINE_ANNOTATION) {
        None if workload.entry.annotation(ENGINE_ANNOTATION).is_some() => {
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "`{ENGINE_ANNOTATION}` is set on the {}'s own metadata: it declares the pod, so move it to spec.template.metadata.annotations",
                    workload.entry.kind
                ),
            ));
        }
        Some(name) if !matches!(name, "true" | "false") => {
            let names: Vec<&str> = workload
                .main_containers()
                .map(|c| c.name.as_str())
                .collect();
            if !names.contains(&name) {
                out.push(RULE.finding(
                    workload.entry,
                    format!(
                        "pod annotation `{ENGINE_ANNOTATION}: {name}` names no container of the pod (it has: {}): name the Camunda container, or use \"true\" for the first",
                        names.join(", ")
                    ),
                ));
            }
        }
        _ => {}
    }
}
