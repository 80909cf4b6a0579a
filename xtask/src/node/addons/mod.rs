//! The node backend's cluster addons, as objects to apply in order: CoreDNS, metrics-server,
//! the Prometheus Operator and its Prometheus, and Traefik as the front door. Every image is
//! built on the host (`imagePullPolicy: Never`); upstream manifests are read from Go's module
//! cache at the pinned versions (the same modules the images are built from), never typed here.
//! CRDs are not here: the Prometheus Operator's and Gateway API's come from
//! `pins::NODE_PROMETHEUS_OPERATOR_CRDS` and `pins::NODE_GATEWAY_API_CRDS`, applied and
//! established first.
//!
//! Why Traefik is configured as it is, from its source at v3.6.25 (module
//! github.com/traefik/traefik/v3):
//! - `pkg/provider/kubernetes/ingress-nginx/kubernetes.go`: `SetDefaults` gives ingressClass
//!   `nginx` and controllerClass `k8s.io/ingress-nginx`; `shouldProcessIngress` takes an
//!   Ingress with `ingressClassName` only when an IngressClass of that name with that controller
//!   exists (`client.go` `filterIngressClass`): hence our IngressClass `nginx`.
//!   `applySSLRedirectConfiguration`: an Ingress with `spec.tls` redirects HTTP to HTTPS unless
//!   `ssl-redirect: "false"` (the default of `ssl-redirect` is "has TLS", as ingress-nginx's),
//!   with a RedirectScheme `https` and `ForcePermanentRedirect` (308), on the entry points
//!   without `http.tls` (`pkg/config/static/static_config.go` `NonTLSEntryPoints`).
//!   `buildService`: any non-empty `affinity` turns on a sticky cookie named
//!   `session-cookie-name` (default `INGRESSCOOKIE`), `Secure` from `session-cookie-secure`
//!   (default false), `SameSite` from `session-cookie-samesite` lower-cased, `Path` from
//!   `session-cookie-path` (default `/`), `Domain`, `MaxAge`, always `HttpOnly`.
//!   `annotations.go` has no `affinity-mode`: it is ignored; Traefik's cookie names one server
//!   (`pkg/server/service/loadbalancer/sticky.go`), which new replicas do not take over, so the
//!   behaviour is ingress-nginx's `persistent`. `publishStatusAddress` fills the Ingress status.
//! - `pkg/provider/kubernetes/gateway/kubernetes.go`: controllerName
//!   `traefik.io/gateway-controller`; a listener binds the entry point whose address ends in its
//!   port (`entryPointName`); `statusAddress.ip` fills the Gateway status. `client.go` watches
//!   GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes (v1), ReferenceGrants (v1beta1) and
//!   BackendTLSPolicies (v1): the Gateway API v1.4.0 standard channel of its go.mod.
//!   `features.go`: HTTPRoute scheme/port redirects supported, session persistence not.
//!   `httproute.go` `createRequestRedirect`: scheme https without a port leaves the port out.
//! - `docs/content/reference/dynamic-configuration/kubernetes-{ingress-nginx,gateway}-rbac.yml`:
//!   the ClusterRoles we bind to Traefik's ServiceAccount (`pins::NODE_TRAEFIK_RBAC`).

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance::cluster::apply::parse_documents;
use camunda_conformance::cluster::wait::Workload;
use camunda_conformance_controlplane::pins::{self, ModuleFiles};
use serde_json::{json, Value};

use super::cluster::CLUSTER_DNS;
use super::net::NODE_IP;
use crate::kind::addons::{
    monitoring_namespace, prometheus as prometheus_resource, MONITORING_NAMESPACE, PROMETHEUS_NAME,
};
use crate::kwok::control_plane::module_docs;

const COREDNS_YAML: &str = include_str!("coredns.yaml");
const TRAEFIK_YAML: &str = include_str!("traefik.yaml");

