//! The `node` backend: a real one-node Kubernetes on this host. The kwok backend's control plane
//! plus kubelet and kube-proxy at the same pinned version, Debian's containerd, runc and CNI
//! plugins, every image built here ([`images`]), all inside a network namespace the run creates
//! ([`net`]). The deploy path, waits, discovery and suites are the kind backend's plan
//! (`kind::plan` has a node branch); [`cluster`] starts and stops the node, [`host`] puts the
//! host back.

pub mod addons;
pub mod cluster;
pub mod host;
pub mod images;
pub mod interrupts;
pub mod net;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::artifacts::workspace_root;
use crate::backend::Route;
use crate::kwok::control_plane::module_docs;
use crate::kwok::pins;
use cluster::State;

/// The CRDs the node's addons and the stack need Established before their objects are applied.
pub const AWAITED_CRDS: [&str; 5] = [
    "certificates.cert-manager.io",
    "servicemonitors.monitoring.coreos.com",
    "prometheuses.monitoring.coreos.com",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
];

/// Every CRD the node installs: the stack's (cert-manager, external-secrets) as on kwok, the
/// Prometheus Operator's whole set at the version that runs, and Gateway API's standard channel
/// at the version Traefik is built against.
pub fn crds() -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for files in pins::CRDS
        .iter()
        .filter(|f| f.module != pins::NODE_PROMETHEUS_OPERATOR_CRDS.module)
        .chain([
            &pins::NODE_PROMETHEUS_OPERATOR_CRDS,
            &pins::NODE_GATEWAY_API_CRDS,
        ])
    {
        docs.extend(module_docs(files)?);
    }
    // cert-manager's install creates it; the stack's test CA Certificate lives there.
    docs.push(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}),
    );
    Ok(docs)
}

/// A claim of the stack and the PersistentVolume that serves it from a folder of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// `namespace/name` of the PersistentVolumeClaim.
    pub claim: String,
    pub dir: PathBuf,
    pub pv: Value,
}

/// One volume per claim the StatefulSets of `docs` make (`<template>-<set>-<ordinal>`), bound to
/// that claim alone. The folder is world-writable, as a local-path provisioner makes it, so that
/// a non-root database can initialise it.
pub fn volumes(docs: &[Value], run_dir: &Path) -> Result<Vec<Volume>> {
    let mut out = Vec::new();
    for set in docs.iter().filter(|d| d["kind"] == "StatefulSet") {
        let name = set["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = set["metadata"]["namespace"].as_str().unwrap_or("default");
        let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1);
        for template in set["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let template_name = template["metadata"]["name"].as_str().ok_or_else(|| {
                anyhow::anyhow!(
                    "StatefulSet {namespace}/{name}: a volumeClaimTemplate has no metadata.name"
                )
            })?;
            let spec = &template["spec"];
            let storage = spec["resources"]["requests"]["storage"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("StatefulSet {namespace}/{name}: volumeClaimTemplate {template_name} has no resources.requests.storage"))?;
            for ordinal in 0..replicas {
                let claim = format!("{template_name}-{name}-{ordinal}");
                let dir = run_dir.join("volumes").join(format!("{namespace}-{claim}"));
                let pv_name = format!("camunda-conformance-{namespace}-{claim}");
                out.push(Volume {
                    claim: format!("{namespace}/{claim}"),
                    dir: dir.clone(),
                    pv: json!({
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": pv_name},
                        "spec": {
                            "capacity": {"storage": storage},
                            "accessModes": spec["accessModes"],
                            "storageClassName": spec["storageClassName"].as_str().unwrap_or(""),
                            "persistentVolumeReclaimPolicy": "Retain",
                            "hostPath": {"path": dir, "type": "Directory"},
                            "claimRef": {"namespace": namespace, "name": claim},
                        },
                    }),
                });
            }
        }
    }
    Ok(out)
}

/// The sandbox image containerd runs every pod in: built here from Kubernetes' own pause sources.
pub const PAUSE_IMAGE: &str = "docker.io/camunda-conformance/pause:3.10";

