//! The cluster addons at exact versions: every manifest fetched at run time is pinned by URL and
//! sha256, rendered through a kustomization the harness generates (namespace, images, labels),
//! then patched where kind needs it.
//!
//! Where the pins come from: files that live in the upstream repository at the release tag were
//! hashed from that tag's blobs (raw.githubusercontent.com serves the blob bytes unchanged).
//! Release assets that exist only as downloads (cert-manager.yaml) cannot be hashed here: their
//! pin is `None`, and a run stops at that addon with "pin missing" instead of trusting the
//! download; `cargo xtask pin-addons` prints the value to record, on a machine with internet.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A manifest file fetched at run time.
#[derive(Debug)]
pub struct PinnedFile {
    pub url: &'static str,
    /// Hex sha256 of the exact bytes; `None` until someone records it (see module docs).
    pub sha256: Option<&'static str>,
}

impl PinnedFile {
    /// The name the file gets in the addon's kustomization folder.
    pub fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().unwrap_or(self.url)
    }
}

/// kustomize's `images` entry.
#[derive(Debug)]
pub struct ImageOverride {
    pub name: &'static str,
    pub new_name: &'static str,
    pub new_tag: &'static str,
}

#[derive(Debug)]
pub struct Addon {
    pub name: &'static str,
    pub version: &'static str,
    /// Where the version and the pins were read.
    pub provenance: &'static str,
    pub files: &'static [PinnedFile],
    /// kustomize `namespace:` (also rewrites ClusterRoleBinding subjects).
    pub namespace: Option<&'static str>,
    pub images: &'static [ImageOverride],
    /// kustomize `labels` with selectors, as the upstream overlay's commonLabels.
    pub labels: &'static [(&'static str, &'static str)],
    /// What kind needs changed in the rendered objects.
    pub patch: fn(&mut [Value]) -> Result<()>,
}

const INGRESS_NGINX_TAG: &str = "controller-v1.15.1";

macro_rules! prom_file {
    ($path:literal, $sha:literal) => {
        PinnedFile {
            url: concat!(
                "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.0/example/",
                $path
            ),
            sha256: Some($sha),
        }
    };
}

macro_rules! metrics_file {
    ($name:literal, $sha:literal) => {
        PinnedFile {
            url: concat!(
                "https://raw.githubusercontent.com/kubernetes-sigs/metrics-server/v0.9.0/manifests/base/",
                $name
            ),
            sha256: Some($sha),
        }
    };
}

