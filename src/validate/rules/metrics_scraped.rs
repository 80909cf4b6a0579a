use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::metrics_exposed::metrics_port;
use super::{Bundle, Finding, Rule, Severity};
use rustc_hash::FxHashMap as HashMap;

use crate::validate::bundle::{describe_selector, service_ports, target_of, Entry, Workload};
use crate::validate::env::Env;
use crate::validate::schema::crds::{NamespaceSelector, PodMonitorSpec, ServiceMonitorSpec};

pub const RULE: Rule = Rule {
    id: "metrics-scraped",
    severity: Severity::Error,
    description: "a ServiceMonitor/PodMonitor selects the Camunda Service/pods and names a port that exists and reaches the metrics port",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    let monitors = Monitors::of(bundle);
    check_service_monitors(bundle, out);
    check_pod_monitors(bundle, out);
    for (workload, container) in bundle.camunda_workloads() {
        let env = Env::of(bundle, &workload, container);
        let Some(port) = metrics_port(&env, container) else {
            continue; // metrics-exposed reports it
        };
        if monitors.scrape_service_of(bundle, &workload, port)
            || monitors.scrape_pods_of(&workload, port)
        {
            continue;
        }
        if let Some(finding) = scraped_by_annotations(bundle, &workload, port) {
            out.push(finding);
            continue;
        }
        let services: Vec<String> = bundle
            .services_for(&workload)
            .iter()
            .map(|(e, _)| e.name().to_string())
            .collect();
        let hint = match services.first() {
            Some(service) => format!("add a ServiceMonitor selecting Service `{service}` with an endpoint on its metrics port"),
            None => "add a Service with a `metrics` port and a ServiceMonitor selecting it".to_string(),
        };
        out.push(RULE.finding(
            workload.entry,
            format!("nothing scrapes the metrics port {port}: {hint}"),
        ));
    }
}

const SCRAPE: &str = "prometheus.io/scrape";
const SCRAPE_PORT: &str = "prometheus.io/port";

/// `prometheus.io/*` annotations on the pod template or on a Service in front of the pods.
/// The Prometheus Operator ignores them; annotation-based scrape configs (the community
/// Prometheus chart's default `kubernetes-pods` and `kubernetes-service-endpoints` jobs) honour
/// them, scraping `prometheus.io/port` when set, else every declared port. Which Prometheus runs
/// is not in the bundle: a warning naming that assumption, or an error when even such a config
/// would miss the metrics port.
fn scraped_by_annotations(bundle: &Bundle, workload: &Workload, metrics: i32) -> Option<Finding> {
    let mut annotated: Vec<(String, Option<&str>, bool)> = Vec::new();
    if workload.pod_annotation(SCRAPE) == Some("true") {
        // An undeclared metrics port is metrics-exposed's finding, not said twice.
        annotated.push((
            "its pod template".to_string(),
            workload.pod_annotation(SCRAPE_PORT),
            true,
        ));
    }
    for (entry, service) in bundle.services_for(workload) {
        if entry.annotation(SCRAPE) != Some("true") {
            continue;
        }
        let reaches = service_ports(service).any(|p| {
            workload
                .container_port(&target_of(p))
                .is_some_and(|c| c.container_port == metrics)
        });
        annotated.push((
            format!("Service `{}`", entry.name()),
            entry.annotation(SCRAPE_PORT),
            reaches,
        ));
    }
    let (place, _, _) = annotated.first()?;
    let missed = annotated.iter().find_map(|(place, port, reaches)| match port {
        Some(port) if port.trim().parse::<i32>().ok() != Some(metrics) => Some(format!(
            "{SCRAPE_PORT}: \"{port}\" on {place} is not the metrics port {metrics}: set it to \"{metrics}\""
        )),
        None if !reaches => Some(format!(
            "{SCRAPE}: \"true\" on {place}, but no port of it reaches the metrics port {metrics}: declare it, or set {SCRAPE_PORT}: \"{metrics}\""
        )),
        _ => None,
    });
    Some(match missed {
        Some(problem) => RULE.finding(workload.entry, problem),
        None => workload.entry.finding(
            RULE.id,
            Severity::Warning,
            format!(
                "the metrics port {metrics} is scraped only through `prometheus.io/*` annotations on {place}, with no ServiceMonitor or PodMonitor: this assumes a Prometheus with annotation-based scrape configs (the community Prometheus chart's default); the Prometheus Operator ignores these annotations, so add a ServiceMonitor if yours runs it"
            ),
        ),
    })
}