/// Builds (or finds cached) everything the node runs, with `flavour`'s Camunda image, and starts
/// it in `run_dir` (logs in the run's artifacts folder `work`), the images imported before the
/// kubelet starts.
pub fn start(
    work: &Path,
    flavour: crate::flavour::Flavour,
    keep: bool,
    run_dir: &Path,
) -> Result<cluster::Node> {
    let logs = work.join("logs");
    let (binaries, images) = build_all(&logs, flavour)?;
    let import_log = logs.join("image-import.log");
    cluster::Node::start(&binaries, run_dir, &logs, keep, |socket| {
        let started = std::time::Instant::now();
        images::import(socket, &images, &import_log)?;
        println!(
            "  {} images imported into containerd in {:.1}s",
            images.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// Every binary and image the node runs, from the caches (built first where missing): the
/// Kubernetes and etcd binaries, the addons' Go programs, the Camunda application of
/// `flavour`, and the images made of them.
pub fn build_all(
    logs: &Path,
    flavour: crate::flavour::Flavour,
) -> Result<(
    camunda_conformance_controlplane::build::Binaries,
    Vec<images::Image>,
)> {
    use camunda_conformance_controlplane::build;
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let binaries = build::ensure()?;
    let addons = build::ensure_node_addons()?;
    let root = workspace_root();
    let mvn = crate::local::prereq::find("mvn").ok_or_else(|| {
        anyhow::anyhow!(
            "the Camunda image is built with Maven: install it (`apt-get install maven`)"
        )
    })?;
    let mut build_supervisor = crate::local::supervisor::Supervisor::new(logs.to_path_buf(), true)?;
    let app = crate::local::app::ensure_built(&root, &mvn, flavour, &mut build_supervisor)?;
    drop(build_supervisor);
    let metrics_server = binaries.path("metrics-server");
    let addon_paths: Vec<(&str, PathBuf)> = images::BINARY_IMAGES
        .iter()
        .filter(|(program, _, _)| *program != "metrics-server")
        .map(|(program, _, _)| (*program, addons.path(program)))
        .collect();
    let mut programs: Vec<(&str, &Path)> = vec![("metrics-server", metrics_server.as_path())];
    programs.extend(addon_paths.iter().map(|(p, path)| (*p, path.as_path())));
    let apps = [images::CamundaApp {
        flavour,
        jar: &app.jar,
        agent: &app.agent,
        jmx_config: &app.jmx_config,
    }];
    let images = images::ensure(&images::Inputs {
        root: &root,
        apps: &apps,
        binaries: &programs,
        logs,
    })?;
    Ok((binaries, images))
}

/// Where the front door answers HTTPS and HTTP: the node's address (Traefik on the node's
/// network, ports 443 and 80).
pub fn front_door_addresses() -> (std::net::SocketAddr, std::net::SocketAddr) {
    let ip: std::net::Ipv4Addr = net::NODE_IP
        .parse()
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    (
        std::net::SocketAddr::from((ip, 443)),
        std::net::SocketAddr::from((ip, 80)),
    )
}

/// Where a `--keep` run records what `--down` stops.
pub fn kept_state_file() -> PathBuf {
    workspace_root().join("target/e2e/.node-kept.json")
}

/// A kept node's kubeconfig at a fixed place (file references only, no key material).
pub fn kept_kubeconfig() -> PathBuf {
    workspace_root().join("target/e2e/node.kubeconfig")
}

/// The CA a kept node's front door certificate verifies against (the run's test CA).
pub fn kept_ingress_ca() -> PathBuf {
    workspace_root().join("target/e2e/node-ingress-ca.crt")
}

fn read_kept() -> Result<Option<State>> {
    let file = kept_state_file();
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?,
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::anyhow!(err).context(format!("reading {}", file.display()))),
    }
}

/// Records a kept node for `--down` and copies its kubeconfig and the front door's test CA
/// (`ingress_ca`, when the run got that far) to fixed places.
pub fn record_kept(state: &State, ingress_ca: &Path) -> Result<()> {
    let file = kept_state_file();
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&file, serde_json::to_string_pretty(state)?)
        .with_context(|| format!("writing {}", file.display()))?;
    let kubeconfig = kept_kubeconfig();
    std::fs::copy(&state.kubeconfig, &kubeconfig)
        .with_context(|| format!("copying the kubeconfig to {}", kubeconfig.display()))?;
    let ca = kept_ingress_ca();
    if ingress_ca.is_file() {
        std::fs::copy(ingress_ca, &ca)
            .with_context(|| format!("copying the test CA to {}", ca.display()))?;
    }
    println!(
        "  kept the node (recorded in {}):\n    KUBECONFIG={} cargo xtask e2e --backend existing --context {} --no-deploy --ca {}\n    KUBECONFIG={} camunda-conformance run --kube-context {} --namespace camunda --ca {}\n    cargo xtask e2e --backend node --down",
        file.display(),
        kubeconfig.display(),
        cluster::CONTEXT,
        ca.display(),
        kubeconfig.display(),
        cluster::CONTEXT,
        ca.display()
    );
    Ok(())
}

/// The host has one node at a time (one network namespace name, one set of host folders): a
/// run holds this name from before it checks the host until it exits. An abstract Unix socket:
/// the kernel frees it with the process, so nothing is left on the host.
const RUN_LOCK: &str = "camunda-conformance-node";

/// Takes the host's node lock for the rest of the process, or says that another run holds it.
fn lock_host() -> Result<()> {
    static HELD: std::sync::OnceLock<std::os::unix::net::UnixListener> = std::sync::OnceLock::new();
    if HELD.get().is_none() {
        let _ = HELD.set(hold_abstract_name(RUN_LOCK)?);
    }
    Ok(())
}

/// Binds the abstract Unix socket `name`: held until the listener is dropped.
fn hold_abstract_name(name: &str) -> Result<std::os::unix::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let address =
        std::os::unix::net::SocketAddr::from_abstract_name(name).context("naming the node lock")?;
    match std::os::unix::net::UnixListener::bind_addr(&address) {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "another node run is in progress on this host (it holds the abstract socket @{name}): one node at a time; wait for it to end"
        ),
        Err(err) => Err(err).context("taking the node lock"),
    }
}

