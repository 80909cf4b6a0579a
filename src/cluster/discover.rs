//! `run --kube-context`: the target description discovered from a namespace. The route in
//! front of engine-rest (an Ingress, else a Gateway API HTTPRoute) names the Camunda Service;
//! its selector the Deployment; the Deployment its Ready pods, its HPA and the monitor that
//! scrapes it (ServiceMonitor or PodMonitor: metrics port and path); the credentials come from
//! the Secret the user names, else from the Deployment's admin-password secretKeyRef. The pure
//! parts are tested on recorded objects under `fixtures/kube/`.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance_suites::{
    AllowedSkip, Backend, Bounds, Credentials, Disruptive, Ingress, Kubernetes, Metrics,
    Prometheus, Replica, SessionMode, Sessions, StopHandle, Suite, Target,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress as KubeIngress;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use super::portforward::Forwards;

/// What the caller knows that the cluster does not say.
pub struct Request {
    /// The kubeconfig context (recorded in the target for the scaling suite's kubectl).
    pub context: Option<String>,
    pub namespace: String,
    /// The CA the suites trust for the ingress; `None`: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// `NAME[:KEY]` of the Secret holding the password (KEY defaults to `password`).
    pub credentials_secret: Option<String>,
    /// The user to log in as; default: the Deployment's `CAMUNDA_BPM_ADMIN_USER_ID`.
    pub username: Option<String>,
    /// `NAMESPACE/SERVICE` of Prometheus; absent there: the Prometheus checks skip.
    pub prometheus: String,
    /// Open loopback port-forwards to every Ready pod and Prometheus (a run), or describe the
    /// pods by their own addresses (a description printed for review).
    pub forward: bool,
    pub disruptive: bool,
    pub backend: Backend,
    /// Where the ingress's HTTPS and HTTP ports answer when not at the route's load-balancer
    /// address (kind: the host port mappings).
    pub ingress_addresses: Option<(SocketAddr, SocketAddr)>,
}

/// The default `--prometheus`: the Service prometheus-operator creates for a Prometheus.
pub const DEFAULT_PROMETHEUS: &str = "monitoring/prometheus-operated";

/// The result: the target (password in memory only) and the forwards it uses, open until dropped.
pub struct Discovered {
    pub target: Target,
    /// The password, for a caller that hands the target to another process (xtask).
    pub password: Password,
    pub forwards: Forwards,
    /// The scrape job of the replicas.
    pub job: String,
    /// What the caller should tell the user (what was assumed, what will skip).
    pub notes: Vec<String>,
}

/// A password read from the cluster: never shown by Debug.
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// What a route (Ingress or HTTPRoute) promises the clients.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteFacts {
    /// `Ingress/NAME` or `HTTPRoute/NAME`, for messages.
    pub source: String,
    pub host: String,
    /// The Service engine-rest is routed to.
    pub service: String,
    /// `Some(cookie)` when the route pins clients to a replica.
    pub affinity_cookie: Option<String>,
    /// engine-rest and the webapps (forks move the latter, e.g. `/operaton`).
    pub rest_path: String,
    pub webapp_path: String,
    /// The load-balancer address in the route's status (ip or hostname), if any.
    pub address: Option<String>,
}

const AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";
const COOKIE_NAME: &str = "nginx.ingress.kubernetes.io/session-cookie-name";

/// The Ingress facts, or `None` when it routes no `/engine-rest` path.
pub fn ingress_facts(ns: &str, ingress: &KubeIngress) -> Result<Option<RouteFacts>> {
    let name = ingress.metadata.name.as_deref().unwrap_or("?");
    let Some(spec) = ingress.spec.as_ref() else {
        return Ok(None);
    };
    let paths: Vec<(String, Option<String>, String)> = spec
        .rules
        .iter()
        .flatten()
        .flat_map(|rule| {
            let host = rule.host.clone().unwrap_or_default();
            rule.http.iter().flat_map(move |http| {
                let host = host.clone();
                http.paths.iter().map(move |p| {
                    let path = p.path.as_deref().unwrap_or("/").trim_end_matches('/');
                    let service = p.backend.service.as_ref().map(|s| s.name.clone());
                    (host.clone(), service, path.to_string())
                })
            })
        })
        .collect();
    let Some((host, service, rest_path)) = paths
        .iter()
        .find(|(_, _, path)| path.ends_with("/engine-rest"))
        .cloned()
    else {
        return Ok(None);
    };
    let service = service.ok_or_else(|| {
        anyhow!("Ingress {ns}/{name}: the {rest_path} path has no backend.service")
    })?;
    if host.is_empty() {
        bail!("Ingress {ns}/{name}: the rule routing {rest_path} has no host (spec.rules[].host)");
    }
    let covered = spec.tls.iter().flatten().any(|t| {
        t.hosts
            .iter()
            .flatten()
            .any(|h| h.eq_ignore_ascii_case(&host))
    });
    if !covered {
        bail!("Ingress {ns}/{name}: no spec.tls entry lists host {host}");
    }
    let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
    let affinity_cookie =
        (annotations.get(AFFINITY).map(String::as_str) == Some("cookie")).then(|| {
            annotations
                .get(COOKIE_NAME)
                .cloned()
                .unwrap_or_else(|| "INGRESSCOOKIE".to_string())
        });
    let webapp_path = webapp_path(&paths_of_host(&paths, &host), &rest_path)
        .ok_or_else(|| anyhow!("Ingress {ns}/{name}: no webapp path for {host} besides {rest_path} (spec.rules[].http.paths)"))?;
    let address = ingress
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|list| list.first())
        .and_then(|entry| entry.ip.clone().or_else(|| entry.hostname.clone()));
    Ok(Some(RouteFacts {
        source: format!("Ingress/{name}"),
        host,
        service,
        affinity_cookie,
        rest_path,
        webapp_path,
        address,
    }))
}