/// In install order: the ingress and cert-manager before anything that creates an Ingress or a
/// Certificate, the operator's CRDs before the Prometheus resource.
pub static ADDONS: &[Addon] = &[
    Addon {
        name: "ingress-nginx",
        version: INGRESS_NGINX_TAG,
        provenance: "kubernetes/ingress-nginx tag controller-v1.15.1 (the last controller release, 2026-03-19; the project is retired): deploy/static/provider/kind/deploy.yaml hashed from the tag's blob",
        files: &[PinnedFile {
            url: "https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-v1.15.1/deploy/static/provider/kind/deploy.yaml",
            sha256: Some("2a3ae008c8786431115502644e77ab398fdebfb721a5d1195ed3089cde3299df"),
        }],
        namespace: None,
        images: &[],
        labels: &[],
        patch: patch_ingress_nginx,
    },
    Addon {
        name: "cert-manager",
        version: "v1.21.1",
        provenance: "cert-manager/cert-manager tag v1.21.1 (2026-07-29); cert-manager.yaml is a release asset, not in the repository: the sha256 is the one a public repository's provenance note records for its byte-for-byte copy (13,960 lines); not yet re-hashed by us, confirm with `cargo xtask pin-addons`",
        files: &[PinnedFile {
            url: "https://github.com/cert-manager/cert-manager/releases/download/v1.21.1/cert-manager.yaml",
            sha256: Some("5f6a499b8c1857d57f560f536e0dcc830914b45c420899fe7ad0692c8624e408"),
        }],
        namespace: None,
        images: &[],
        labels: &[],
        patch: no_patch,
    },
    Addon {
        name: "metrics-server",
        version: "v0.9.0",
        provenance: "kubernetes-sigs/metrics-server tag v0.9.0: manifests/base/*.yaml hashed from the tag's blobs, rendered like the tag's manifests/overlays/release (image and labels below)",
        files: &[
            metrics_file!("apiservice.yaml", "03266df7891b56dfffebb855a031b524ed20c6736846417ccd491dd91c6c0ec3"),
            metrics_file!("deployment.yaml", "18970227f17d0c6cb8e7a4a1cdde847117703afd3b0777badf8a006cfea252c2"),
            metrics_file!("rbac.yaml", "510be174d47ae7d05ae6908ccb7ca7111008f18b5d1a920ebc6de6582c23b854"),
            metrics_file!("service.yaml", "1ce19a57f4769906255c3410a38a01fb0f803e21976ce160f506a90638cbb5c7"),
        ],
        namespace: None,
        images: &[ImageOverride {
            name: "gcr.io/k8s-staging-metrics-server/metrics-server",
            new_name: "registry.k8s.io/metrics-server/metrics-server",
            new_tag: "v0.9.0",
        }],
        labels: &[("k8s-app", "metrics-server")],
        patch: patch_metrics_server,
    },
    Addon {
        name: "prometheus-operator",
        version: "v0.93.0",
        provenance: "prometheus-operator/prometheus-operator tag v0.93.0: example/prometheus-operator-crd/*, example/rbac/prometheus-operator/* and example/rbac/prometheus/* hashed from the tag's blobs (the same objects as bundle.yaml, whose blob is too large to read here)",
        files: &[
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_alertmanagerconfigs.yaml", "fed47c462483a47a4d1912bf8a7a3767618644cfdee86dc73d7624c55d6a8b9d"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_alertmanagers.yaml", "0e8eccd22699818c93f619c8fe2d92dbbd783a7e9232827a886dedeac1fb5dc1"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml", "45a93443daa687d3654f7e9631909ff7edcdf3ec09c5e60251b74aa2722aee5d"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_probes.yaml", "f4ead9704bd4c6303d53e4cc15670faaf0609022a5e08c0ce496286f453666b7"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_prometheusagents.yaml", "6bb4afd89a2721ba02327336623344358c57b5a1a2ecaeccd792e0234ef6b612"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml", "c0eed4b2c38a58e3a5be7e2f5846df067804c694b0c9316b35029ab68fa183a4"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml", "78be98554b9c8506ab2b4f4feb91c5f3a56e536a0a510f3a8e876a459970d56d"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_scrapeconfigs.yaml", "d525ef261d8a3a050528a7d90cecab13f1f3f9020eb0f1f54850b6f5c1f2e641"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml", "a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32"),
            prom_file!("prometheus-operator-crd/monitoring.coreos.com_thanosrulers.yaml", "160bcffd1ce4904b5fde97ac40676019aa02427f0d64432f4dd71a711275b82c"),
            prom_file!("rbac/prometheus-operator/prometheus-operator-cluster-role-binding.yaml", "3d0d7e0ffc83dee5064e2e1e720810ef6f59dab3e1511a9e499e2a0c7d30f20c"),
            prom_file!("rbac/prometheus-operator/prometheus-operator-cluster-role.yaml", "71b687fdd73cc1872f9c924e295b7ca7f6af7fe06f3a6e40a8817ad0bf4c5b58"),
            prom_file!("rbac/prometheus-operator/prometheus-operator-deployment.yaml", "30ba5701975f1d79fbb9b8688e94e969e6a76840c4dd4128bee24a942e17f9b2"),
            prom_file!("rbac/prometheus-operator/prometheus-operator-service-account.yaml", "a90e8523ef5a9331adce15b3b80628975243e4f925e3ba1a493135199246bf60"),
            prom_file!("rbac/prometheus-operator/prometheus-operator-service.yaml", "611e0c9f07fee8291a7773cb495f81e5a2047ef80367bde58d8e4b0605a78f91"),
            prom_file!("rbac/prometheus/prometheus-service-account.yaml", "c448cd337fc8bee4d6ecf96c16ad52d74904443c237e854d9c41db8693964d55"),
            prom_file!("rbac/prometheus/prometheus-cluster-role.yaml", "129b0358c116320818fe9a31d7a21e340b9b1076be62fb3564a10ec5dc4566f6"),
            prom_file!("rbac/prometheus/prometheus-cluster-role-binding.yaml", "b37444c068b765c0cf2dc3d5b2c1610eba44255b92ad73306855c414b95e7a2c"),
        ],
        namespace: Some(MONITORING_NAMESPACE),
        images: &[],
        labels: &[],
        patch: no_patch,
    },
];

