use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::metrics_exposed::metrics_port;
use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{service_ports, target_of, Entry};
use crate::validate::env::Env;

pub const RULE: Rule = Rule {
    id: "metrics-not-public",
    severity: Severity::Error,
    description: "the metrics port is reachable only inside the cluster: no Ingress path and no NodePort/LoadBalancer port leads to it",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for backend in bundle.ingress_backends() {
        let Some((service_entry, service)) = bundle.service_named(backend.entry, backend.service)
        else {
            continue; // reference reports it
        };
        let Some(port) = backend.service_port(service) else {
            continue;
        };
        if is_metrics_port(bundle, service_entry, service, port) {
            out.push(RULE.finding(
                backend.entry,
                format!(
                    "routes to Service `{}` port {}, the metrics port: metrics must not be reachable through the ingress; route to the http port",
                    backend.service,
                    port_label(port)
                ),
            ));
        }
    }
    for (entry, service) in bundle.services() {
        let exposed_type = service
            .spec
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            .filter(|t| matches!(*t, "NodePort" | "LoadBalancer"));
        let Some(exposed_type) = exposed_type else {
            continue;
        };
        for port in service_ports(service) {
            if is_metrics_port(bundle, entry, service, port) {
                out.push(RULE.finding(
                    entry,
                    format!(
                        "type {exposed_type} exposes the metrics port {} outside the cluster: use a ClusterIP Service for metrics",
                        port_label(port)
                    ),
                ));
            }
        }
    }
}

fn port_label(port: &ServicePort) -> String {
    match &port.name {
        Some(name) => format!("`{name}` ({})", port.port),
        None => port.port.to_string(),
    }
}

/// Named like a metrics port, or reaching a Camunda container's metrics agent.
fn is_metrics_port(bundle: &Bundle, entry: &Entry, service: &Service, port: &ServicePort) -> bool {
    if port.name.as_deref().is_some_and(|n| n.contains("metrics")) {
        return true;
    }
    let target = target_of(port);
    bundle.workloads_for(entry, service).iter().any(|workload| {
        let Some(container_port) = workload.container_port(&target) else {
            return false;
        };
        if container_port
            .name
            .as_deref()
            .is_some_and(|n| n.contains("metrics"))
        {
            return true;
        }
        workload.camunda_container().is_some_and(|container| {
            let env = Env::of(bundle, workload, container);
            metrics_port(&env, container) == Some(container_port.container_port)
        })
    })
}