fn paths_of_host(paths: &[(String, Option<String>, String)], host: &str) -> Vec<String> {
    paths
        .iter()
        .filter(|(h, _, _)| h == host)
        .map(|(_, _, p)| p.clone())
        .collect()
}

/// The first routed path besides engine-rest (and `/`), where the webapps live.
fn webapp_path(paths: &[String], rest_path: &str) -> Option<String> {
    paths
        .iter()
        .find(|p| *p != rest_path && !p.is_empty())
        .cloned()
}

/// The HTTPRoute facts (Gateway API), or `None` when it routes no `/engine-rest` path. The
/// address is the parent Gateway's (filled by the caller).
pub fn http_route_facts(ns: &str, route: &Value) -> Result<Option<RouteFacts>> {
    let name = route["metadata"]["name"].as_str().unwrap_or("?");
    let rules = route["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut paths = Vec::new();
    let mut rest = None;
    for rule in &rules {
        let service = rule["backendRefs"][0]["name"].as_str().map(str::to_string);
        for m in rule["matches"].as_array().into_iter().flatten() {
            let path = m["path"]["value"]
                .as_str()
                .unwrap_or("/")
                .trim_end_matches('/');
            if path.ends_with("/engine-rest") && rest.is_none() {
                rest = Some((path.to_string(), service.clone(), rule));
            }
            paths.push(path.to_string());
        }
    }
    let Some((rest_path, service, rule)) = rest else {
        return Ok(None);
    };
    let service = service.ok_or_else(|| {
        anyhow!("HTTPRoute {ns}/{name}: the {rest_path} rule has no backendRefs[0].name")
    })?;
    let host = route["spec"]["hostnames"][0]
        .as_str()
        .ok_or_else(|| anyhow!("HTTPRoute {ns}/{name}: no spec.hostnames[0]"))?
        .to_string();
    let persistence = &rule["sessionPersistence"];
    let affinity_cookie = (persistence["type"].as_str().unwrap_or("Cookie") == "Cookie"
        && persistence.is_object())
    .then(|| {
        persistence["sessionName"]
            .as_str()
            .unwrap_or("INGRESSCOOKIE")
            .to_string()
    });
    let webapp_path = webapp_path(&paths, &rest_path).ok_or_else(|| {
        anyhow!("HTTPRoute {ns}/{name}: no webapp path besides {rest_path} (spec.rules[].matches[].path.value)")
    })?;
    Ok(Some(RouteFacts {
        source: format!("HTTPRoute/{name}"),
        host,
        service,
        affinity_cookie,
        rest_path,
        webapp_path,
        address: None,
    }))
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn template_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn service_selector(service: &Service) -> BTreeMap<String, String> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}

/// The one Deployment whose pods the Service selects.
pub fn deployment_of<'a>(
    ns: &str,
    service: &Service,
    deployments: &'a [Deployment],
) -> Result<&'a Deployment> {
    let name = service.metadata.name.as_deref().unwrap_or("?");
    let selector = service_selector(service);
    let matching: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| labels_match(&selector, &template_labels(d)))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => bail!("Service {ns}/{name}: spec.selector {selector:?} matches the pods of no Deployment"),
        many => bail!(
            "Service {ns}/{name}: spec.selector {selector:?} matches the pods of several Deployments ({})",
            many.iter().filter_map(|d| d.metadata.name.as_deref()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Where Prometheus scrapes the replicas, as the ServiceMonitor or PodMonitor says.
#[derive(Debug, PartialEq, Eq)]
pub struct ScrapeFacts {
    /// `ServiceMonitor/NAME` or `PodMonitor/NAME`.
    pub source: String,
    /// The `job` label prometheus-operator gives the targets.
    pub job: String,
    /// The container port the metrics endpoint lands on.
    pub metrics_port: u16,
    pub path: String,
}

/// The monitor that scrapes the Deployment's pods: a ServiceMonitor selecting a Service whose
/// selector matches them, else a PodMonitor selecting them.
pub fn scrape_facts(
    ns: &str,
    service_monitors: &[Value],
    pod_monitors: &[Value],
    services: &[Service],
    deployment: &Deployment,
) -> Result<ScrapeFacts> {
    let pod_labels = template_labels(deployment);
    let match_labels = |monitor: &Value| -> BTreeMap<String, String> {
        monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    for monitor in service_monitors {
        let name = monitor["metadata"]["name"].as_str().unwrap_or("?");
        let selector = match_labels(monitor);
        let Some(service) = services.iter().find(|s| {
            labels_match(&selector, &s.metadata.labels.clone().unwrap_or_default())
                && labels_match(&service_selector(s), &pod_labels)
        }) else {
            continue;
        };
        let service_name = service.metadata.name.clone().unwrap_or_default();
        let endpoint = &monitor["spec"]["endpoints"][0];
        let port_name = endpoint["port"].as_str().ok_or_else(|| {
            anyhow!("ServiceMonitor {ns}/{name}: spec.endpoints[0].port names no port")
        })?;
        let service_port = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(port_name)))
            .ok_or_else(|| {
                anyhow!("Service {ns}/{service_name}: no spec.ports[] named {port_name} (ServiceMonitor {name} scrapes it)")
            })?;
        let metrics_port = match &service_port.target_port {
            Some(IntOrString::Int(n)) => u16::try_from(*n)
                .with_context(|| format!("Service {ns}/{service_name}: targetPort {n}"))?,
            Some(IntOrString::String(named)) => container_port(ns, deployment, named)?,
            None => u16::try_from(service_port.port).with_context(|| {
                format!("Service {ns}/{service_name}: port {}", service_port.port)
            })?,
        };
        let job = match monitor["spec"]["jobLabel"].as_str() {
            Some(label) => service
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .cloned()
                .unwrap_or_else(|| service_name.clone()),
            None => service_name,
        };
        return Ok(ScrapeFacts {
            source: format!("ServiceMonitor/{name}"),
            job,
            metrics_port,
            path: endpoint["path"].as_str().unwrap_or("/metrics").to_string(),
        });
    }
    for monitor in pod_monitors {
        let name = monitor["metadata"]["name"].as_str().unwrap_or("?");
        if !labels_match(&match_labels(monitor), &pod_labels) {
            continue;
        }
        let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
        let port_name = endpoint["port"].as_str().ok_or_else(|| {
            anyhow!("PodMonitor {ns}/{name}: spec.podMetricsEndpoints[0].port names no port")
        })?;
        return Ok(ScrapeFacts {
            source: format!("PodMonitor/{name}"),
            // prometheus-operator's job label of a PodMonitor without jobLabel.
            job: format!("{ns}/{name}"),
            metrics_port: container_port(ns, deployment, port_name)?,
            path: endpoint["path"].as_str().unwrap_or("/metrics").to_string(),
        });
    }
    bail!(
        "namespace {ns}: no ServiceMonitor (spec.selector.matchLabels of a Service selecting the pods) or PodMonitor (spec.selector.matchLabels {pod_labels:?}) scrapes Deployment {}",
        deployment.metadata.name.as_deref().unwrap_or("?")
    )
}

/// The series names the monitor's path implies: Spring Boot's Micrometer page, else this
/// project's jmx_exporter names at that path.
pub fn metrics_names(path: &str) -> Metrics {
    if path == "/actuator/prometheus" {
        return Metrics::micrometer();
    }
    Metrics {
        path: (path != Metrics::default().path()).then(|| path.to_string()),
        ..Metrics::default()
    }
}

/// The number of a named container port of the Deployment's pods.
pub fn container_port(ns: &str, deployment: &Deployment, name: &str) -> Result<u16> {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let deployment_name = deployment.metadata.name.as_deref().unwrap_or("?");
    pod.into_iter()
        .flat_map(|p| p.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| u16::try_from(p.container_port).context("containerPort out of range"))
        .transpose()?
        .ok_or_else(|| {
            anyhow!("Deployment {ns}/{deployment_name}: no spec.template.spec.containers[].ports[] named {name}")
        })
}

/// Ready, running, not terminating: the pods that take traffic now, as (name, IP).
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

/// Env var values of the Deployment's containers that come from Secrets: name → (secret, key).
pub fn secret_refs(deployment: &Deployment) -> BTreeMap<String, (String, String)> {
    containers(deployment)
        .flat_map(|c| c.env.iter().flatten())
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.clone(), (r.name.clone(), r.key.clone())))
        })
        .collect()
}