/// Checks the host (exit 2 before anything is touched), then creates the node's folder (0700, in
/// the system temp dir) and points every client of this run at its kubeconfig (`KUBECONFIG`,
/// set while the process has a single thread).
pub fn prepare_run_dir() -> Result<PathBuf> {
    lock_host()?;
    if let Some(kept) = read_kept()? {
        bail!(
            "a kept node runs already (run folder {}): stop it with `cargo xtask e2e --backend node --down`, or test it with `KUBECONFIG={} camunda-conformance run --kube-context {}`",
            kept.run_dir.display(),
            kept_kubeconfig().display(),
            cluster::CONTEXT
        );
    }
    host::preflight()?;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("camunda-conformance-node-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating the node's folder")?
        .keep();
    let socket = cluster::longest_socket_path(&dir);
    if socket.as_os_str().len() > cluster::MAX_SOCKET_PATH {
        let _ = std::fs::remove_dir_all(&dir);
        bail!(
            "the node's folder {} is too deep for containerd's sockets ({} is {} bytes, a Unix socket path holds at most {}): point TMPDIR at a shorter folder",
            dir.display(),
            socket.display(),
            socket.as_os_str().len(),
            cluster::MAX_SOCKET_PATH
        );
    }
    std::env::set_var("KUBECONFIG", dir.join("kubeconfig"));
    Ok(dir)
}

/// `--reuse`: the node a `--keep` run left, when it runs the stack this run asks for and all
/// its processes are alive; every client of this run is pointed at its kubeconfig.
pub fn adopt_kept(stack: &str) -> Result<PathBuf> {
    lock_host()?;
    let Some(kept) = read_kept()? else {
        bail!(
            "--reuse: no kept node ({} does not exist); start one with `cargo xtask e2e --backend node --keep`",
            kept_state_file().display()
        );
    };
    if kept.deployed.as_deref() != Some(stack) {
        bail!(
            "--reuse: the kept node runs {}, not {stack}; pass the same options or stop it with `cargo xtask e2e --backend node --down`",
            kept.deployed.as_deref().unwrap_or("a stack it did not record")
        );
    }
    let dead: Vec<String> = kept
        .groups
        .iter()
        .filter(|(_, pgid)| !crate::local::supervisor::group_alive(*pgid))
        .map(|(name, pgid)| format!("{name} (process group {pgid})"))
        .collect();
    if !dead.is_empty() {
        bail!(
            "--reuse: the kept node is broken, gone: {}; stop it with `cargo xtask e2e --backend node --down`",
            dead.join(", ")
        );
    }
    std::env::set_var("KUBECONFIG", &kept.kubeconfig);
    Ok(kept.run_dir)
}

/// After a `--reuse` run: the front door's certificate was issued anew by this run's test CA,
/// which replaces the kept copy.
pub fn refresh_kept_ingress_ca(ingress_ca: &Path) -> Result<()> {
    let ca = kept_ingress_ca();
    std::fs::copy(ingress_ca, &ca)
        .with_context(|| format!("copying the test CA to {}", ca.display()))?;
    Ok(())
}

/// Removes the node's folder when no node took it over (a run that stopped before starting one).
pub fn release_run_dir(dir: &Path) {
    let kept = read_kept().ok().flatten().is_some_and(|k| k.run_dir == dir);
    if !kept && dir.exists() && host::mounts_under(dir).is_empty() {
        if let Err(err) = std::fs::remove_dir_all(dir) {
            eprintln!("warning: removing {}: {err}", dir.display());
        }
    }
}