pub const MONITORING_NAMESPACE: &str = "monitoring";
pub const PROMETHEUS_NAME: &str = "camunda-conformance";
/// The Service the operator creates for every Prometheus it runs.
pub const PROMETHEUS_SERVICE: &str = "prometheus-operated";
pub const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
pub const SELF_SIGNED_ISSUER: &str = "camunda-conformance-selfsigned";
/// The ClusterIssuer the e2e overlay's Ingress names (`cert-manager.io/cluster-issuer`).
pub const CA_ISSUER: &str = "camunda-conformance-ca";
/// The CA certificate's Secret in the cert-manager namespace; its `ca.crt` is what the suites trust.
pub const CA_SECRET: &str = "camunda-conformance-ca";
pub const INGRESS_NAMESPACE: &str = "ingress-nginx";
pub const INGRESS_CONTROLLER: &str = "ingress-nginx-controller";

fn no_patch(_: &mut [Value]) -> Result<()> {
    Ok(())
}

/// The object of that kind and name, or an error saying the pinned manifest changed shape.
fn find<'a>(docs: &'a mut [Value], kind: &str, name: &str) -> Result<&'a mut Value> {
    docs.iter_mut()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .ok_or_else(|| {
            anyhow!("the pinned manifest has no {kind} {name}: update the patch with the pin")
        })
}

/// Since controller v1.13 the kind provider's Deployment no longer selects the `ingress-ready`
/// node and its Service is a LoadBalancer. Put the selector back so the controller runs where
/// the host ports are, keep the control-plane toleration, and make the Service a NodePort (no
/// load balancer exists on kind; the traffic arrives through the hostPorts).
fn patch_ingress_nginx(docs: &mut [Value]) -> Result<()> {
    let deployment = find(docs, "Deployment", INGRESS_CONTROLLER)?;
    let pod = &mut deployment["spec"]["template"]["spec"];
    pod["nodeSelector"]["ingress-ready"] = json!("true");
    let toleration = json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "effect": "NoSchedule"});
    match pod["tolerations"].as_array_mut() {
        Some(list) if list.iter().any(|t| t["key"] == toleration["key"]) => {}
        Some(list) => list.push(toleration),
        None => pod["tolerations"] = json!([toleration]),
    }
    let ports_published = pod["containers"].as_array().is_some_and(|containers| {
        containers.iter().any(|c| {
            c["ports"].as_array().is_some_and(|ports| {
                ports.iter().any(|p| p["hostPort"] == 443)
                    && ports.iter().any(|p| p["hostPort"] == 80)
            })
        })
    });
    if !ports_published {
        bail!("the pinned ingress-nginx kind manifest no longer binds hostPort 80/443: the kind port mappings would lead nowhere");
    }
    find(docs, "Service", INGRESS_CONTROLLER)?["spec"]["type"] = json!("NodePort");
    Ok(())
}

/// kind's kubelets serve self-signed certificates: metrics-server must not verify them.
fn patch_metrics_server(docs: &mut [Value]) -> Result<()> {
    let deployment = find(docs, "Deployment", "metrics-server")?;
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("the pinned metrics-server Deployment has no container args"))?;
    if !args.iter().any(|a| a == "--kubelet-insecure-tls") {
        args.push(json!("--kubelet-insecure-tls"));
    }
    Ok(())
}