/// A plain env value of the Deployment's containers.
pub fn env_value(deployment: &Deployment, name: &str) -> Option<String> {
    containers(deployment)
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn containers(
    deployment: &Deployment,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::Container> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .into_iter()
        .flat_map(|p| p.containers.iter())
}

/// The HPA whose scaleTargetRef is the Deployment.
pub fn hpa_of(hpas: &[HorizontalPodAutoscaler], deployment: &str) -> Option<String> {
    hpas.iter()
        .find(|h| {
            h.spec.as_ref().is_some_and(|s| {
                s.scale_target_ref.kind == "Deployment" && s.scale_target_ref.name == deployment
            })
        })
        .and_then(|h| h.metadata.name.clone())
}

/// The checks a target on kwok's simulated pods (no container runs) skips, with why.
pub fn simulated_skips() -> Vec<AllowedSkip> {
    use camunda_conformance_suites::{SIMULATED_PODS, SIMULATED_SCALING_SKIPS};
    Suite::ALL
        .into_iter()
        .filter(|suite| *suite != Suite::Scaling)
        .map(|suite| AllowedSkip::new(format!("{suite}.*"), SIMULATED_PODS))
        .chain(
            SIMULATED_SCALING_SKIPS
                .iter()
                .map(|(check, reason)| AllowedSkip::new(*check, *reason)),
        )
        .collect()
}

/// The addresses outside the cluster that reach the Deployment's pods without the route: every
/// port of a NodePort or LoadBalancer Service selecting them, on each node's InternalIP and
/// each load-balancer address. Nodes the user may not read are named in a note.
async fn exposed_addresses(
    client: &Client,
    services: &[Service],
    deployment: &Deployment,
    notes: &mut Vec<String>,
) -> Vec<SocketAddr> {
    let labels = template_labels(deployment);
    let exposing: Vec<&Service> = services
        .iter()
        .filter(|s| {
            let kind = s.spec.as_ref().and_then(|spec| spec.type_.as_deref());
            matches!(kind, Some("NodePort" | "LoadBalancer"))
                && !service_selector(s).is_empty()
                && labels_match(&service_selector(s), &labels)
        })
        .collect();
    if exposing.is_empty() {
        return Vec::new();
    }
    let node_ips: Vec<std::net::IpAddr> = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes
            .items
            .iter()
            .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect(),
        Err(err) => {
            notes.push(format!(
                "the nodes could not be listed ({err}): node ports are not probed"
            ));
            Vec::new()
        }
    };
    let mut exposed = Vec::new();
    for service in exposing {
        let Some(spec) = &service.spec else { continue };
        let balancers: Vec<std::net::IpAddr> = service
            .status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter().flatten())
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect();
        for port in spec.ports.iter().flatten() {
            if let Some(node_port) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
                exposed.extend(node_ips.iter().map(|ip| SocketAddr::new(*ip, node_port)));
            }
            if let Ok(service_port) = u16::try_from(port.port) {
                exposed.extend(
                    balancers
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, service_port)),
                );
            }
        }
    }
    exposed
}