/// The overlay as deployed on the node: a kustomization in the run's folder that takes the
/// shipped overlay unchanged and adds `components/node` (local images, never pulled) and, for
/// `--route gateway`, `components/route-gateway`.
pub fn overlay_for(work: &Path, overlay: &Path, route: Route) -> Result<PathBuf> {
    let root = workspace_root();
    let dir = work.join("node-overlay");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let overlay = std::fs::canonicalize(overlay)
        .with_context(|| format!("the overlay {} does not exist", overlay.display()))?;
    let relative = |to: &Path| relative_path(&dir, to);
    let mut components = vec![relative(&root.join("manifests/components/node"))];
    if route == Route::Gateway {
        components.push(relative(&root.join("manifests/components/route-gateway")));
    }
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relative(&overlay)],
        "components": components,
    });
    let text = format!(
        "# Generated by cargo xtask e2e --backend node: {} as written, plus the node backend's component(s).\n{}",
        overlay.display(),
        serde_yaml::to_string(&kustomization)?
    );
    std::fs::write(dir.join("kustomization.yaml"), text)
        .with_context(|| format!("writing {}/kustomization.yaml", dir.display()))?;
    Ok(dir)
}

/// `to` relative to `from` (both absolute): kustomize refuses absolute resource paths.
fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// `--down`: stops the node a `--keep` run left and puts the host back.
pub fn down(plan_only: bool) -> Result<bool> {
    let Some(state) = read_kept()? else {
        println!(
            "no kept node ({} does not exist)",
            kept_state_file().display()
        );
        return Ok(true);
    };
    if plan_only {
        println!(
            "plan: delete every pod, stop {:?}, remove the containers, mounts, network namespace {} and cgroups, restore {:?}, remove {}",
            state.groups.iter().map(|(c, _)| c).collect::<Vec<_>>(),
            net::NETNS,
            host::KUBELET_SYSCTLS,
            state.run_dir.display()
        );
        return Ok(true);
    }
    let left = cluster::teardown(&state, Some(&state.kubeconfig));
    std::fs::remove_file(kept_state_file())
        .with_context(|| format!("removing {}", kept_state_file().display()))?;
    let _ = std::fs::remove_file(kept_kubeconfig());
    let _ = std::fs::remove_file(kept_ingress_ca());
    if !left.is_empty() {
        bail!("the node is stopped but left:\n  - {}", left.join("\n  - "));
    }
    println!("stopped the kept node; nothing left on the host (leak check passed)");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_host() {
        let name = format!("camunda-conformance-node-test-{}", std::process::id());
        let first = hold_abstract_name(&name).unwrap();
        let err = hold_abstract_name(&name).unwrap_err().to_string();
        assert!(err.contains("another node run is in progress"), "{err}");
        drop(first);
        hold_abstract_name(&name).expect("free again once the first run ends");
    }

    #[test]
    fn each_claim_of_a_statefulset_gets_its_own_volume() {
        let docs = vec![json!({
            "kind": "StatefulSet",
            "metadata": {"name": "postgres", "namespace": "camunda"},
            "spec": {"replicas": 2, "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
            }]},
        })];
        let made = volumes(&docs, Path::new("/run/n")).unwrap();
        let claims: Vec<&str> = made.iter().map(|v| v.claim.as_str()).collect();
        assert_eq!(
            claims,
            ["camunda/data-postgres-0", "camunda/data-postgres-1"]
        );
        assert_eq!(made[1].pv["spec"]["claimRef"]["name"], "data-postgres-1");
        assert_eq!(made[1].pv["spec"]["capacity"]["storage"], "2Gi");
        assert_eq!(made[0].pv["spec"]["storageClassName"], "");
        assert_eq!(
            made[0].dir,
            Path::new("/run/n/volumes/camunda-data-postgres-0")
        );
        let broken = vec![
            json!({"kind": "StatefulSet", "metadata": {"name": "p"}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}}),
        ];
        let err = volumes(&broken, Path::new("/r")).unwrap_err().to_string();
        assert!(
            err.contains("StatefulSet default/p") && err.contains("storage"),
            "{err}"
        );
    }

    #[test]
    fn kustomize_paths_are_relative() {
        assert_eq!(
            relative_path(
                Path::new("/w/target/e2e/run/node-overlay"),
                Path::new("/w/manifests/overlays/e2e")
            ),
            "../../../../manifests/overlays/e2e"
        );
    }
}
