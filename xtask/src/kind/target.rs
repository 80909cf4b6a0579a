//! The target description the suites run against, built from the cluster's objects: the
//! Ingress (host, affinity cookie), the ServiceMonitor and its Service (scrape job, metrics
//! port), the Deployment (HTTP port) and its Ready pods, plus the local ends of the
//! port-forwards. Pure functions, tested on recorded objects under `fixtures/kube/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance_suites::{
    AllowedSkip, Backend, Bounds, Credentials, Disruptive, Ingress, Kubernetes, Prometheus,
    Replica, SessionMode, Sessions, StopHandle, Target,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::Ingress as KubeIngress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// What the Ingress promises the clients.
#[derive(Debug, PartialEq, Eq)]
pub struct IngressFacts {
    pub host: String,
    /// The Secret cert-manager writes the served certificate (and its `ca.crt`) into.
    pub tls_secret: String,
    /// `Some(cookie)` when ingress-nginx pins clients to a replica.
    pub affinity_cookie: Option<String>,
    /// The routed paths of the TLS host: engine-rest, and the webapps (forks move the latter,
    /// e.g. `/operaton`), so the suites follow the Ingress instead of assuming `/camunda`.
    pub rest_path: String,
    pub webapp_path: String,
}

const AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";
const COOKIE_NAME: &str = "nginx.ingress.kubernetes.io/session-cookie-name";

pub fn ingress_facts(ingress: &KubeIngress) -> Result<IngressFacts> {
    let name = ingress.metadata.name.as_deref().unwrap_or("?");
    let spec = ingress
        .spec
        .as_ref()
        .ok_or_else(|| anyhow!("Ingress {name} has no spec"))?;
    let tls = spec
        .tls
        .iter()
        .flatten()
        .find(|t| t.secret_name.is_some() && !t.hosts.as_deref().unwrap_or_default().is_empty())
        .ok_or_else(|| anyhow!("Ingress {name} has no TLS entry with hosts and a secret"))?;
    let host = tls.hosts.as_deref().unwrap_or_default()[0].clone();
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    let affinity_cookie =
        (annotations.get(AFFINITY).map(String::as_str) == Some("cookie")).then(|| {
            annotations
                .get(COOKIE_NAME)
                .cloned()
                .unwrap_or_else(|| "INGRESSCOOKIE".to_string())
        });
    let paths: Vec<String> = spec
        .rules
        .iter()
        .flatten()
        .filter(|rule| rule.host.as_deref() == Some(host.as_str()))
        .flat_map(|rule| rule.http.iter().flat_map(|http| http.paths.iter()))
        .filter_map(|p| {
            p.path
                .as_deref()
                .map(|path| path.trim_end_matches('/').to_string())
        })
        .filter(|path| !path.is_empty())
        .collect();
    let rest_path = paths
        .iter()
        .find(|p| p.ends_with("/engine-rest"))
        .cloned()
        .ok_or_else(|| anyhow!("Ingress {name} routes no /engine-rest path for {host}"))?;
    let webapp_path = paths
        .iter()
        .find(|p| **p != rest_path)
        .cloned()
        .ok_or_else(|| {
            anyhow!("Ingress {name} routes no webapp path for {host} besides {rest_path}")
        })?;
    Ok(IngressFacts {
        host,
        tls_secret: tls.secret_name.clone().unwrap_or_default(),
        affinity_cookie,
        rest_path,
        webapp_path,
    })
}

/// Where Prometheus scrapes the replicas, as the ServiceMonitor says.
#[derive(Debug, PartialEq, Eq)]
pub struct ScrapeFacts {
    /// The `job` label: the Service's `jobLabel` label value, else the Service name (the operator's rule).
    pub job: String,
    /// The container port the metrics endpoint lands on.
    pub metrics_port: u16,
}

pub fn scrape_facts(
    service_monitor: &Value,
    services: &[Service],
    deployment: &Deployment,
) -> Result<ScrapeFacts> {
    let monitor = service_monitor["metadata"]["name"].as_str().unwrap_or("?");
    let selector = service_monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .ok_or_else(|| anyhow!("ServiceMonitor {monitor} has no selector.matchLabels"))?;
    let service = services
        .iter()
        .find(|s| {
            let labels = s.metadata.labels.clone().unwrap_or_default();
            selector
                .iter()
                .all(|(k, v)| v.as_str() == labels.get(k).map(String::as_str))
        })
        .ok_or_else(|| anyhow!("ServiceMonitor {monitor} selects no Service"))?;
    let service_name = service.metadata.name.clone().unwrap_or_default();
    let port_name = service_monitor["spec"]["endpoints"][0]["port"]
        .as_str()
        .ok_or_else(|| anyhow!("ServiceMonitor {monitor}: its first endpoint names no port"))?;
    let service_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(port_name)))
        .ok_or_else(|| anyhow!("Service {service_name} has no port named {port_name}"))?;
    let metrics_port = match &service_port.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).context("targetPort out of range")?,
        Some(IntOrString::String(named)) => container_port(deployment, named)?,
        None => u16::try_from(service_port.port).context("port out of range")?,
    };
    let job = match service_monitor["spec"]["jobLabel"].as_str() {
        Some(label) => service
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .cloned()
            .unwrap_or_else(|| service_name.clone()),
        None => service_name,
    };
    Ok(ScrapeFacts { job, metrics_port })
}