/// Whether the pods run on nodes kwok manages (annotation `kwok.x-k8s.io/node: fake`). A Node
/// the user may not read counts as real.
pub async fn on_simulated_nodes(client: &Client, pods: &[Pod]) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let names: std::collections::BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.as_deref())
        .collect();
    if names.is_empty() {
        return false;
    }
    for name in names {
        let Ok(node) = nodes.get(name).await else {
            return false;
        };
        let fake = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kwok.x-k8s.io/node"))
            .is_some_and(|v| v == "fake");
        if !fake {
            return false;
        }
    }
    true
}

/// Lists a custom resource in the namespace; an API the cluster does not serve is no objects.
async fn list_custom(
    client: &Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Result<Vec<Value>> {
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let started = std::time::Instant::now();
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                return list
                    .items
                    .iter()
                    .map(|o| serde_json::to_value(o).context("serialising a listed object"))
                    .collect()
            }
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
            // A CRD installed a moment ago answers 429 "storage is (re)initializing" at first.
            Err(kube::Error::Api(status))
                if status.code == 429 && started.elapsed() < STORAGE_READY_WITHIN =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "listing {kind}s of namespace {ns} (after {}s)",
                        started.elapsed().as_secs()
                    )
                })
            }
        }
    }
}

/// How long a freshly installed CRD's storage may answer 429 before that is an error.
const STORAGE_READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn list<K>(client: &Client, ns: &str, what: &str) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {what} of namespace {ns}"))?
        .items)
}