impl Addon {
    /// The kustomization that renders the fetched files (they sit beside it).
    pub fn kustomization(&self) -> Value {
        let mut k = json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": self.files.iter().map(PinnedFile::file_name).collect::<Vec<_>>(),
        });
        if let Some(namespace) = self.namespace {
            k["namespace"] = json!(namespace);
        }
        if !self.images.is_empty() {
            k["images"] = self
                .images
                .iter()
                .map(|i| json!({"name": i.name, "newName": i.new_name, "newTag": i.new_tag}))
                .collect();
        }
        if !self.labels.is_empty() {
            let pairs: serde_json::Map<String, Value> = self
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            k["labels"] =
                json!([{"pairs": pairs, "includeSelectors": true, "includeTemplates": true}]);
        }
        k
    }
}

/// Objects the harness adds around the addons: the namespace the operator goes to, the test CA
/// chain (self-signed root → CA Certificate → CA ClusterIssuer; the same objects as the e2e
/// overlay's `components/e2e/test-ca.yaml`, so that a custom `--overlay` gets them too and
/// re-applying either changes nothing), and a Prometheus that selects
/// every ServiceMonitor in the Camunda namespace and nothing else (no PodMonitors), so that the
/// ServiceMonitor path of the manifests is the one the metrics suite tests.
pub fn monitoring_namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MONITORING_NAMESPACE}})
}

pub fn self_signed_issuer() -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": SELF_SIGNED_ISSUER},
        "spec": {"selfSigned": {}}
    })
}

pub fn ca_chain() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": CA_SECRET, "namespace": CERT_MANAGER_NAMESPACE},
            "spec": {
                "isCA": true,
                "commonName": "camunda-conformance test CA",
                "secretName": CA_SECRET,
                "duration": "2160h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"}
            }
        }),
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
            "metadata": {"name": CA_ISSUER},
            "spec": {"ca": {"secretName": CA_SECRET}}
        }),
    ]
}

pub fn prometheus(camunda_namespace: &str) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS_NAME, "namespace": MONITORING_NAMESPACE},
        "spec": {
            "replicas": 1,
            "serviceAccountName": "prometheus",
            "scrapeInterval": "5s",
            "serviceMonitorSelector": {},
            "serviceMonitorNamespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": camunda_namespace}
            },
            "resources": {"requests": {"memory": "200Mi", "cpu": "100m"}}
        }
    })
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks fetched bytes against the pin; never lets an unpinned or altered file through.
pub fn verify(file: &PinnedFile, bytes: &[u8]) -> Result<()> {
    let Some(expected) = file.sha256 else {
        return Err(missing_pin(file));
    };
    let actual = sha256_hex(bytes);
    if actual != expected {
        bail!(
            "{} does not match its pin: sha256 {actual}, pinned {expected}",
            file.url
        );
    }
    Ok(())
}

/// Downloads a pinned file into `dir` (reusing a verified copy from `cache`), verified.
pub async fn fetch(
    client: &reqwest::Client,
    file: &PinnedFile,
    cache: &Path,
    dir: &Path,
) -> Result<PathBuf> {
    let target = dir.join(file.file_name());
    // Refuse before the download: an unpinned file is never fetched "just to see".
    let Some(pin) = file.sha256 else {
        return Err(missing_pin(file));
    };
    let cached = cache.join(pin);
    let bytes = match std::fs::read(&cached) {
        Ok(bytes) if verify(file, &bytes).is_ok() => bytes,
        _ => {
            let bytes = download(client, file.url).await?;
            verify(file, &bytes)?;
            std::fs::create_dir_all(cache)
                .with_context(|| format!("creating {}", cache.display()))?;
            std::fs::write(&cached, &bytes)
                .with_context(|| format!("writing {}", cached.display()))?;
            bytes
        }
    };
    std::fs::write(&target, &bytes).with_context(|| format!("writing {}", target.display()))?;
    Ok(target)
}

