use std::path::Path;
use std::process::Command;

use camunda_conformance::cluster::discover::http_route_facts;
use serde_json::{json, Value};

use super::*;
use crate::artifacts::workspace_root;
use crate::backend::Route;

fn docs(text: &str) -> Vec<Value> {
    parse_documents(text).unwrap()
}

fn containers(doc: &Value) -> Vec<&Value> {
    doc["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The shapes of the pinned upstream files the patches rely on (abridged).
fn upstream_shapes() -> Upstream {
    Upstream {
        metrics_server: docs(
            r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: metrics-server, namespace: kube-system}
spec:
  template:
    spec:
      volumes: [{name: tmp-dir, emptyDir: {}}]
      containers:
      - name: metrics-server
        image: gcr.io/k8s-staging-metrics-server/metrics-server:master
        imagePullPolicy: IfNotPresent
        args: [--cert-dir=/tmp, "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname", --metric-resolution=15s]
        readinessProbe: {httpGet: {path: /readyz, port: https, scheme: HTTPS}, periodSeconds: 10, failureThreshold: 3, initialDelaySeconds: 20}
        volumeMounts: [{name: tmp-dir, mountPath: /tmp}]
"#,
        ),
        prometheus_operator: docs(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus-operator, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus-operator}
subjects: [{kind: ServiceAccount, name: prometheus-operator, namespace: default}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-operator, namespace: default}
spec:
  template:
    spec:
      containers:
      - name: prometheus-operator
        image: quay.io/prometheus-operator/prometheus-operator:v0.94.1
        args: [--kubelet-service=kube-system/kubelet, --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.94.1]
"#,
        ),
        prometheus_rbac: docs(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: default}]
"#,
        ),
        traefik_rbac: docs(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: traefik-ingress-nginx-controller}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: traefik-ingress-nginx-controller}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: traefik-ingress-nginx-controller}
subjects: [{kind: ServiceAccount, name: traefik-ingress-nginx-controller, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: gateway-role}
rules: []
"#,
        ),
    }
}

/// What every addon must hold whatever the upstream files say.
fn check_addons(addons: &[Addon]) {
    let names: Vec<&str> = addons.iter().map(|a| a.name).collect();
    assert_eq!(
        names,
        [
            "coredns",
            "metrics-server",
            "prometheus-operator",
            "prometheus",
            "traefik"
        ]
    );
    for addon in addons {
        assert!(!addon.rollouts.is_empty(), "{}", addon.name);
        for rollout in &addon.rollouts {
            if rollout.workload == Workload::Deployment {
                let found = addon.docs.iter().any(|d| {
                    d["kind"] == "Deployment"
                        && d["metadata"]["name"] == rollout.name.as_str()
                        && d["metadata"]["namespace"] == rollout.namespace
                });
                assert!(found, "{}: no Deployment {rollout:?}", addon.name);
            }
        }
        let position = |kind: &str| addon.docs.iter().position(|d| d["kind"] == kind);
        if let (Some(account), Some(deployment)) =
            (position("ServiceAccount"), position("Deployment"))
        {
            assert!(
                account < deployment,
                "{}: the ServiceAccount first",
                addon.name
            );
        }
        for doc in &addon.docs {
            assert!(
                doc.get("subjects").is_none_or(Value::is_array),
                "{}: {doc}",
                addon.name
            );
            assert!(
                doc["kind"] != "CustomResourceDefinition",
                "{}: CRDs are applied separately",
                addon.name
            );
            for container in containers(doc) {
                let image = container["image"].as_str().unwrap();
                assert!(
                    image.starts_with("camunda-conformance/"),
                    "{}: {image} is not built here",
                    addon.name
                );
                assert_eq!(container["imagePullPolicy"], "Never", "{image}");
            }
            if namespaced(doc["kind"].as_str().unwrap()) {
                assert!(
                    doc["metadata"]["namespace"].is_string(),
                    "{}: {} {} has no namespace",
                    addon.name,
                    doc["kind"],
                    doc["metadata"]["name"]
                );
            }
            for subject in doc["subjects"].as_array().into_iter().flatten() {
                assert_ne!(subject["namespace"], "default", "{}", addon.name);
            }
        }
    }
    let prometheus = &addons[3].docs[0];
    assert_eq!(prometheus["spec"]["image"], PROMETHEUS_IMAGE);
    assert_eq!(prometheus["spec"]["version"], PROMETHEUS_VERSION);
    assert_eq!(prometheus["spec"]["imagePullPolicy"], "Never");
    assert_eq!(prometheus["spec"]["serviceAccountName"], "prometheus");
    assert!(addons[2].docs.iter().any(|d| d["kind"] == "ServiceAccount"
        && d["metadata"]["name"] == "prometheus"
        && d["metadata"]["namespace"] == MONITORING_NAMESPACE));
}