/// The route in front of engine-rest: an Ingress, else an HTTPRoute (its Gateway's address).
async fn route(client: &Client, ns: &str) -> Result<RouteFacts> {
    for ingress in list::<KubeIngress>(client, ns, "Ingresses").await? {
        if let Some(facts) = ingress_facts(ns, &ingress)? {
            return Ok(facts);
        }
    }
    let routes = list_custom(
        client,
        ns,
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
        "httproutes",
    )
    .await?;
    for route in &routes {
        if let Some(mut facts) = http_route_facts(ns, route)? {
            let parent = &route["spec"]["parentRefs"][0];
            if let Some(gateway) = parent["name"].as_str() {
                let gateway_ns = parent["namespace"].as_str().unwrap_or(ns);
                let gateways = list_custom(
                    client,
                    gateway_ns,
                    "gateway.networking.k8s.io",
                    "v1",
                    "Gateway",
                    "gateways",
                )
                .await?;
                facts.address = gateways
                    .iter()
                    .find(|g| g["metadata"]["name"] == gateway)
                    .and_then(|g| g["status"]["addresses"][0]["value"].as_str())
                    .map(str::to_string);
            }
            return Ok(facts);
        }
    }
    bail!("namespace {ns}: no Ingress (spec.rules[].http.paths[].path) and no HTTPRoute (spec.rules[].matches[].path.value) routes a path ending in /engine-rest")
}

fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret.data.as_ref()?.get(key).map(|b| b.0.clone())
}

async fn read_secret(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
    why: &str,
) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("reading Secret {ns}/{name} ({why})"))?;
    let value = secret_value(&secret, key)
        .ok_or_else(|| anyhow!("Secret {ns}/{name}: no data.{key} ({why})"))?;
    String::from_utf8(value).with_context(|| format!("Secret {ns}/{name}: data.{key} is not UTF-8"))
}

const USER_VAR: &str = "CAMUNDA_BPM_ADMIN_USER_ID";
const PASSWORD_VAR: &str = "CAMUNDA_BPM_ADMIN_USER_PASSWORD";

/// The user and password the suites log in with.
async fn credentials(
    client: &Client,
    request: &Request,
    deployment: &Deployment,
) -> Result<(String, Password)> {
    let ns = request.namespace.as_str();
    let name = deployment.metadata.name.as_deref().unwrap_or("?");
    let refs = secret_refs(deployment);
    let username = match (&request.username, env_value(deployment, USER_VAR), refs.get(USER_VAR)) {
        (Some(user), _, _) => user.clone(),
        (None, Some(user), _) => user,
        (None, None, Some((secret, key))) => read_secret(client, ns, secret, key, USER_VAR).await?,
        (None, None, None) => bail!("Deployment {ns}/{name}: no env {USER_VAR} (value or secretKeyRef) names the user to log in as: pass --username"),
    };
    let password = match &request.credentials_secret {
        Some(spec) => {
            let (secret, key) = spec.split_once(':').unwrap_or((spec, "password"));
            read_secret(client, ns, secret, key, "--credentials-secret").await?
        }
        None => {
            let (secret, key) = refs.get(PASSWORD_VAR).ok_or_else(|| {
                anyhow!("Deployment {ns}/{name}: env {PASSWORD_VAR} comes from no secretKeyRef: pass --credentials-secret NAME[:KEY]")
            })?;
            read_secret(client, ns, secret, key, PASSWORD_VAR).await?
        }
    };
    if password.is_empty() {
        bail!("the password read for user {username} is empty");
    }
    Ok((username, Password(password)))
}

/// A Ready pod behind `NAMESPACE/SERVICE` and the container port its first service port targets.
async fn service_pod(client: &Client, spec: &str) -> Result<Option<(String, String, u16)>> {
    let (ns, name) = spec
        .split_once('/')
        .ok_or_else(|| anyhow!("--prometheus {spec}: expected NAMESPACE/SERVICE"))?;
    let Some(service) = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .with_context(|| format!("reading Service {ns}/{name}"))?
    else {
        return Ok(None);
    };
    let selector = service_selector(&service);
    let port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .ok_or_else(|| anyhow!("Service {ns}/{name}: no spec.ports"))?;
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .with_context(|| format!("listing the pods of Service {ns}/{name}"))?;
    let Some(pod) = pods
        .items
        .iter()
        .find(|p| !ready_pods(std::slice::from_ref(*p)).is_empty())
    else {
        bail!("Service {ns}/{name}: no Ready pod matches spec.selector {selector:?}");
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let number = match &port.target_port {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(named)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(named))
            .map(|p| p.container_port)
            .ok_or_else(|| anyhow!("pod {ns}/{pod_name}: no container port named {named} (Service {name} targets it)"))?,
        None => port.port,
    };
    let number =
        u16::try_from(number).with_context(|| format!("Service {ns}/{name}: port {number}"))?;
    Ok(Some((ns.to_string(), pod_name, number)))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .ok_or_else(|| anyhow!("{host} resolves to no address"))
}

