//! A real control plane on loopback: etcd, kube-apiserver (client-certificate admin,
//! Node,RBAC), kube-controller-manager, kube-scheduler, kwok (simulated node and pods) and
//! metrics-server (behind an APIService, scraping kwok's simulated `/metrics/resource`).
//!
//! Every process runs under the local backend's supervisor (own process group, log in the
//! artifacts, stopped on drop and on Ctrl-C). The PKI, the kubeconfig and etcd's data live in a
//! private temp dir that goes with the control plane, unless `--keep` hands both over to a
//! state file that `--down` reads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::local::ports::Ports;
use crate::local::supervisor::{self, Supervisor};
use crate::local::wait::{self, Probe};
use camunda_conformance::cluster::apply::parse_documents;
use camunda_conformance_controlplane::apiserver::{self, arg, kubeconfig_yaml};
use camunda_conformance_controlplane::build::{module_dir, Binaries};
use camunda_conformance_controlplane::pins;
use camunda_conformance_controlplane::pki::Pki;

pub use camunda_conformance_controlplane::apiserver::kubeconfig_path;
use camunda_conformance_controlplane::SERVICE_RANGE;
pub use camunda_conformance_controlplane::{CONTEXT, NODE_NAME};

/// What outlives a `--keep` run: the process groups and the private folder.
#[derive(Debug, Serialize, Deserialize)]
pub struct Kept {
    pub groups: Vec<(String, i32)>,
    pub private_dir: PathBuf,
    pub kubeconfig: PathBuf,
}

pub struct ControlPlane {
    /// `None` once kept.
    supervisor: Option<Supervisor>,
    /// Removed with the control plane; `None` once kept.
    private: Option<PathBuf>,
    pub kubeconfig: PathBuf,
    pub ca: PathBuf,
    pub metrics_server_port: u16,
    logs: PathBuf,
    /// Components started so far, in start order.
    spawned: usize,
}

impl ControlPlane {
    /// Starts every component and waits for the API server to be ready. `private` (0700) is
    /// owned from here on: removed when the control plane goes, unless kept.
    pub fn start(binaries: &Binaries, private: &Path, logs: &Path, keep: bool) -> Result<Self> {
        let dir = private.to_path_buf();
        let pki = Pki::generate(&dir)?;
        let mut ports = Ports::default();
        let (etcd_client, etcd_peer) = (ports.free()?, ports.free()?);
        let (apiserver, kwok, metrics_server) = (ports.free()?, ports.free()?, ports.free()?);
        let kubeconfig = kubeconfig_path(&dir);
        std::fs::write(&kubeconfig, kubeconfig_yaml(apiserver, &pki))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let kwok_config = dir.join("kwok.yaml");
        std::fs::write(&kwok_config, kwok_config_yaml()?)
            .with_context(|| format!("writing {}", kwok_config.display()))?;

        let mut supervisor = Supervisor::new(logs.to_path_buf(), !keep)?;
        let bin = |name: &str| Command::new(binaries.path(name));
        // A component that talks to the API server (and authenticates its own callers through
        // it) as admin, serving on loopback at `port` (0: not at all).
        let client = |name: &str, port: u16| {
            let mut cmd = bin(name);
            cmd.arg(arg("kubeconfig", &kubeconfig))
                .arg(arg("authentication-kubeconfig", &kubeconfig))
                .arg(arg("authorization-kubeconfig", &kubeconfig))
                .arg(arg("bind-address", "127.0.0.1"))
                .arg(arg("secure-port", port.to_string()));
            cmd
        };

        supervisor.spawn(
            "etcd",
            apiserver::etcd(binaries, &dir.join("etcd"), etcd_client, etcd_peer),
        )?;
        let api = apiserver::kube_apiserver(binaries, &pki, etcd_client, apiserver);
        let api_index = supervisor.spawn("kube-apiserver", api)?;
        let api_log = supervisor.get(api_index).log.clone();

        let mut plane = Self {
            supervisor: Some(supervisor),
            private: Some(dir.clone()),
            kubeconfig: kubeconfig.clone(),
            ca: pki.ca.clone(),
            metrics_server_port: metrics_server,
            logs: logs.to_path_buf(),
            spawned: 2,
        };
        plane.await_apiserver(apiserver, &pki, api_index, &api_log)?;

        let mut kcm = client("kube-controller-manager", 0);
        kcm.arg(arg("leader-elect", "false"))
            .arg(arg(
                "service-account-private-key-file",
                &pki.service_account_key,
            ))
            .arg(arg("root-ca-file", &pki.ca))
            .arg(arg("service-cluster-ip-range", SERVICE_RANGE))
            // Its default, /usr/libexec/kubernetes/..., would be created on the host.
            .arg(arg("flex-volume-plugin-dir", dir.join("flex-volume")));
        plane.supervisor()?.spawn("kube-controller-manager", kcm)?;
        plane.spawned += 1;

        let mut scheduler = client("kube-scheduler", 0);
        scheduler.arg(arg("leader-elect", "false"));
        plane.supervisor()?.spawn("kube-scheduler", scheduler)?;
        plane.spawned += 1;

        let mut kwok_cmd = bin("kwok");
        kwok_cmd
            .arg(arg("kubeconfig", &kubeconfig))
            .arg(arg("config", &kwok_config))
            .arg(arg("manage-all-nodes", "true"))
            .arg(arg("node-ip", "127.0.0.1"))
            .arg(arg("node-name", NODE_NAME))
            .arg(arg("node-port", kwok.to_string()))
            .arg(arg("server-address", format!("127.0.0.1:{kwok}")))
            .arg(arg("tls-cert-file", &pki.kwok.0))
            .arg(arg("tls-private-key-file", &pki.kwok.1))
            .arg(arg("node-lease-duration-seconds", "40"));
        plane.supervisor()?.spawn("kwok", kwok_cmd)?;
        plane.spawned += 1;

        let mut metrics = client("metrics-server", metrics_server);
        metrics
            .arg(arg("tls-cert-file", &pki.metrics_server.0))
            .arg(arg("tls-private-key-file", &pki.metrics_server.1))
            .arg(arg("kubelet-preferred-address-types", "InternalIP"))
            .arg("--kubelet-use-node-status-port")
            .arg(arg("kubelet-certificate-authority", &pki.ca))
            .arg(arg("metric-resolution", "15s"));
        plane.supervisor()?.spawn("metrics-server", metrics)?;
        plane.spawned += 1;
        Ok(plane)
    }

