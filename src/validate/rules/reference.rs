use k8s_openapi::api::core::v1::Container;

use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{service_ports, Entry, Workload};

pub const RULE: Rule = Rule {
    id: "reference",
    severity: Severity::Error,
    description: "Service selectors match pods, Ingress backends name existing Service ports, and referenced ConfigMaps and Secret keys exist (a Secret from outside the bundle: a warning that it must exist before rollout)",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, service) in bundle.services() {
        let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
        let Some(selector) = selector.filter(|s| !s.is_empty()) else {
            continue;
        };
        if bundle.workloads_for(entry, service).is_empty() {
            let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(RULE.finding(
                entry,
                format!("selector {} matches no pod template of the bundle: use the workload's pod labels", labels.join(", ")),
            ));
        }
    }
    for backend in bundle.ingress_backends() {
        let Some((_, service)) = bundle.service_named(backend.entry, backend.service) else {
            out.push(RULE.finding(
                backend.entry,
                format!(
                    "backend Service `{}` is not in the bundle: name the Camunda Service",
                    backend.service
                ),
            ));
            continue;
        };
        if backend.service_port(service).is_none() {
            let port = backend
                .port_name
                .map(str::to_string)
                .or(backend.port_number.map(|n| n.to_string()))
                .unwrap_or_else(|| "(none)".to_string());
            let names: Vec<String> = service_ports(service)
                .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
                .collect();
            out.push(RULE.finding(
                backend.entry,
                format!(
                    "backend port {port} is not a port of Service `{}` (it has: {}): name one of them",
                    backend.service,
                    names.join(", ")
                ),
            ));
        }
    }
    for workload in bundle.workloads() {
        for container in workload.containers() {
            container_references(bundle, &workload, container, out);
        }
        volume_references(bundle, &workload, out);
    }
}

fn container_references(
    bundle: &Bundle,
    workload: &Workload,
    container: &Container,
    out: &mut Vec<Finding>,
) {
    let mut missing = Vec::new();
    let mut out_of_band = Vec::new();
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(key_ref) = from
            .secret_key_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            if !bundle.provides_secret(workload.entry, &key_ref.name) {
                out_of_band.push(format!("Secret `{}` (env {})", key_ref.name, var.name));
            } else if let Some(keys) = bundle.secret_keys(workload.entry, &key_ref.name) {
                if !keys.contains(&key_ref.key.as_str()) {
                    missing.push(format!(
                        "key `{}` of Secret `{}` (env {})",
                        key_ref.key, key_ref.name, var.name
                    ));
                }
            }
        }
        if let Some(key_ref) = from
            .config_map_key_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            match bundle.config_map(workload.entry, &key_ref.name) {
                None => missing.push(format!("ConfigMap `{}` (env {})", key_ref.name, var.name)),
                Some(cm)
                    if !cm
                        .data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&key_ref.key)) =>
                {
                    missing.push(format!(
                        "key `{}` of ConfigMap `{}` (env {})",
                        key_ref.key, key_ref.name, var.name
                    ))
                }
                Some(_) => {}
            }
        }
    }
    for from in container.env_from.iter().flatten() {
        if let Some(r) = from
            .secret_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            if !bundle.provides_secret(workload.entry, &r.name) {
                out_of_band.push(format!("Secret `{}` (envFrom)", r.name));
            }
        }
        if let Some(r) = from
            .config_map_ref
            .as_ref()
            .filter(|r| r.optional != Some(true))
        {
            if bundle.config_map(workload.entry, &r.name).is_none() {
                missing.push(format!("ConfigMap `{}` (envFrom)", r.name));
            }
        }
    }
    for what in missing {
        out.push(RULE.finding(
            workload.entry,
            format!(
                "{} references {what}, which the bundle does not provide: add it or fix the name",
                container_label(container)
            ),
        ));
    }
    for what in out_of_band {
        out.push(out_of_band_secret(
            workload.entry,
            format!("{} references {what}", container_label(container)),
        ));
    }
}

/// A Secret the bundle does not create is fine when it is created out of band (by hand, a vault
/// operator, CI) — committing Secrets to git is the worse practice — but it must exist before
/// rollout: a warning, which fails only under `--strict`.
fn out_of_band_secret(entry: &Entry, what: String) -> Finding {
    entry.finding(
        RULE.id,
        Severity::Warning,
        format!("{what}, which the bundle does not create: it must exist in the cluster before rollout (or fix the name)"),
    )
}

fn volume_references(bundle: &Bundle, workload: &Workload, out: &mut Vec<Finding>) {
    let volumes = workload
        .template
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref());
    for volume in volumes.into_iter().flatten() {
        let mut secrets = Vec::new();
        let mut config_maps = Vec::new();
        if let Some(s) = volume.secret.as_ref().filter(|s| s.optional != Some(true)) {
            secrets.extend(s.secret_name.as_deref());
        }
        if let Some(c) = volume
            .config_map
            .as_ref()
            .filter(|c| c.optional != Some(true))
        {
            config_maps.push(c.name.as_str());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = source.secret.as_ref().filter(|s| s.optional != Some(true)) {
                secrets.push(s.name.as_str());
            }
            if let Some(c) = source
                .config_map
                .as_ref()
                .filter(|c| c.optional != Some(true))
            {
                config_maps.push(c.name.as_str());
            }
        }
        for name in secrets
            .into_iter()
            .filter(|n| !bundle.provides_secret(workload.entry, n))
        {
            out.push(out_of_band_secret(
                workload.entry,
                format!("volume `{}` references Secret `{name}`", volume.name),
            ));
        }
        for name in config_maps
            .into_iter()
            .filter(|n| bundle.config_map(workload.entry, n).is_none())
        {
            out.push(RULE.finding(
                workload.entry,
                format!("volume `{}` references ConfigMap `{name}`, which the bundle does not provide: add it or fix the name", volume.name),
            ));
        }
    }
}