/// Reads the namespace's objects, opens the forwards (when asked) and describes the target.
pub async fn discover(client: &Client, request: &Request) -> Result<Discovered> {
    let ns = request.namespace.as_str();
    let mut notes = Vec::new();
    let route = route(client, ns).await?;
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get(&route.service)
        .await
        .with_context(|| {
            format!(
                "reading Service {ns}/{} ({} routes engine-rest to it)",
                route.service, route.source
            )
        })?;
    let deployments = list::<Deployment>(client, ns, "Deployments").await?;
    let deployment = deployment_of(ns, &service, &deployments)?;
    let deployment_name = deployment.metadata.name.clone().unwrap_or_default();
    let services = list::<Service>(client, ns, "Services").await?;
    let service_monitors = list_custom(
        client,
        ns,
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
        "servicemonitors",
    )
    .await?;
    let pod_monitors = list_custom(
        client,
        ns,
        "monitoring.coreos.com",
        "v1",
        "PodMonitor",
        "podmonitors",
    )
    .await?;
    let scrape = scrape_facts(ns, &service_monitors, &pod_monitors, &services, deployment)?;
    let http_port = match container_port(ns, deployment, "http") {
        Ok(port) => port,
        Err(_) => {
            notes.push(format!("Deployment {ns}/{deployment_name} names no container port `http`: using 8080 (SERVER_PORT's default)"));
            8080
        }
    };
    let hpas = list::<HorizontalPodAutoscaler>(client, ns, "HorizontalPodAutoscalers").await?;
    let hpa = hpa_of(&hpas, &deployment_name).unwrap_or_else(|| {
        notes.push(format!("no HorizontalPodAutoscaler in {ns} targets Deployment {deployment_name} (spec.scaleTargetRef): the scaling checks will fail"));
        deployment_name.clone()
    });

    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = pod_api
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .with_context(|| format!("listing the pods of Deployment {ns}/{deployment_name}"))?;
    let ready = ready_pods(&pods.items);
    if ready.is_empty() {
        bail!(
            "Deployment {ns}/{deployment_name}: no Ready pod (spec.selector {}) to test",
            selector.join(",")
        );
    }
    let simulated = on_simulated_nodes(client, &pods.items).await;
    if simulated {
        notes.push("the pods run on kwok's simulated nodes: no port-forwards, no Prometheus; the suites that talk to Camunda are skipped".into());
    }
    let forward = request.forward && !simulated;

    let (username, password) = credentials(client, request, deployment).await?;

    let mut forwards = Forwards::default();
    let mut replicas = Vec::new();
    for (pod, ip) in &ready {
        let (http_url, metrics_base) = if forward {
            let http = forwards.open(&pod_api, ns, pod, http_port).await?;
            let metrics = forwards
                .open(&pod_api, ns, pod, scrape.metrics_port)
                .await?;
            (
                format!("http://127.0.0.1:{http}"),
                format!("http://127.0.0.1:{metrics}"),
            )
        } else {
            (
                format!("http://{ip}:{http_port}"),
                format!("http://{ip}:{}", scrape.metrics_port),
            )
        };
        replicas.push(Replica {
            name: pod.clone(),
            http_url,
            metrics_url: Some(format!("{metrics_base}{}", scrape.path)),
            prometheus_instance: Some(format!("{ip}:{}", scrape.metrics_port)),
            stop: request.disruptive.then(|| StopHandle::DeletePod {
                namespace: ns.to_string(),
                name: pod.clone(),
            }),
        });
    }
    let prometheus = if forward {
        match service_pod(client, &request.prometheus).await? {
            Some((prom_ns, pod, port)) => {
                let api: Api<Pod> = Api::namespaced(client.clone(), &prom_ns);
                let local = forwards.open(&api, &prom_ns, &pod, port).await?;
                Some(Prometheus {
                    url: format!("http://127.0.0.1:{local}"),
                    job: scrape.job.clone(),
                })
            }
            None => {
                notes.push(format!(
                    "no Service {} (--prometheus): the Prometheus checks skip",
                    request.prometheus
                ));
                None
            }
        }
    } else {
        None
    };

    let (https, http) = match (request.ingress_addresses, &route.address) {
        _ if simulated => (None, None),
        (Some(addresses), _) => (Some(addresses.0), Some(addresses.1)),
        (None, Some(address)) => (Some(resolve(address, 443)?), Some(resolve(address, 80)?)),
        (None, None) => {
            notes.push(format!(
                "{} has no load-balancer address in its status: {} is resolved through DNS",
                route.source, route.host
            ));
            (None, None)
        }
    };
    let exposed = if simulated {
        Vec::new()
    } else {
        exposed_addresses(client, &services, deployment, &mut notes).await
    };
    let port_suffix = |addr: Option<SocketAddr>, default: u16| match addr {
        Some(addr) if addr.port() != default => format!(":{}", addr.port()),
        _ => String::new(),
    };
    let host = &route.host;
    let (mode, affinity_cookie) = match &route.affinity_cookie {
        Some(cookie) => (SessionMode::Sticky, cookie.clone()),
        None => (SessionMode::Shared, "INGRESSCOOKIE".to_string()),
    };
    let backend = if simulated {
        Backend::Kwok
    } else {
        request.backend
    };
    // One kubeconfig file named by KUBECONFIG is what the scaling suite's kubectl must use too;
    // the target file resolves relative paths against its own folder.
    let kubeconfig = std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok());
    let target = Target {
        name: format!(
            "{}-{ns}",
            serde_json::to_value(backend)?.as_str().unwrap_or("cluster")
        ),
        backend,
        ingress: Ingress {
            base_url: format!("https://{host}{}", port_suffix(https, 443)),
            host: Some(host.clone()),
            connect_to: https,
            http_url: (!simulated).then(|| format!("http://{host}{}", port_suffix(http, 80))),
            ca_file: request.ca_file.clone(),
            webapp_path: route.webapp_path.clone(),
            rest_path: route.rest_path.clone(),
            exposed,
        },
        sessions: Sessions {
            mode,
            affinity_cookie,
        },
        credentials: Credentials::in_memory(username, password.expose().to_string()),
        prometheus,
        replicas,
        metrics: metrics_names(&scrape.path),
        kubernetes: Some(Kubernetes {
            context: request.context.clone(),
            kubeconfig,
            namespace: ns.to_string(),
            deployment: deployment_name,
            hpa,
        }),
        disruptive: Disruptive {
            allowed: request.disruptive,
        },
        allowed_skips: camunda_conformance_suites::kubernetes_skips(mode)
            .into_iter()
            .chain(if request.disruptive {
                Vec::new()
            } else {
                camunda_conformance_suites::read_only_skips()
            })
            .chain(if simulated {
                simulated_skips()
            } else {
                Vec::new()
            })
            .collect(),
        bounds: Bounds::default(),
    };
    target
        .validate()
        .context("the discovered target description")?;
    Ok(Discovered {
        target,
        password,
        forwards,
        job: scrape.job,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fixtures::load;
    use camunda_conformance_suites::MetricsPreset;
    use k8s_openapi::List;

    #[test]
    fn the_route_names_host_paths_cookie_service_and_address() {
        let ingress: KubeIngress = load("ingress.json");
        let facts = ingress_facts("camunda", &ingress).unwrap().unwrap();
        assert_eq!(facts.host, "camunda.test");
        assert_eq!(facts.service, "camunda");
        assert_eq!(facts.affinity_cookie.as_deref(), Some("CAMUNDA_AFFINITY"));
        assert_eq!(
            (facts.webapp_path.as_str(), facts.rest_path.as_str()),
            ("/camunda", "/engine-rest")
        );
        assert_eq!(facts.address.as_deref(), Some("localhost"));

        let mut ingress: Value = load("ingress.json");
        ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/operaton/".into();
        let facts = ingress_facts("camunda", &serde_json::from_value(ingress.clone()).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(facts.webapp_path, "/operaton");
        ingress["spec"]["rules"][0]["http"]["paths"][1]["path"] = "/api".into();
        assert!(
            ingress_facts("camunda", &serde_json::from_value(ingress.clone()).unwrap())
                .unwrap()
                .is_none()
        );
        ingress["spec"]["rules"][0]["http"]["paths"][1]["path"] = "/engine-rest".into();
        ingress["spec"]["tls"][0]["hosts"][0] = "other.test".into();
        let err = ingress_facts("camunda", &serde_json::from_value(ingress).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Ingress camunda/camunda") && err.contains("spec.tls"),
            "{err}"
        );
    }

    #[test]
    fn an_http_route_is_understood() {
        let route = serde_json::json!({
            "metadata": {"name": "camunda"},
            "spec": {
                "hostnames": ["camunda.example.org"],
                "parentRefs": [{"name": "gw"}],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/engine-rest"}}],
                     "backendRefs": [{"name": "camunda", "port": 8080}],
                     "sessionPersistence": {"sessionName": "AFFINITY", "type": "Cookie"}},
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/camunda"}}],
                     "backendRefs": [{"name": "camunda", "port": 8080}]}
                ]
            }
        });
        let facts = http_route_facts("camunda", &route).unwrap().unwrap();
        assert_eq!(facts.source, "HTTPRoute/camunda");
        assert_eq!(facts.host, "camunda.example.org");
        assert_eq!(facts.affinity_cookie.as_deref(), Some("AFFINITY"));
        assert_eq!(facts.webapp_path, "/camunda");
    }

    #[test]
    fn service_deployment_monitor_pods_and_secrets_come_from_the_recorded_objects() {
        let services: List<Service> = load("services.json");
        let deployment: Deployment = load("deployment-rolled-out.json");
        let camunda = services
            .items
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("camunda"))
            .unwrap();
        let found = deployment_of("camunda", camunda, std::slice::from_ref(&deployment)).unwrap();
        assert_eq!(found.metadata.name, deployment.metadata.name);

        let monitor: Value = load("servicemonitor.json");
        // The monitor selects `camunda` (not `camunda-headless`), whose port `metrics` targets
        // the container port named `metrics`.
        let scrape = scrape_facts(
            "camunda",
            std::slice::from_ref(&monitor),
            &[],
            &services.items,
            &deployment,
        )
        .unwrap();
        assert_eq!(
            scrape,
            ScrapeFacts {
                source: "ServiceMonitor/camunda".into(),
                job: "camunda".into(),
                metrics_port: 9404,
                path: "/metrics".into()
            }
        );

        let pod_monitor = serde_json::json!({
            "metadata": {"name": "camunda-pods"},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "camunda"}},
                     "podMetricsEndpoints": [{"port": "metrics", "path": "/actuator/prometheus"}]}
        });
        let scrape =
            scrape_facts("camunda", &[], &[pod_monitor], &services.items, &deployment).unwrap();
        assert_eq!(
            (
                scrape.job.as_str(),
                scrape.metrics_port,
                scrape.path.as_str()
            ),
            ("camunda/camunda-pods", 9404, "/actuator/prometheus")
        );
        // A monitor scraping Spring Boot's actuator page picks the micrometer names.
        assert_eq!(
            metrics_names(&scrape.path).preset,
            MetricsPreset::Micrometer
        );
        let jmx = metrics_names("/metrics");
        assert_eq!((jmx.preset, jmx.path), (MetricsPreset::Jmx, None));

        let mut elsewhere = monitor;
        elsewhere["spec"]["selector"]["matchLabels"] = serde_json::json!({"app": "camunda-bpm"});
        let err = scrape_facts("camunda", &[elsewhere], &[], &services.items, &deployment)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("namespace camunda") && err.contains("ServiceMonitor"),
            "{err}"
        );

        let pods: List<Pod> = load("pods.json");
        // The terminating pod and the not-ready one are left out.
        let names: Vec<String> = ready_pods(&pods.items)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["camunda-6c9f7d8b5d-4xq7m", "camunda-6c9f7d8b5d-9bz2d"]
        );

        assert_eq!(
            secret_refs(&deployment)[PASSWORD_VAR],
            ("camunda-admin".to_string(), "password".to_string())
        );
        assert_eq!(
            env_value(&deployment, USER_VAR).as_deref(),
            Some("conformance")
        );
        let err = container_port("camunda", &deployment, "nope")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Deployment camunda/") && err.contains("ports[] named nope"),
            "{err}"
        );
    }

    #[test]
    fn the_hpa_is_the_one_scaling_the_deployment() {
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "camunda-hpa"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "camunda"}, "maxReplicas": 4}
        })).unwrap();
        assert_eq!(
            hpa_of(std::slice::from_ref(&hpa), "camunda").as_deref(),
            Some("camunda-hpa")
        );
        assert_eq!(hpa_of(&[hpa], "other"), None);
    }

    #[test]
    fn simulated_pods_allow_exactly_the_skips_they_cause() {
        let skips = simulated_skips();
        let checks: Vec<&str> = skips.iter().map(|s| s.check.as_str()).collect();
        assert_eq!(
            checks,
            [
                "metrics.*",
                "auth.*",
                "tls.*",
                "cluster.*",
                "sessions.*",
                "scaling.new-pods-ready",
                "scaling.sessions-during-scale-out"
            ]
        );
        assert!(skips.iter().all(|s| !s.reason.is_empty()));
    }

    #[test]
    fn the_password_is_never_shown() {
        assert_eq!(format!("{:?}", Password("hunter2".into())), "Password(***)");
    }
}