pub const KUBE_SYSTEM: &str = "kube-system";
pub const COREDNS: &str = "coredns";
pub const METRICS_SERVER: &str = "metrics-server";
pub const PROMETHEUS_OPERATOR: &str = "prometheus-operator";
pub const TRAEFIK_NAMESPACE: &str = "traefik";
pub const TRAEFIK: &str = "traefik";
/// The IngressClass the stack's Ingress names, claimed by Traefik's ingress-nginx provider.
pub const INGRESS_CLASS: &str = "nginx";
pub const INGRESS_CONTROLLER_CLASS: &str = "k8s.io/ingress-nginx";
pub const GATEWAY_CLASS: &str = "traefik";
pub const GATEWAY_CONTROLLER: &str = "traefik.io/gateway-controller";
/// Debian bookworm's Prometheus, which the operator runs (it is older than the operator's
/// compatibility matrix, v2.45.0 on; the operator gates its flags and config by this version).
pub const PROMETHEUS_IMAGE: &str = "camunda-conformance/prometheus:v3.16.0";
pub const PROMETHEUS_VERSION: &str = pins::PROMETHEUS_RELEASE;
/// Where metrics-server reads the CA that signed the kubelet's serving certificate: the
/// cluster CA the controller-manager publishes into every namespace (`--root-ca-file`), which
/// is the run's CA that issued the kubelet's serving certificate (SANs: node name and IP).
pub const KUBELET_CA_CONFIGMAP: &str = "kube-root-ca.crt";
const KUBELET_CA_DIR: &str = "/etc/kubelet-ca";

/// The Prometheus Operator's own manifests for itself (`example/rbac/prometheus-operator`, the
/// objects of its bundle.yaml without the CRDs) and for the Prometheus it runs
/// (`example/rbac/prometheus`). Not yet in `pins.rs` (move them there if wanted).
pub const PROMETHEUS_OPERATOR_MANIFESTS: ModuleFiles = ModuleFiles {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: pins::PROMETHEUS_OPERATOR,
    dir: "example/rbac/prometheus-operator",
    files: &[
        "prometheus-operator-service-account.yaml",
        "prometheus-operator-cluster-role.yaml",
        "prometheus-operator-cluster-role-binding.yaml",
        "prometheus-operator-deployment.yaml",
        "prometheus-operator-service.yaml",
    ],
};
pub const PROMETHEUS_RBAC: ModuleFiles = ModuleFiles {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: pins::PROMETHEUS_OPERATOR,
    dir: "example/rbac/prometheus",
    files: &[
        "prometheus-service-account.yaml",
        "prometheus-cluster-role.yaml",
        "prometheus-cluster-role-binding.yaml",
    ],
};

/// An image built on the host: `camunda-conformance/<program>:<pinned version>`.
pub fn image(program: &str, version: &str) -> String {
    format!("camunda-conformance/{program}:{version}")
}

/// A workload to await after an addon is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub workload: Workload,
    pub namespace: &'static str,
    pub name: String,
}

impl Rollout {
    fn deployment(namespace: &'static str, name: &str) -> Self {
        Rollout {
            workload: Workload::Deployment,
            namespace,
            name: name.to_string(),
        }
    }
}

/// One addon: its objects in apply order, then the workloads to await.
#[derive(Debug)]
pub struct Addon {
    pub name: &'static str,
    pub docs: Vec<Value>,
    /// The Prometheus StatefulSet is created by the operator some time after its resource is
    /// applied: a wait must tolerate NotFound for a while.
    pub rollouts: Vec<Rollout>,
}

/// The upstream manifests, as read from the module cache.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub metrics_server: Vec<Value>,
    pub prometheus_operator: Vec<Value>,
    pub prometheus_rbac: Vec<Value>,
    pub traefik_rbac: Vec<Value>,
}

impl Upstream {
    /// From Go's module cache (`go mod download` first when missing; the images' builds have
    /// normally downloaded these modules already).
    pub fn from_module_cache() -> Result<Self> {
        Ok(Upstream {
            metrics_server: module_docs(&pins::NODE_METRICS_SERVER_MANIFESTS)?,
            prometheus_operator: module_docs(&PROMETHEUS_OPERATOR_MANIFESTS)?,
            prometheus_rbac: module_docs(&PROMETHEUS_RBAC)?,
            traefik_rbac: module_docs(&pins::NODE_TRAEFIK_RBAC)?,
        })
    }
}

