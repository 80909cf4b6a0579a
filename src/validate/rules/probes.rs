use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{container_label, Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "probes",
    severity: Severity::Error,
    description: "Camunda has readiness and liveness probes on open endpoints, and a startup probe (or a long initial delay) so slow starts are not killed",
    check,
};

/// Camunda 7 with schema updates and the webapps takes about a minute to start.
const SLOW_START_SECONDS: i32 = 60;

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        let mut problems = Vec::new();
        if container.readiness_probe.is_none() {
            problems.push("has no readinessProbe: add one (httpGet /engine-rest/engine on the http port) so traffic waits for the engine".to_string());
        }
        match &container.liveness_probe {
            None => problems
                .push("has no livenessProbe: add one so a hung JVM is restarted".to_string()),
            Some(liveness) => {
                let delay = liveness.initial_delay_seconds.unwrap_or(0);
                if container.startup_probe.is_none() && delay < SLOW_START_SECONDS {
                    problems.push(format!(
                        "has a livenessProbe that starts after {delay} s without a startupProbe: Camunda takes about {SLOW_START_SECONDS} s to start and would be killed in a loop; add a startupProbe"
                    ));
                }
            }
        }
        let probes = [
            ("readinessProbe", &container.readiness_probe),
            ("livenessProbe", &container.liveness_probe),
            ("startupProbe", &container.startup_probe),
        ];
        for (name, probe) in probes {
            if let Some(problem) = probe.as_ref().and_then(|p| http_problem(container, p)) {
                problems.push(format!("{name} {problem}"));
            }
        }
        for problem in problems {
            out.push(RULE.finding(
                workload.entry,
                format!("{} {problem}", container_label(container)),
            ));
        }
    }
}

fn http_problem(container: &Container, probe: &Probe) -> Option<String> {
    let http = probe.http_get.as_ref()?;
    if let IntOrString::String(name) = &http.port {
        let declared = container
            .ports
            .iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some(name.as_str()));
        if !declared {
            return Some(format!(
                "uses port `{name}`, which the container does not declare: name a containerPort"
            ));
        }
    }
    let path = http.path.as_deref().unwrap_or("/");
    let rest = path.strip_prefix("/engine-rest")?;
    let open = matches!(rest.trim_end_matches('/'), "/engine" | "");
    (!open).then(|| {
        format!("checks {path}, which answers 401 when basic auth is on: use /engine-rest/engine")
    })
}