fn missing_pin(file: &PinnedFile) -> anyhow::Error {
    anyhow!(
        "pin missing for {}: run `cargo xtask pin-addons` on a machine with internet, check the value against the release, and record it in xtask/src/kind/addons.rs",
        file.url
    )
}

pub async fn download(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("downloading {url}"))?
        .error_for_status()
        .with_context(|| format!("downloading {url}"))?;
    Ok(response
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?
        .to_vec())
}

/// `cargo xtask pin-addons`: downloads every pinned URL and prints its sha256 beside the pin.
/// `Ok(false)` when a pin is missing or does not match (the values to record are printed).
pub fn pin_addons() -> Result<bool> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .build()
            .context("building the HTTP client")?;
        let mut all_good = true;
        for addon in ADDONS {
            println!("{} {}", addon.name, addon.version);
            for file in addon.files {
                let bytes = match download(&client, file.url).await {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        all_good = false;
                        println!("  FAILED  {}: {err:#}", file.url);
                        continue;
                    }
                };
                let actual = sha256_hex(&bytes);
                let verdict = match file.sha256 {
                    Some(pinned) if pinned == actual => "ok".to_string(),
                    Some(pinned) => format!("MISMATCH (pinned {pinned})"),
                    None => "missing: record this value".to_string(),
                };
                all_good &= verdict == "ok";
                println!("  {actual}  {}  {verdict}", file.url);
            }
        }
        Ok(all_good)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<Value> {
        serde_yaml::Deserializer::from_str(text)
            .map(|doc| {
                serde_yaml::from_value::<Value>(serde_yaml::Value::deserialize(doc).unwrap())
                    .unwrap()
            })
            .collect()
    }
    use serde::Deserialize;

    /// The shape of the pinned kind provider manifest that the patch relies on (v1.13+).
    const INGRESS_SHAPE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec: {type: LoadBalancer}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-nginx-controller, namespace: ingress-nginx}
spec:
  template:
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers:
      - name: controller
        ports:
        - {containerPort: 80, hostPort: 80, name: http}
        - {containerPort: 443, hostPort: 443, name: https}
      tolerations:
      - {effect: NoSchedule, key: node-role.kubernetes.io/control-plane, operator: Equal}