#[test]
fn addons_from_the_upstream_shapes() {
    let addons = addons_from(upstream_shapes(), "camunda").unwrap();
    check_addons(&addons);
    assert_eq!(
        addons[3].docs[0]["spec"]["serviceMonitorNamespaceSelector"]["matchLabels"]
            ["kubernetes.io/metadata.name"],
        "camunda"
    );
}

/// The real files of the pinned modules.
/// `cargo test -p xtask -- --ignored addons_from_the_module_cache`
#[test]
#[ignore = "reads Go's module cache (go mod download)"]
fn addons_from_the_module_cache() {
    let addons = addons("camunda").unwrap();
    check_addons(&addons);
    let traefik = &addons[4].docs;
    let roles: Vec<&str> = traefik
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["gateway-role", "traefik-ingress-nginx-controller"]);
    let operator = addons[2]
        .docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    assert!(args(containers(operator)[0]).contains(
        &"--prometheus-config-reloader=camunda-conformance/prometheus-config-reloader:v0.94.1"
    ));
    let metrics = &addons[1].docs;
    let service = metrics.iter().find(|d| d["kind"] == "Service").unwrap();
    let deployment = metrics.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        json!({"k8s-app": "metrics-server"})
    );
}

#[test]
fn images_are_the_ones_built_here() {
    let built: Vec<String> = super::super::images::BINARY_IMAGES
        .iter()
        .map(|(_, repository, version)| format!("{repository}:{version}"))
        .collect();
    let addons = addons_from(upstream_shapes(), "camunda").unwrap();
    for addon in addons.iter().filter(|a| a.name != "prometheus") {
        for doc in &addon.docs {
            for container in containers(doc) {
                let image = container["image"].as_str().unwrap().to_string();
                assert!(built.contains(&image), "{image} is not in BINARY_IMAGES");
            }
        }
    }
    let reloader = image("prometheus-config-reloader", pins::PROMETHEUS_OPERATOR);
    assert!(built.contains(&reloader), "{reloader}");
}

#[test]
fn coredns_serves_the_cluster_zones_only_at_the_cluster_dns_address() {
    let docs = coredns().unwrap();
    let corefile = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"]["Corefile"]
        .as_str()
        .unwrap();
    assert!(corefile.starts_with("cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {"));
    for plugin in [
        "errors",
        "health",
        "ready",
        "kubernetes",
        "cache",
        "loop",
        "reload",
    ] {
        assert!(
            corefile.lines().any(|l| l.trim().starts_with(plugin)),
            "{plugin}"
        );
    }
    for absent in ["forward", "fallthrough", ".:53"] {
        assert!(!corefile.contains(absent), "{absent}");
    }
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["metadata"]["name"], "kube-dns");
    assert_eq!(service["metadata"]["namespace"], KUBE_SYSTEM);
    assert_eq!(service["spec"]["clusterIP"], "10.96.0.10");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["sysctls"][0]["name"],
        "net.ipv4.ip_unprivileged_port_start"
    );
    let container = containers(deployment)[0];
    assert_eq!(container["image"], "camunda-conformance/coredns:v1.15.0");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 8181);
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"])
    );
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let resources: Vec<&str> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        ["services", "pods", "namespaces", "endpointslices"]
    );
}