/// Every addon, in install order, with upstream manifests from the module cache; the
/// Prometheus selects the ServiceMonitors of `camunda_namespace`.
pub fn addons(camunda_namespace: &str) -> Result<Vec<Addon>> {
    addons_from(Upstream::from_module_cache()?, camunda_namespace)
}

/// [`addons`] from upstream manifests already read.
pub fn addons_from(upstream: Upstream, camunda_namespace: &str) -> Result<Vec<Addon>> {
    Ok(vec![
        Addon {
            name: "coredns",
            docs: coredns()?,
            rollouts: vec![Rollout::deployment(KUBE_SYSTEM, COREDNS)],
        },
        Addon {
            name: "metrics-server",
            docs: metrics_server(upstream.metrics_server)?,
            rollouts: vec![Rollout::deployment(KUBE_SYSTEM, METRICS_SERVER)],
        },
        Addon {
            name: "prometheus-operator",
            docs: prometheus_operator(upstream.prometheus_operator, upstream.prometheus_rbac)?,
            rollouts: vec![Rollout::deployment(
                MONITORING_NAMESPACE,
                PROMETHEUS_OPERATOR,
            )],
        },
        Addon {
            name: "prometheus",
            docs: vec![prometheus(camunda_namespace)],
            rollouts: vec![Rollout {
                workload: Workload::StatefulSet,
                namespace: MONITORING_NAMESPACE,
                name: format!("prometheus-{PROMETHEUS_NAME}"),
            }],
        },
        Addon {
            name: "traefik",
            docs: traefik(upstream.traefik_rbac)?,
            rollouts: vec![Rollout::deployment(TRAEFIK_NAMESPACE, TRAEFIK)],
        },
    ])
}

fn parse(what: &str, text: &str) -> Result<Vec<Value>> {
    parse_documents(text).with_context(|| format!("parsing the embedded {what}"))
}

/// The object of that kind and name, or an error saying the manifest changed shape.
fn find<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> Result<&'a mut Value> {
    docs.iter_mut()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| {
            anyhow!("the pinned manifests have no {kind} {name}: update xtask/src/node/addons with the pin")
        })
}

/// The only container of a workload's pod template.
fn only_container<'a>(workload: &'a mut Value, what: &str) -> Result<&'a mut Value> {
    match workload["spec"]["template"]["spec"]["containers"].as_array_mut() {
        Some(list) if list.len() == 1 => Ok(&mut list[0]),
        _ => bail!("{what}: expected exactly one container in the pinned manifest"),
    }
}

/// Sets `--name=value` in a container's args: replaces the argument of that name, which must
/// exist when `must_exist`, else appends it.
fn set_arg(container: &mut Value, name: &str, value: &str, must_exist: bool) -> Result<()> {
    let container_name = container["name"].to_string();
    let args = container["args"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("container {container_name} has no args"))?;
    let prefix = format!("{name}=");
    let wanted = json!(format!("{name}={value}"));
    match args.iter_mut().find(|a| {
        a.as_str()
            .is_some_and(|a| a.starts_with(&prefix) || a == name)
    }) {
        Some(arg) => *arg = wanted,
        None if must_exist => {
            bail!("container {container_name}: no {name} argument in the pinned manifest")
        }
        None => args.push(wanted),
    }
    Ok(())
}

/// CoreDNS serving cluster.local at the cluster DNS address the kubelet hands to pods.
pub fn coredns() -> Result<Vec<Value>> {
    let mut docs = parse("coredns.yaml", COREDNS_YAML)?;
    find(&mut docs, "Service", "kube-dns")?["spec"]["clusterIP"] = json!(CLUSTER_DNS);
    let deployment = find(&mut docs, "Deployment", COREDNS)?;
    only_container(deployment, "coredns")?["image"] = json!(image("coredns", pins::COREDNS));
    Ok(docs)
}