fn namespace_allowed(
    monitor: &Entry,
    selector: Option<&NamespaceSelector>,
    candidate: &Entry,
) -> bool {
    match selector {
        Some(s) if s.any == Some(true) => true,
        Some(NamespaceSelector {
            match_names: Some(names),
            ..
        }) if !names.is_empty() => candidate
            .namespace
            .as_ref()
            .is_none_or(|ns| names.contains(ns)),
        _ => monitor.same_namespace(candidate),
    }
}

fn selected_services<'a>(
    bundle: &'a Bundle,
    monitor: &Entry,
    spec: &'a ServiceMonitorSpec,
) -> Vec<(&'a Entry, &'a Service)> {
    bundle
        .services_selected_by(&spec.selector)
        .filter(|(entry, _)| namespace_allowed(monitor, spec.namespace_selector.as_ref(), entry))
        .collect()
}

fn selected_pods<'a>(
    bundle: &'a Bundle,
    monitor: &Entry,
    spec: &'a PodMonitorSpec,
) -> Vec<Workload<'a>> {
    bundle
        .workloads_selected_by(&spec.selector)
        .filter(|w| namespace_allowed(monitor, spec.namespace_selector.as_ref(), w.entry))
        .collect()
}

/// Which monitors select which Service and which pods, worked out once per monitor through the
/// label index, so that judging each workload does not try every monitor again.
struct Monitors<'a> {
    /// Service entry → the ServiceMonitors selecting it.
    by_service: HashMap<*const Entry, Vec<&'a ServiceMonitorSpec>>,
    /// Workload entry → the PodMonitors selecting its pods.
    by_workload: HashMap<*const Entry, Vec<&'a PodMonitorSpec>>,
}

impl<'a> Monitors<'a> {
    fn of(bundle: &'a Bundle) -> Self {
        let mut by_service: HashMap<*const Entry, Vec<&'a ServiceMonitorSpec>> = HashMap::default();
        for (entry, monitor) in bundle.service_monitors() {
            for (service, _) in selected_services(bundle, entry, &monitor.spec) {
                by_service
                    .entry(std::ptr::from_ref(service))
                    .or_default()
                    .push(&monitor.spec);
            }
        }
        let mut by_workload: HashMap<*const Entry, Vec<&'a PodMonitorSpec>> = HashMap::default();
        for (entry, monitor) in bundle.pod_monitors() {
            for workload in selected_pods(bundle, entry, &monitor.spec) {
                by_workload
                    .entry(std::ptr::from_ref(workload.entry))
                    .or_default()
                    .push(&monitor.spec);
            }
        }
        Monitors {
            by_service,
            by_workload,
        }
    }

    /// A ServiceMonitor selects a Service in front of the workload with an endpoint whose port
    /// reaches the container's metrics port.
    fn scrape_service_of(&self, bundle: &Bundle, workload: &Workload, metrics: i32) -> bool {
        bundle
            .services_for(workload)
            .into_iter()
            .any(|(entry, service)| {
                let monitors = self.by_service.get(&std::ptr::from_ref(entry));
                monitors.into_iter().flatten().any(|spec| {
                    spec.endpoints.iter().any(|endpoint| {
                        let target = match (&endpoint.port, &endpoint.target_port) {
                            (Some(name), _) => service_ports(service)
                                .find(|p| p.name.as_deref() == Some(name.as_str()))
                                .map(target_of),
                            (None, Some(target)) => Some(target.clone()),
                            (None, None) => None,
                        };
                        target
                            .and_then(|t| workload.container_port(&t))
                            .is_some_and(|p| p.container_port == metrics)
                    })
                })
            })
    }