#[test]
fn metrics_server_verifies_the_kubelet_with_the_cluster_ca() {
    let docs = metrics_server(upstream_shapes().metrics_server).unwrap();
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = containers(deployment)[0];
    let args = args(container);
    assert!(args.contains(&"--kubelet-preferred-address-types=InternalIP"));
    assert!(args.contains(&"--kubelet-certificate-authority=/etc/kubelet-ca/ca.crt"));
    assert!(!args.contains(&"--kubelet-insecure-tls"));
    assert_eq!(
        args.iter()
            .filter(|a| a.starts_with("--metric-resolution"))
            .collect::<Vec<_>>(),
        [&"--metric-resolution=15s"]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["periodSeconds"], 2);
    assert_eq!(container["volumeMounts"][1]["mountPath"], "/etc/kubelet-ca");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][1]["configMap"]["name"],
        KUBELET_CA_CONFIGMAP
    );
    let mut missing = upstream_shapes().metrics_server;
    missing.retain(|d| d["kind"] != "APIService");
    assert!(metrics_server(missing).is_err());
}

#[test]
fn prometheus_operator_needs_the_config_reloader_argument() {
    let mut operator = upstream_shapes().prometheus_operator;
    operator[2]["spec"]["template"]["spec"]["containers"][0]["args"] = json!([]);
    let err = prometheus_operator(operator, upstream_shapes().prometheus_rbac)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--prometheus-config-reloader"), "{err}");
}