/// The number of a named container port of the Deployment's pods.
pub fn container_port(deployment: &Deployment, name: &str) -> Result<u16> {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    pod.into_iter()
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| u16::try_from(p.container_port).context("containerPort out of range"))
        .transpose()?
        .ok_or_else(|| anyhow!("the Deployment's containers have no port named {name}"))
}

/// Ready, running, not terminating: the pods that take traffic now.
pub fn ready_pods(pods: &[Pod]) -> Vec<(String, String)> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let status = p.status.as_ref();
            status.and_then(|s| s.phase.as_deref()) == Some("Running")
                && status
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| Some((p.metadata.name.clone()?, p.status.as_ref()?.pod_ip.clone()?)))
        .collect()
}

/// Local ends of one pod's port-forward.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded {
    pub http: u16,
    pub metrics: u16,
}

/// Everything the description is made of.
pub struct Inputs<'a> {
    pub name: String,
    pub backend: Backend,
    pub context: &'a str,
    pub namespace: &'a str,
    pub deployment: &'a str,
    pub hpa: &'a str,
    pub ingress: &'a IngressFacts,
    /// Where the ingress's HTTPS and HTTP ports answer (kind: the host port mappings); `None`
    /// when nothing serves the Ingress (kwok).
    pub https: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub ca_file: PathBuf,
    pub username: String,
    pub password_file: PathBuf,
    pub scrape: &'a ScrapeFacts,
    pub prometheus_port: Option<u16>,
    /// Ready pods (name, IP) with their forwarded ports; `None`: simulated pods, described by
    /// their own address (nothing answers there).
    pub replicas: Vec<(String, String, Option<Forwarded>)>,
    /// The pods' HTTP container port.
    pub http_port: u16,
    pub kubeconfig: Option<PathBuf>,
    pub disruptive: bool,
    pub allowed_skips: Vec<AllowedSkip>,
}

pub fn build(inputs: Inputs<'_>) -> Result<Target> {
    if inputs.replicas.is_empty() {
        bail!(
            "no Ready pod of Deployment {}/{} to test",
            inputs.namespace,
            inputs.deployment
        );
    }
    let host = &inputs.ingress.host;
    let port_suffix = |addr: SocketAddr, default: u16| {
        if addr.port() == default {
            String::new()
        } else {
            format!(":{}", addr.port())
        }
    };
    let (mode, affinity_cookie) = match &inputs.ingress.affinity_cookie {
        Some(cookie) => (SessionMode::Sticky, cookie.clone()),
        None => (SessionMode::Shared, "INGRESSCOOKIE".to_string()),
    };
    let replicas = inputs
        .replicas
        .iter()
        .map(|(name, ip, forwarded)| Replica {
            name: name.clone(),
            http_url: match forwarded {
                Some(f) => format!("http://127.0.0.1:{}", f.http),
                None => format!("http://{ip}:{}", inputs.http_port),
            },
            metrics_url: Some(match forwarded {
                Some(f) => format!("http://127.0.0.1:{}/metrics", f.metrics),
                None => format!("http://{ip}:{}/metrics", inputs.scrape.metrics_port),
            }),
            prometheus_instance: Some(format!("{ip}:{}", inputs.scrape.metrics_port)),
            stop: inputs.disruptive.then(|| StopHandle::DeletePod {
                namespace: inputs.namespace.to_string(),
                name: name.clone(),
            }),
        })
        .collect();
    Ok(Target {
        name: inputs.name,
        backend: inputs.backend,
        ingress: Ingress {
            base_url: format!(
                "https://{host}{}",
                inputs
                    .https
                    .map(|addr| port_suffix(addr, 443))
                    .unwrap_or_default()
            ),
            host: Some(host.clone()),
            connect_to: inputs.https,
            http_url: inputs
                .http
                .map(|addr| format!("http://{host}{}", port_suffix(addr, 80))),
            ca_file: Some(inputs.ca_file),
            webapp_path: inputs.ingress.webapp_path.clone(),
            rest_path: inputs.ingress.rest_path.clone(),
        },
        sessions: Sessions {
            mode,
            affinity_cookie,
        },
        credentials: Credentials::from_file(inputs.username, inputs.password_file),
        prometheus: inputs.prometheus_port.map(|port| Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            job: inputs.scrape.job.clone(),
        }),
        replicas,
        kubernetes: Some(Kubernetes {
            context: Some(inputs.context.to_string()),
            kubeconfig: inputs.kubeconfig,
            namespace: inputs.namespace.to_string(),
            deployment: inputs.deployment.to_string(),
            hpa: inputs.hpa.to_string(),
        }),
        disruptive: Disruptive {
            allowed: inputs.disruptive,
        },
        allowed_skips: inputs
            .allowed_skips
            .into_iter()
            .chain(camunda_conformance_suites::kubernetes_skips(mode))
            // A read-only target declares that its disruptive checks are not to run.
            .chain(if inputs.disruptive {
                Vec::new()
            } else {
                camunda_conformance_suites::read_only_skips()
            })
            .collect(),
        bounds: Bounds::default(),
    })
}