    fn await_apiserver(&mut self, port: u16, pki: &Pki, index: usize, log: &Path) -> Result<()> {
        let client = admin_client(pki)?;
        let url = format!("https://127.0.0.1:{port}/readyz");
        wait::until(
            "kube-apiserver /readyz",
            Duration::from_secs(120),
            Some(log),
            || {
                let Some(supervisor) = self.supervisor.as_mut() else {
                    return Probe::Failed("the control plane was handed over".into());
                };
                if let Some(status) = supervisor.get(index).exited() {
                    return Probe::Failed(format!("kube-apiserver exited ({status})"));
                }
                match client.get(&url).send() {
                    Ok(r) if r.status().is_success() => Probe::Ready(()),
                    Ok(r) => Probe::Pending(format!(
                        "{} {}",
                        r.status(),
                        first_line(r.text().unwrap_or_default())
                    )),
                    Err(err) => Probe::Pending(format!("{err}")),
                }
            },
        )
    }

    fn supervisor(&mut self) -> Result<&mut Supervisor> {
        self.supervisor
            .as_mut()
            .ok_or_else(|| anyhow!("the control plane was handed over (--keep)"))
    }

    /// A component that exited, with the end of its log; `None` while all run.
    pub fn exited(&mut self) -> Option<String> {
        let supervisor = self.supervisor.as_mut()?;
        supervisor.reap();
        (0..self.spawned).find_map(|i| {
            let proc = supervisor.get(i);
            proc.exited().map(|status| {
                format!(
                    "{} exited ({status}); last lines of {}:\n{}",
                    proc.component,
                    proc.log.display(),
                    supervisor::log_tail(&proc.log, 15)
                )
            })
        })
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }

    /// Lets everything outlive this process (`--keep`): returns what `--down` needs.
    pub fn keep(mut self) -> Kept {
        let private_dir = self.private.take().unwrap_or_default();
        supervisor::forget_temp_dir(&private_dir);
        let mut groups = Vec::new();
        if let Some(mut supervisor) = self.supervisor.take() {
            // Each component leads its own process group.
            groups = (0..self.spawned)
                .map(|i| {
                    let proc = supervisor.get(i);
                    (proc.component.clone(), proc.pid)
                })
                .collect();
            supervisor.keep();
        }
        let kubeconfig = self.kubeconfig.clone();
        Kept {
            groups,
            private_dir,
            kubeconfig,
        }
    }
}