#[test]
fn traefik_is_the_front_door_on_the_node_network() {
    let docs = traefik(upstream_shapes().traefik_rbac).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "IngressClass",
            "GatewayClass",
            "Deployment"
        ]
    );
    for binding in docs.iter().filter(|d| d["kind"] == "ClusterRoleBinding") {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "traefik", "namespace": "traefik"}])
        );
    }
    let class = docs.iter().find(|d| d["kind"] == "IngressClass").unwrap();
    assert_eq!(class["metadata"]["name"], INGRESS_CLASS);
    assert_eq!(class["spec"]["controller"], INGRESS_CONTROLLER_CLASS);
    let gateway_class = docs.iter().find(|d| d["kind"] == "GatewayClass").unwrap();
    assert_eq!(gateway_class["metadata"]["name"], GATEWAY_CLASS);
    assert_eq!(gateway_class["spec"]["controllerName"], GATEWAY_CONTROLLER);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let container = containers(deployment)[0];
    assert_eq!(container["image"], "camunda-conformance/traefik:v3.6.25");
    let args = args(container);
    for wanted in [
        "--entryPoints.web.address=:80",
        "--entryPoints.websecure.address=:443",
        "--entryPoints.websecure.http.tls=true",
        "--providers.kubernetesingressnginx=true",
        "--providers.kubernetesgateway=true",
        "--log.level=INFO",
        "--providers.kubernetesingressnginx.publishStatusAddress=10.201.0.2",
        "--providers.kubernetesgateway.statusAddress.ip=10.201.0.2",
    ] {
        assert!(args.contains(&wanted), "{wanted}");
    }
    // The probe reaches the ping entry point at the node's address (hostNetwork).
    assert!(args.contains(&"--entryPoints.ping.address=:8082"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ping");
    let ping_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ping")
        .unwrap();
    assert_eq!(ping_port["containerPort"], 8082);
}

#[test]
fn the_route_gateway_component_names_the_traefik_gateway_class() {
    let text = include_str!("../../../../manifests/components/route-gateway/gateway.yaml");
    let objects = docs(text);
    let gateway = objects.iter().find(|d| d["kind"] == "Gateway").unwrap();
    assert_eq!(gateway["spec"]["gatewayClassName"], GATEWAY_CLASS);
}

// ---- the kustomize components, rendered as the harness renders them ----

/// `kubectl kustomize DIR` as parsed objects; fails loudly without kubectl.
fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .args(["kustomize"])
        .arg(dir)
        .output()
        .unwrap_or_else(|err| {
            panic!("these tests render the components with `kubectl kustomize`: kubectl must be on PATH ({err})")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    docs(&String::from_utf8(out.stdout).unwrap())
}

/// The overlay rendered alone and through the harness's generated kustomization.
fn render(overlay: &str, route: Route) -> (Vec<Value>, Vec<Value>) {
    let overlay = workspace_root().join("manifests/overlays").join(overlay);
    let work = tempfile::tempdir().unwrap();
    let dir = super::super::overlay_for(work.path(), &overlay, route).unwrap();
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let absolute = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .any(|path| Path::new(path.trim_matches(['"', '\''])).is_absolute());
    assert!(!absolute, "paths must be relative:\n{text}");
    (kustomize(&overlay), kustomize(&dir))
}

fn key(doc: &Value) -> String {
    format!(
        "{}/{}/{}",
        doc["kind"].as_str().unwrap_or_default(),
        doc["metadata"]["namespace"].as_str().unwrap_or_default(),
        doc["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The workload with every container's image mapped and pull policy `Never`, and the CPU
/// requests of Camunda and PostgreSQL sized for a 2-core node, as the node component should
/// leave it.
fn as_on_the_node(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let smaller_request = match (doc["kind"].as_str(), doc["metadata"]["name"].as_str()) {
        (Some("Deployment"), Some("camunda")) => Some("200m"),
        (Some("StatefulSet"), Some("postgres")) => Some("100m"),
        _ => None,
    };
    if let Some(list) = doc
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for container in list {
            let image = container["image"].as_str().unwrap().to_string();
            let local = match image.as_str() {
                "postgres:17.2" => "camunda-conformance/postgres:15".to_string(),
                "redis:7.4.2" => "camunda-conformance/redis:7".to_string(),
                "memcached:1.6.34" => "camunda-conformance/memcached:1.6".to_string(),
                other => {
                    assert!(
                        other.starts_with("camunda-conformance/"),
                        "{other} has no local image"
                    );
                    image.clone()
                }
            };
            container["image"] = json!(local);
            container["imagePullPolicy"] = json!("Never");
            if let Some(cpu) = smaller_request {
                container["resources"]["requests"]["cpu"] = json!(cpu);
            }
        }
    }
    doc
}

#[test]
fn the_node_component_changes_images_pull_policy_and_cpu_requests_only() {
    for overlay in ["e2e", "e2e-shared", "e2e-operaton", "e2e-shared-operaton"] {
        let (plain, node) = render(overlay, Route::Ingress);
        assert_eq!(
            plain.iter().map(key).collect::<Vec<_>>(),
            node.iter().map(key).collect::<Vec<_>>(),
            "{overlay}: the same objects in the same order"
        );
        let mut workloads = 0;
        for (before, after) in plain.iter().zip(&node) {
            assert_eq!(&as_on_the_node(before), after, "{overlay}: {}", key(before));
            if let Some(list) = after["spec"]["template"]["spec"]["containers"].as_array() {
                workloads += 1;
                // The component patches container 0: a second container would keep its policy.
                assert_eq!(
                    list.len(),
                    1,
                    "{overlay}: {} has more than one container: extend components/node",
                    key(after)
                );
                assert!(
                    after["spec"]["template"]["spec"]["initContainers"].is_null(),
                    "{}",
                    key(after)
                );
            }
        }
        assert_eq!(
            workloads, 5,
            "{overlay}: camunda, postgres, redis, memcached, twemproxy"
        );
        let ingress = node.iter().find(|d| d["kind"] == "Ingress").unwrap();
        assert_eq!(ingress["spec"]["ingressClassName"], INGRESS_CLASS);
    }
}

#[test]
fn the_route_gateway_component_swaps_the_ingress_for_a_discoverable_gateway_route() {
    for (overlay, webapp) in [
        ("e2e-shared", "/camunda"),
        ("e2e-shared-operaton", "/operaton"),
    ] {
        let (plain, gateway) = render(overlay, Route::Gateway);
        let ingress = plain.iter().find(|d| d["kind"] == "Ingress").unwrap();
        let namespace = ingress["metadata"]["namespace"].as_str().unwrap();
        let host = ingress["spec"]["rules"][0]["host"].as_str().unwrap();
        let secret = &ingress["spec"]["tls"][0]["secretName"];
        // Everything but the Ingress is as with the node component alone.
        let (_, node) = render(overlay, Route::Ingress);
        let kept: Vec<&Value> = node.iter().filter(|d| d["kind"] != "Ingress").collect();
        let rest: Vec<&Value> = gateway
            .iter()
            .filter(|d| !matches!(d["kind"].as_str(), Some("Gateway" | "HTTPRoute")))
            .collect();
        assert_eq!(kept, rest, "{overlay}");

        let gw = gateway.iter().find(|d| d["kind"] == "Gateway").unwrap();
        assert_eq!(gw["metadata"]["namespace"], namespace);
        assert_eq!(gw["spec"]["gatewayClassName"], GATEWAY_CLASS);
        let https = &gw["spec"]["listeners"][0];
        assert_eq!(
            (https["name"].as_str(), https["port"].as_u64()),
            (Some("https"), Some(443))
        );
        assert_eq!(https["hostname"], host);
        assert_eq!(https["tls"]["mode"], "Terminate");
        assert_eq!(&https["tls"]["certificateRefs"][0]["name"], secret);
        let http = &gw["spec"]["listeners"][1];
        assert_eq!(
            (http["name"].as_str(), http["port"].as_u64()),
            (Some("http"), Some(80))
        );
        assert_eq!(http["hostname"], host);

        let routes: Vec<&Value> = gateway
            .iter()
            .filter(|d| d["kind"] == "HTTPRoute")
            .collect();
        assert_eq!(routes.len(), 2);
        let mut discovered = Vec::new();
        for route in &routes {
            assert_eq!(route["metadata"]["namespace"], namespace);
            assert_eq!(route["spec"]["parentRefs"][0]["name"], "camunda");
            if let Some(facts) = http_route_facts(namespace, route).unwrap() {
                discovered.push(facts);
            }
        }
        // Discovery takes the route to engine-rest, never the redirect.
        assert_eq!(discovered.len(), 1, "{overlay}");
        let facts = &discovered[0];
        assert_eq!(facts.host, host);
        assert_eq!(facts.service, "camunda");
        assert_eq!(facts.rest_path, "/engine-rest");
        assert_eq!(facts.webapp_path, webapp);
        assert_eq!(facts.affinity_cookie, None);
        let app = routes
            .iter()
            .find(|r| r["metadata"]["name"] == "camunda")
            .unwrap();
        assert_eq!(app["spec"]["parentRefs"][0]["sectionName"], "https");
        assert_eq!(app["spec"]["rules"][0]["backendRefs"][0]["port"], 8080);
        let redirect = routes
            .iter()
            .find(|r| r["metadata"]["name"] != "camunda")
            .unwrap();
        assert_eq!(redirect["spec"]["parentRefs"][0]["sectionName"], "http");
        assert_eq!(redirect["spec"]["hostnames"][0], host);
        let filter = &redirect["spec"]["rules"][0]["filters"][0];
        assert_eq!(filter["type"], "RequestRedirect");
        assert_eq!(
            filter["requestRedirect"],
            json!({"scheme": "https", "statusCode": 301})
        );
    }
}

#[test]
fn prometheus_startup_is_probed_every_second_within_the_operators_budget() {
    let resource = prometheus("camunda");
    let containers = resource["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "prometheus");
    let probe = &containers[0]["startupProbe"];
    let budget =
        probe["periodSeconds"].as_u64().unwrap() * probe["failureThreshold"].as_u64().unwrap();
    assert_eq!(
        (probe["periodSeconds"].as_u64(), budget),
        (Some(1), 15 * 60)
    );
}