/// metrics-server's own `manifests/base` rendered as its kustomization does (`commonLabels:
/// k8s-app: metrics-server`), then: the local image, the node's InternalIP, and the kubelet's
/// certificate verified against the cluster CA (ConfigMap `kube-root-ca.crt`) instead of
/// the kind backend's `--kubelet-insecure-tls`.
pub fn metrics_server(mut docs: Vec<Value>) -> Result<Vec<Value>> {
    const LABEL: &str = "k8s-app";
    for doc in docs.iter_mut() {
        doc["metadata"]["labels"][LABEL] = json!(METRICS_SERVER);
    }
    find(&mut docs, "Service", METRICS_SERVER)?["spec"]["selector"][LABEL] = json!(METRICS_SERVER);
    find(&mut docs, "APIService", "v1beta1.metrics.k8s.io")?;
    let deployment = find(&mut docs, "Deployment", METRICS_SERVER)?;
    deployment["spec"]["selector"]["matchLabels"][LABEL] = json!(METRICS_SERVER);
    deployment["spec"]["template"]["metadata"]["labels"][LABEL] = json!(METRICS_SERVER);
    let pod = &mut deployment["spec"]["template"]["spec"];
    match pod["volumes"].as_array_mut() {
        Some(volumes) => {
            volumes.push(json!({"name": "kubelet-ca", "configMap": {"name": KUBELET_CA_CONFIGMAP}}))
        }
        None => bail!("metrics-server: the pinned Deployment has no volumes"),
    }
    let container = only_container(deployment, METRICS_SERVER)?;
    container["image"] = json!(image(METRICS_SERVER, pins::METRICS_SERVER));
    container["imagePullPolicy"] = json!("Never");
    set_arg(
        container,
        "--kubelet-preferred-address-types",
        "InternalIP",
        true,
    )?;
    // Not shorter: with a 10 s window (and a 5 s HPA sync) the HPA scaled out on the Camunda
    // JVMs' own start-up CPU right after the deploy, and the scaling suite then waited ~45 s
    // for it to settle before its load.
    set_arg(container, "--metric-resolution", "15s", false)?;
    // Upstream waits 20 s before the first readiness probe and probes every 10 s; ready is
    // /readyz (two scrapes stored), so probing early and often only shows it sooner.
    let probe = &mut container["readinessProbe"];
    if !probe.is_object() {
        bail!("metrics-server: the pinned container has no readinessProbe");
    }
    probe["initialDelaySeconds"] = json!(2);
    probe["periodSeconds"] = json!(2);
    set_arg(
        container,
        "--kubelet-certificate-authority",
        &format!("{KUBELET_CA_DIR}/ca.crt"),
        false,
    )?;
    match container["volumeMounts"].as_array_mut() {
        Some(mounts) => mounts
            .push(json!({"name": "kubelet-ca", "mountPath": KUBELET_CA_DIR, "readOnly": true})),
        None => bail!("metrics-server: the pinned container has no volumeMounts"),
    }
    apply_order(&mut docs);
    Ok(docs)
}

/// Whether objects of this kind live in a namespace (for the kinds the upstream files hold).
fn namespaced(kind: &str) -> bool {
    !matches!(
        kind,
        "ClusterRole"
            | "ClusterRoleBinding"
            | "Namespace"
            | "CustomResourceDefinition"
            | "APIService"
            | "IngressClass"
            | "GatewayClass"
    )
}

/// Upstream files come in file-name order (`module_docs` sorts them): put each object after
/// what it needs (a Deployment after its ServiceAccount, an APIService after its Service).
fn apply_order(docs: &mut [Value]) {
    const ORDER: [&str; 9] = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
    ];
    docs.sort_by_key(|d| {
        let kind = d["kind"].as_str().unwrap_or_default();
        ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
    });
}

/// Moves upstream objects written for `default` to `namespace`, bindings' subjects included.
fn into_namespace(docs: &mut [Value], namespace: &str) {
    for doc in docs.iter_mut() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if namespaced(&kind) {
            doc["metadata"]["namespace"] = json!(namespace);
        }
        if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
            for subject in subjects
                .iter_mut()
                .filter(|s| s["kind"] == "ServiceAccount")
            {
                subject["namespace"] = json!(namespace);
            }
        }
    }
}