/// An HTTP client that trusts only the cluster CA and presents the admin certificate: what
/// the harness asks an API server's `/readyz` with.
pub fn admin_client(pki: &Pki) -> Result<reqwest::blocking::Client> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut identity = read(&pki.admin.0)?;
    identity.extend(read(&pki.admin.1)?);
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&read(&pki.ca)?)?)
        .identity(reqwest::Identity::from_pem(&identity)?)
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the readiness client")
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Processes first (they hold files in the private folder), then the folder. Clients
        // before servers: an API server whose etcd went first hangs in its graceful shutdown.
        if let Some(supervisor) = self.supervisor.as_mut() {
            supervisor.reap();
            for index in (0..self.spawned).rev() {
                supervisor.stop(index);
            }
            supervisor.shutdown();
        }
        if let Some(private) = self.private.take() {
            if let Err(err) = std::fs::remove_dir_all(&private) {
                eprintln!("warning: removing {}: {err}", private.display());
            }
            supervisor::forget_temp_dir(&private);
        }
    }
}

/// Stops what a `--keep` run left and removes its private folder.
pub fn down(kept: &Kept) {
    // Clients before servers, as on drop.
    let stubborn: usize = kept
        .groups
        .iter()
        .rev()
        .map(|group| supervisor::stop_groups(std::slice::from_ref(group), Duration::from_secs(10)))
        .sum();
    if stubborn > 0 {
        eprintln!("warning: {stubborn} component(s) needed SIGKILL");
    }
    if let Err(err) = std::fs::remove_dir_all(&kept.private_dir) {
        eprintln!("warning: removing {}: {err}", kept.private_dir.display());
    }
}

fn first_line(text: String) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// kwok's configuration: its node, pod and volume stages, the simulated kubelet
/// `/metrics/resource` and CPU usage read from pod annotations, all from the pinned kwok module.
fn kwok_config_yaml() -> Result<String> {
    let mut docs = Vec::new();
    for files in pins::KWOK_FILES {
        docs.extend(module_docs(files)?);
    }
    for doc in &mut docs {
        if doc["kind"] == "Metric" {
            // metrics-server asks the node's address for /metrics/resource; kwok serves a
            // Metric without {nodeName} in its path for the node the Metric is named after.
            doc["metadata"]["name"] = Value::from(NODE_NAME);
            doc["spec"]["path"] = Value::from("/metrics/resource");
        }
    }
    let mut text = String::new();
    for doc in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&doc).context("serialising kwok's configuration")?);
    }
    Ok(text)
}

/// The YAML documents of pinned module files, from Go's module cache.
pub fn module_docs(files: &pins::ModuleFiles) -> Result<Vec<Value>> {
    let dir = module_dir(files.module, files.version)?.join(files.dir);
    let mut names: Vec<String> = if files.files.is_empty() {
        std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect()
    } else {
        files.files.iter().map(|f| f.to_string()).collect()
    };
    names.sort();
    let mut docs = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        docs.extend(parse_documents(&text).with_context(|| format!("parsing {}", path.display()))?);
    }
    if docs.is_empty() {
        bail!(
            "{}@{} {} holds no manifests",
            files.module,
            files.version,
            files.dir
        );
    }
    Ok(docs)
}

/// The cluster objects the simulated node needs: the Node itself (kwok manages it), kwok's
/// StorageClass, cert-manager's namespace, and metrics-server's Service and APIService (the aggregator dials the ExternalName `localhost`
/// at metrics-server's loopback port and verifies it against the cluster CA).
pub fn cluster_objects(metrics_server_port: u16, ca: &Path) -> Result<Vec<Value>> {
    let ca_pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let mut docs = vec![
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            },
        }),
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }),
        serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "caBundle": k8s_openapi::ByteString(ca_pem),
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": metrics_server_port},
            },
        }),
    ];
    docs.extend(module_docs(&pins::KWOK_STORAGE_CLASS)?);
    // cert-manager's namespace: its install creates it, and the stack's test CA lives there.
    docs.push(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "cert-manager"},
    }));
    Ok(docs)
}

impl Kept {
    pub fn read(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(anyhow!(err).context(format!("reading {}", path.display()))),
        }
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_files_and_holds_no_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        let text = kubeconfig_yaml(6443, &pki);
        assert!(text.contains("server: https://127.0.0.1:6443"), "{text}");
        assert!(text.contains("admin.key"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(text.contains(&format!("current-context: {CONTEXT}")));
    }
}