    /// A PodMonitor selects the workload's pods with an endpoint on the metrics port (by name or
    /// number).
    fn scrape_pods_of(&self, workload: &Workload, metrics: i32) -> bool {
        let monitors = self.by_workload.get(&std::ptr::from_ref(workload.entry));
        monitors.into_iter().flatten().any(|spec| {
            spec.pod_metrics_endpoints.iter().flatten().any(|endpoint| {
                let by_name = endpoint
                    .port
                    .as_ref()
                    .and_then(|name| workload.container_port(&IntOrString::String(name.clone())));
                by_name.is_some_and(|p| p.container_port == metrics)
                    || endpoint.port_number == Some(metrics)
            })
        })
    }
}

fn check_service_monitors(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, monitor) in bundle.service_monitors() {
        let services = selected_services(bundle, entry, &monitor.spec);
        if services.is_empty() {
            out.push(RULE.finding(
                entry,
                format!(
                    "spec.selector ({}) matches no Service{}: use the labels of the Service in front of Camunda",
                    describe_selector(&monitor.spec.selector),
                    namespaces_hint(entry, monitor.spec.namespace_selector.as_ref())
                ),
            ));
            continue;
        }
        for (index, endpoint) in monitor.spec.endpoints.iter().enumerate() {
            let Some(port) = endpoint.port.as_deref() else {
                continue;
            };
            for (service_entry, service) in &services {
                let names: Vec<&str> = service_ports(service)
                    .filter_map(|p| p.name.as_deref())
                    .collect();
                if !names.contains(&port) {
                    out.push(RULE.finding(
                        entry,
                        format!(
                            "spec.endpoints[{index}].port `{port}` is not a port name of Service `{}` (it has: {}): name one of its ports",
                            service_entry.name(),
                            if names.is_empty() { "no named ports".to_string() } else { names.join(", ") }
                        ),
                    ));
                }
            }
        }
    }
}

fn namespaces_hint(entry: &Entry, selector: Option<&NamespaceSelector>) -> String {
    match selector {
        Some(s) if s.any == Some(true) => " in any namespace".to_string(),
        Some(NamespaceSelector {
            match_names: Some(names),
            ..
        }) if !names.is_empty() => {
            format!(" in namespace(s) {}", names.join(", "))
        }
        _ => entry
            .namespace
            .as_deref()
            .map(|ns| format!(" in namespace {ns}"))
            .unwrap_or_default(),
    }
}

fn check_pod_monitors(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, monitor) in bundle.pod_monitors() {
        let pods = selected_pods(bundle, entry, &monitor.spec);
        if pods.is_empty() {
            out.push(RULE.finding(
                entry,
                format!(
                    "spec.selector ({}) matches no pod template{}: use the pod labels of the Camunda workload",
                    describe_selector(&monitor.spec.selector),
                    namespaces_hint(entry, monitor.spec.namespace_selector.as_ref())
                ),
            ));
            continue;
        }
        for (index, endpoint) in monitor
            .spec
            .pod_metrics_endpoints
            .iter()
            .flatten()
            .enumerate()
        {
            let Some(port) = endpoint.port.as_deref() else {
                continue;
            };
            for workload in &pods {
                if workload
                    .container_port(&IntOrString::String(port.to_string()))
                    .is_none()
                {
                    out.push(RULE.finding(
                        entry,
                        format!(
                            "spec.podMetricsEndpoints[{index}].port `{port}` is not a container port name of {}: name the metrics containerPort",
                            workload.entry.resource()
                        ),
                    ));
                }
            }
        }
    }
}
