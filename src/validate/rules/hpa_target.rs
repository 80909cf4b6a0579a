use super::{container_label, Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "hpa-target",
    severity: Severity::Error,
    description: "the HPA scales a workload of the bundle (apps/v1), min ≤ max, scale-out is not disabled, and every utilization target has the matching resource requests",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, hpa) in bundle.hpas() {
        let Some(spec) = &hpa.spec else { continue };
        let target = &spec.scale_target_ref;
        if let Some(min) = spec.min_replicas.filter(|min| *min > spec.max_replicas) {
            out.push(RULE.finding(
                entry,
                format!(
                    "minReplicas {min} is above maxReplicas {}: raise maxReplicas",
                    spec.max_replicas
                ),
            ));
        }
        let scale_up = spec.behavior.as_ref().and_then(|b| b.scale_up.as_ref());
        if scale_up.is_some_and(|r| r.select_policy.as_deref() == Some("Disabled")) {
            out.push(RULE.finding(
                entry,
                "behavior.scaleUp.selectPolicy is Disabled: the HPA never scales out; remove it or pick Max/Min".to_string(),
            ));
        }
        let Some(workload) = bundle.workload(&target.kind, &target.name, entry) else {
            out.push(RULE.finding(
                entry,
                format!(
                    "scaleTargetRef {}/{} is not in the bundle: name the Camunda Deployment (kind and name as rendered)",
                    target.kind, target.name
                ),
            ));
            continue;
        };
        if target.api_version.as_deref() != Some("apps/v1") {
            out.push(RULE.finding(
                entry,
                format!(
                    "scaleTargetRef.apiVersion is {}: set apps/v1",
                    target.api_version.as_deref().unwrap_or("unset")
                ),
            ));
        }
        // No metrics means the default target: 80% average cpu utilization.
        let mut needs: Vec<(String, Option<String>)> = Vec::new();
        if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
            needs.push(("cpu".to_string(), None));
        }
        for metric in spec.metrics.iter().flatten() {
            if let Some(resource) = &metric.resource {
                if resource.target.type_ == "Utilization" {
                    needs.push((resource.name.clone(), None));
                }
            }
            if let Some(resource) = &metric.container_resource {
                if resource.target.type_ == "Utilization" {
                    needs.push((resource.name.clone(), Some(resource.container.clone())));
                }
            }
        }
        for (resource, only) in needs {
            for container in workload.main_containers() {
                if only.as_ref().is_some_and(|c| *c != container.name) {
                    continue;
                }
                let requested = container
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .is_some_and(|r| r.contains_key(&resource));
                if !requested {
                    out.push(RULE.finding(
                        entry,
                        format!(
                            "scales on {resource} utilization but {} of {} requests no {resource}: the HPA cannot compute utilization; set resources.requests.{resource}",
                            container_label(container),
                            workload.entry.resource()
                        ),
                    ));
                }
            }
        }
    }
}