/// The operator's own objects and the Prometheus ServiceAccount and RBAC, in `monitoring`, with
/// the local operator and config-reloader images.
pub fn prometheus_operator(
    mut operator: Vec<Value>,
    mut prometheus_rbac: Vec<Value>,
) -> Result<Vec<Value>> {
    into_namespace(&mut operator, MONITORING_NAMESPACE);
    into_namespace(&mut prometheus_rbac, MONITORING_NAMESPACE);
    find(&mut prometheus_rbac, "ServiceAccount", "prometheus")?;
    let deployment = find(&mut operator, "Deployment", PROMETHEUS_OPERATOR)?;
    let container = only_container(deployment, PROMETHEUS_OPERATOR)?;
    container["image"] = json!(image(PROMETHEUS_OPERATOR, pins::PROMETHEUS_OPERATOR));
    container["imagePullPolicy"] = json!("Never");
    set_arg(
        container,
        "--prometheus-config-reloader",
        &image("prometheus-config-reloader", pins::PROMETHEUS_OPERATOR),
        true,
    )?;
    let mut docs = vec![monitoring_namespace()];
    docs.extend(operator);
    docs.extend(prometheus_rbac);
    apply_order(&mut docs);
    Ok(docs)
}

/// The kind backend's Prometheus resource, running Debian's Prometheus built here. The
/// operator gives the same pull policy to its config-reloader containers.
pub fn prometheus(camunda_namespace: &str) -> Value {
    let mut resource = prometheus_resource(camunda_namespace);
    resource["spec"]["image"] = json!(PROMETHEUS_IMAGE);
    resource["spec"]["version"] = json!(PROMETHEUS_VERSION);
    resource["spec"]["imagePullPolicy"] = json!("Never");
    // The operator's startup probe asks /-/ready every 15 s (up to 60 times): Prometheus is
    // ready in about a second here, and waits a probe period for nothing. The same 15 minute
    // budget, asked every second; the operator merges this into the container it generates.
    resource["spec"]["containers"] = json!([{
        "name": "prometheus",
        "startupProbe": {"periodSeconds": 1, "failureThreshold": 900},
    }]);
    resource
}

/// Traefik on the node's network with its ingress-nginx and Gateway API providers, its own
/// ClusterRoles bound to its ServiceAccount, the IngressClass `nginx` and the GatewayClass
/// `traefik`.
pub fn traefik(upstream_rbac: Vec<Value>) -> Result<Vec<Value>> {
    let mut docs = parse("traefik.yaml", TRAEFIK_YAML)?;
    find(&mut docs, "IngressClass", INGRESS_CLASS)?["spec"]["controller"] =
        json!(INGRESS_CONTROLLER_CLASS);
    find(&mut docs, "GatewayClass", GATEWAY_CLASS)?["spec"]["controllerName"] =
        json!(GATEWAY_CONTROLLER);
    let deployment = find(&mut docs, "Deployment", TRAEFIK)?;
    let container = only_container(deployment, TRAEFIK)?;
    container["image"] = json!(image(TRAEFIK, pins::TRAEFIK));
    // The node's address in the status of what Traefik serves: discovery connects there.
    set_arg(
        container,
        "--providers.kubernetesingressnginx.publishStatusAddress",
        NODE_IP,
        false,
    )?;
    set_arg(
        container,
        "--providers.kubernetesgateway.statusAddress.ip",
        NODE_IP,
        false,
    )?;
    let roles: Vec<Value> = upstream_rbac
        .into_iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .collect();
    if roles.len() != 2 {
        bail!(
            "Traefik's RBAC files should hold two ClusterRoles (ingress-nginx, gateway), found {}",
            roles.len()
        );
    }
    let bindings: Vec<Value> = roles
        .iter()
        .map(|role| {
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": format!("{TRAEFIK}:{}", role["metadata"]["name"].as_str().unwrap_or_default())},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
                "subjects": [{"kind": "ServiceAccount", "name": TRAEFIK, "namespace": TRAEFIK_NAMESPACE}]
            })
        })
        .collect();
    // Namespace and ServiceAccount first, then RBAC, then the rest of the file.
    let rest = docs.split_off(2);
    docs.extend(roles);
    docs.extend(bindings);
    docs.extend(rest);
    Ok(docs)
}

#[cfg(test)]
mod tests;