/// Env var values of the Deployment's first container that come from Secrets: name → (secret, key).
pub fn secret_refs(deployment: &Deployment) -> BTreeMap<String, (String, String)> {
    let containers = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| &p.containers);
    containers
        .into_iter()
        .flatten()
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.clone(), (r.name.clone(), r.key.clone())))
        })
        .collect()
}

/// A plain env value of the Deployment's containers.
pub fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
    let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
    pod.containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == name)?
        .value
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::fixtures;
    use k8s_openapi::List;

    fn facts() -> (IngressFacts, ScrapeFacts, Vec<(String, String)>) {
        let ingress: KubeIngress = fixtures::load("ingress.json");
        let monitor: Value = fixtures::load("servicemonitor.json");
        let services: List<Service> = fixtures::load("services.json");
        let deployment: Deployment = fixtures::load("deployment-rolled-out.json");
        let pods: List<Pod> = fixtures::load("pods.json");
        (
            ingress_facts(&ingress).unwrap(),
            scrape_facts(&monitor, &services.items, &deployment).unwrap(),
            ready_pods(&pods.items),
        )
    }

    #[test]
    fn facts_come_from_the_recorded_objects() {
        let (ingress, scrape, pods) = facts();
        assert_eq!(ingress.host, "camunda.test");
        assert_eq!(ingress.tls_secret, "camunda-tls");
        assert_eq!(ingress.affinity_cookie.as_deref(), Some("CAMUNDA_AFFINITY"));
        assert_eq!(
            (ingress.webapp_path.as_str(), ingress.rest_path.as_str()),
            ("/camunda", "/engine-rest")
        );
        // The ServiceMonitor selects the `camunda` Service (not `camunda-headless`), whose port
        // `metrics` targets the container port named `metrics`.
        assert_eq!(
            scrape,
            ScrapeFacts {
                job: "camunda".into(),
                metrics_port: 9404
            }
        );
        // The terminating pod and the not-ready one are left out.
        assert_eq!(
            pods,
            vec![
                (
                    "camunda-6c9f7d8b5d-4xq7m".to_string(),
                    "10.244.0.17".to_string()
                ),
                (
                    "camunda-6c9f7d8b5d-9bz2d".to_string(),
                    "10.244.0.18".to_string()
                ),
            ]
        );
    }

    #[test]
    fn target_from_cluster_objects_validates_and_reads_back() {
        let (ingress, scrape, pods) = facts();
        let replicas = pods
            .into_iter()
            .enumerate()
            .map(|(i, (name, ip))| {
                (
                    name,
                    ip,
                    Some(Forwarded {
                        http: 31000 + i as u16,
                        metrics: 32000 + i as u16,
                    }),
                )
            })
            .collect();
        let target = build(Inputs {
            name: "kind-sticky".into(),
            backend: Backend::Kind,
            context: "kind-camunda-conformance",
            namespace: "camunda",
            deployment: "camunda",
            hpa: "camunda",
            ingress: &ingress,
            https: Some("127.0.0.1:18443".parse().unwrap()),
            http: Some("127.0.0.1:18080".parse().unwrap()),
            ca_file: "ca.crt".into(),
            username: "conformance".into(),
            password_file: "/tmp/pw".into(),
            scrape: &scrape,
            prometheus_port: Some(39090),
            replicas,
            http_port: 8080,
            kubeconfig: None,
            disruptive: true,
            allowed_skips: Vec::new(),
        })
        .unwrap();
        target.validate().unwrap();
        assert_eq!(target.ingress.base_url, "https://camunda.test:18443");
        assert_eq!(
            target.ingress.http_url.as_deref(),
            Some("http://camunda.test:18080")
        );
        assert_eq!(target.sessions.mode, SessionMode::Sticky);
        assert_eq!(target.sessions.affinity_cookie, "CAMUNDA_AFFINITY");
        assert_eq!(
            target.replicas[1].prometheus_instance.as_deref(),
            Some("10.244.0.18:9404")
        );
        assert_eq!(target.replicas[0].http_url, "http://127.0.0.1:31000");
        assert_eq!(
            target.replicas[0].stop,
            Some(StopHandle::DeletePod {
                namespace: "camunda".into(),
                name: "camunda-6c9f7d8b5d-4xq7m".into()
            })
        );
        let toml = target.to_toml().unwrap();
        assert!(toml.contains("delete_pod"), "{toml}");
        assert!(!toml.contains("password ="), "no inline password: {toml}");
    }

    #[test]
    fn default_ports_are_left_out_of_urls_and_no_pods_is_an_error() {
        let (ingress, scrape, _) = facts();
        let inputs = |replicas| Inputs {
            name: "existing".into(),
            backend: Backend::Existing,
            context: "staging",
            namespace: "camunda",
            deployment: "camunda",
            hpa: "camunda",
            ingress: &ingress,
            https: Some("10.0.0.5:443".parse().unwrap()),
            http: Some("10.0.0.5:80".parse().unwrap()),
            ca_file: "ca.crt".into(),
            username: "u".into(),
            password_file: "p".into(),
            scrape: &scrape,
            prometheus_port: Some(1),
            replicas,
            http_port: 8080,
            kubeconfig: None,
            disruptive: false,
            allowed_skips: Vec::new(),
        };
        let target = build(inputs(vec![(
            "p".into(),
            "10.1.1.1".into(),
            Some(Forwarded {
                http: 1,
                metrics: 2,
            }),
        )]))
        .unwrap();
        assert_eq!(target.ingress.base_url, "https://camunda.test");
        assert_eq!(
            target.ingress.http_url.as_deref(),
            Some("http://camunda.test")
        );
        assert_eq!(
            target.replicas[0].stop, None,
            "not disruptive: no stop handle"
        );
        // Read-only: its disruptive checks may skip under --strict, the others may not.
        let allowed = |id: &str| target.allowed_skips.iter().any(|a| a.covers(id));
        assert!(allowed("scaling.scale-out") && allowed("cluster.deploy"));
        assert!(!allowed("auth.no-credentials") && !allowed("scaling.hpa-metrics"));
        assert!(build(inputs(vec![]))
            .unwrap_err()
            .to_string()
            .contains("no Ready pod"));
    }

    #[test]
    fn paths_follow_the_ingress_and_a_missing_rest_route_is_an_error() {
        let mut ingress: serde_json::Value = fixtures::load("ingress.json");
        ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/operaton/".into();
        let facts = ingress_facts(&serde_json::from_value(ingress.clone()).unwrap()).unwrap();
        assert_eq!(facts.webapp_path, "/operaton");
        ingress["spec"]["rules"][0]["http"]["paths"][1]["path"] = "/api".into();
        let err = ingress_facts(&serde_json::from_value(ingress).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/engine-rest"), "{err}");
    }

    #[test]
    fn a_monitor_that_selects_nothing_is_reported() {
        let mut monitor: Value = fixtures::load("servicemonitor.json");
        monitor["spec"]["selector"]["matchLabels"] = serde_json::json!({"app": "camunda-bpm"});
        let services: List<Service> = fixtures::load("services.json");
        let deployment: Deployment = fixtures::load("deployment-rolled-out.json");
        let err = scrape_facts(&monitor, &services.items, &deployment)
            .unwrap_err()
            .to_string();
        assert!(err.contains("selects no Service"), "{err}");
    }

    #[test]
    fn secret_references_and_env_values_are_read_from_the_deployment() {
        let deployment: Deployment = fixtures::load("deployment-rolled-out.json");
        let refs = secret_refs(&deployment);
        assert_eq!(
            refs["CAMUNDA_BPM_ADMIN_USER_PASSWORD"],
            ("camunda-admin".to_string(), "password".to_string())
        );
        assert_eq!(
            env_value(&deployment, "CAMUNDA_BPM_ADMIN_USER_ID").as_deref(),
            Some("conformance")
        );
    }
}