"#;

    #[test]
    fn ingress_patch_selects_the_ingress_ready_node_and_makes_the_service_a_node_port() {
        let mut docs = load(INGRESS_SHAPE);
        patch_ingress_nginx(&mut docs).unwrap();
        let pod = &docs[1]["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["ingress-ready"], "true");
        assert_eq!(pod["nodeSelector"]["kubernetes.io/os"], "linux");
        assert_eq!(pod["tolerations"].as_array().unwrap().len(), 1);
        assert_eq!(docs[0]["spec"]["type"], "NodePort");
    }

    #[test]
    fn ingress_patch_refuses_a_manifest_without_host_ports() {
        let mut docs = load(&INGRESS_SHAPE.replace("hostPort: 443, ", ""));
        let err = patch_ingress_nginx(&mut docs).unwrap_err().to_string();
        assert!(err.contains("hostPort"), "{err}");
        let mut docs = load(INGRESS_SHAPE);
        docs.remove(0);
        assert!(
            patch_ingress_nginx(&mut docs).is_err(),
            "a missing Service must be an error"
        );
    }

    #[test]
    fn metrics_server_gets_kubelet_insecure_tls_once() {
        let mut docs = load(
            "kind: Deployment\nmetadata: {name: metrics-server}\nspec: {template: {spec: {containers: [{name: m, args: [--cert-dir=/tmp]}]}}}\n",
        );
        patch_metrics_server(&mut docs).unwrap();
        patch_metrics_server(&mut docs).unwrap();
        let args = docs[0]["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap();
        assert_eq!(
            args.iter()
                .filter(|a| *a == "--kubelet-insecure-tls")
                .count(),
            1
        );
    }

    #[test]
    fn every_pin_is_https_and_a_full_hex_digest_or_explicitly_missing() {
        for addon in ADDONS {
            for file in addon.files {
                assert!(file.url.starts_with("https://"), "{}", file.url);
                assert!(
                    file.url.contains(addon.version),
                    "{} does not name {}",
                    file.url,
                    addon.version
                );
                if let Some(sha) = file.sha256 {
                    assert_eq!(sha.len(), 64, "{}", file.url);
                    assert!(sha
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
                }
            }
            let names: std::collections::HashSet<_> =
                addon.files.iter().map(PinnedFile::file_name).collect();
            assert_eq!(
                names.len(),
                addon.files.len(),
                "{}: file names collide",
                addon.name
            );
        }
    }

    #[test]
    fn verification_rejects_missing_pins_and_altered_bytes() {
        let unpinned = PinnedFile {
            url: "https://example.invalid/x.yaml",
            sha256: None,
        };
        let err = verify(&unpinned, b"anything").unwrap_err().to_string();
        assert!(
            err.contains("pin missing") && err.contains("cargo xtask pin-addons"),
            "{err}"
        );
        let pinned = PinnedFile {
            url: "https://example.invalid/x.yaml",
            // sha256("abc")
            sha256: Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        };
        verify(&pinned, b"abc").unwrap();
        let err = verify(&pinned, b"abd").unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    /// Serves `body` to `connections` HTTP requests on a loopback port; returns the URL.
    fn serve(body: &'static [u8], connections: usize) -> &'static str {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/deploy.yaml", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(body).unwrap();
            }
        });
        Box::leak(url.into_boxed_str())
    }

    #[tokio::test]
    async fn fetch_verifies_caches_and_refuses_altered_downloads() {
        let client = reqwest::Client::new();
        let tmp = tempfile::tempdir().unwrap();
        let (cache, dir) = (tmp.path().join("cache"), tmp.path().join("addon"));
        std::fs::create_dir_all(&dir).unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        let file = PinnedFile {
            url: serve(b"abc", 1),
            sha256: Some(abc),
        };
        let path = fetch(&client, &file, &cache, &dir).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert_eq!(path.file_name().unwrap(), "deploy.yaml");
        // The server served once; the second fetch comes from the verified cache.
        std::fs::remove_file(&path).unwrap();
        fetch(&client, &file, &cache, &dir).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");

        let tampered = PinnedFile {
            url: serve(b"abd", 1),
            sha256: Some("0".repeat(64).leak()),
        };
        let err = fetch(&client, &tampered, &cache, &dir)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match its pin"), "{err}");

        let unpinned = PinnedFile {
            url: serve(b"abc", 1),
            sha256: None,
        };
        let err = fetch(&client, &unpinned, &cache, &dir)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("pin missing"), "{err}");
    }

    #[test]
    fn metrics_server_kustomization_reproduces_the_release_overlay() {
        let addon = ADDONS.iter().find(|a| a.name == "metrics-server").unwrap();
        let k = addon.kustomization();
        assert_eq!(k["resources"].as_array().unwrap().len(), 4);
        assert_eq!(
            k["images"][0]["newName"],
            "registry.k8s.io/metrics-server/metrics-server"
        );
        assert_eq!(k["labels"][0]["pairs"]["k8s-app"], "metrics-server");
        assert_eq!(k["labels"][0]["includeSelectors"], true);
        let prom = ADDONS
            .iter()
            .find(|a| a.name == "prometheus-operator")
            .unwrap();
        assert_eq!(prom.kustomization()["namespace"], MONITORING_NAMESPACE);
    }

    #[test]
    fn prometheus_selects_service_monitors_of_the_camunda_namespace_only() {
        let p = prometheus("camunda");
        assert_eq!(
            p["spec"]["serviceMonitorNamespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"],
            "camunda"
        );
        assert_eq!(p["spec"]["serviceMonitorSelector"], json!({}));
        assert!(
            p["spec"].get("podMonitorSelector").is_none(),
            "PodMonitors would bypass the tested path"
        );
    }
}
