//! The one-node cluster as host processes, every one inside the node's network namespace:
//! etcd, kube-apiserver (serving at the node's address), kube-controller-manager,
//! kube-scheduler, containerd (Debian's, with a config and state of the run's own), the kubelet
//! and kube-proxy at the control plane's version. Started in that order; stopped by
//! [`teardown`], which works from the recorded [`State`] alone, so `--down` and the Ctrl-C
//! handler put the host back exactly as a normal end does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{self, Before};
use super::net::{self, NODE_IP, POD_CIDR};
use crate::local::supervisor::{self, log_tail, Supervisor};
use crate::local::wait::{self, Probe};
use camunda_conformance_controlplane::apiserver::{self, arg, kubeconfig_for};
use camunda_conformance_controlplane::build::Binaries;
use camunda_conformance_controlplane::cmd::Cmd;
use camunda_conformance_controlplane::pki::{NodeIdentity, Pki};
use camunda_conformance_controlplane::SERVICE_RANGE;

pub const NODE_NAME: &str = "camunda-node";
pub const CONTEXT: &str = "camunda-conformance-node";
pub const APISERVER_PORT: u16 = 6443;
pub const CLUSTER_DNS: &str = "10.96.0.10";
/// The node's cgroup root under every v1 controller.
pub const CGROUP_ROOT: &str = "/camunda-conformance-node";
const ETCD_CLIENT: u16 = 2379;
const ETCD_PEER: u16 = 2380;

/// Everything teardown needs, also from another process (`--down` after `--keep`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub run_dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// (component, process group) in start order.
    pub groups: Vec<(String, i32)>,
    pub before: Before,
    /// What a kept node runs (`RunSettings::stack`), for `--reuse` to refuse another stack.
    #[serde(default)]
    pub deployed: Option<String>,
}

impl State {
    fn containerd_socket(&self) -> PathBuf {
        containerd_socket(&self.run_dir)
    }
}

fn containerd_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("containerd/containerd.sock")
}

/// What containerd accepts as a socket path (sockaddr_un's 108 bytes, less its own margin).
pub const MAX_SOCKET_PATH: usize = 104;

/// The longest socket path of the node's folder: containerd's ttrpc endpoint.
pub fn longest_socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("containerd/containerd.sock.ttrpc")
}

/// The node of this process, for the Ctrl-C/SIGTERM handler.
static ACTIVE: Mutex<Option<State>> = Mutex::new(None);

fn active() -> std::sync::MutexGuard<'static, Option<State>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The signal handler's part: the supervisor has stopped the processes; this removes what they
/// left on the host.
fn on_interrupt() {
    if let Some(state) = active().take() {
        eprintln!("interrupted: removing the node (containers, mounts, namespace, cgroups)");
        for problem in teardown(&state, None) {
            eprintln!("warning: {problem}");
        }
    }
}

pub struct Node {
    supervisor: Option<Supervisor>,
    pub state: State,
}

/// Turns a prepared command into the same command inside the node's network namespace.
fn netns(cmd: Command) -> Command {
    let mut inner = net::inside(cmd.get_program());
    inner.args(cmd.get_args());
    inner
}

impl Node {
    /// Starts the node's processes; `import` puts the images into containerd before the kubelet
    /// starts (the pause image must be there). On error everything started is torn down.
    pub fn start(
        binaries: &Binaries,
        run_dir: &Path,
        logs: &Path,
        keep: bool,
        import: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Self> {
        let before = Before::record()?;
        let kubeconfig = run_dir.join("kubeconfig");
        let mut node = Self {
            supervisor: Some(Supervisor::new(logs.to_path_buf(), !keep)?),
            state: State {
                run_dir: run_dir.to_path_buf(),
                kubeconfig: kubeconfig.clone(),
                groups: Vec::new(),
                before,
                deployed: None,
            },
        };
        *active() = Some(node.state.clone());
        supervisor::on_interrupt(on_interrupt);
        node.bring_up(binaries, import)?;
        Ok(node)
    }

    fn spawn(&mut self, component: &str, cmd: Command) -> Result<usize> {
        let supervisor = self
            .supervisor
            .as_mut()
            .ok_or_else(|| anyhow!("the node was handed over"))?;
        let index = supervisor.spawn(component, netns(cmd))?;
        let pid = supervisor.get(index).pid;
        self.state.groups.push((component.to_string(), pid));
        *active() = Some(self.state.clone());
        Ok(index)
    }

    /// A spawned process that exited, with the end of its log.
    fn exited(&mut self, index: usize) -> Option<String> {
        let proc = self.supervisor.as_mut()?.get(index);
        proc.exited().map(|status| {
            format!(
                "{} exited ({status}); last lines of {}:\n{}",
                proc.component,
                proc.log.display(),
                log_tail(&proc.log, 20)
            )
        })
    }

    fn log_of(&mut self, index: usize) -> PathBuf {
        self.supervisor
            .as_mut()
            .map(|s| s.get(index).log.clone())
            .unwrap_or_default()
    }

    fn bring_up(
        &mut self,
        binaries: &Binaries,
        import: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let dir = self.state.run_dir.clone();
        let sub = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            Ok(path)
        };
        let pki_dir = sub("pki")?;
        let pki = Pki::generate_for(
            &pki_dir,
            Some(&NodeIdentity {
                name: NODE_NAME,
                ip: NODE_IP,
            }),
        )?;
        let node_certs = pki
            .node
            .as_ref()
            .ok_or_else(|| anyhow!("the PKI has no node certificates"))?;
        let server = format!("https://{NODE_IP}:{APISERVER_PORT}");
        let write = |path: &Path, text: String| -> Result<()> {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        };
        write(
            &self.state.kubeconfig,
            kubeconfig_for(CONTEXT, &server, &pki.ca, &pki.admin),
        )?;
        let kubelet_kubeconfig = dir.join("kubelet.kubeconfig");
        write(
            &kubelet_kubeconfig,
            kubeconfig_for(CONTEXT, &server, &pki.ca, &node_certs.kubelet_client),
        )?;
        let proxy_kubeconfig = dir.join("kube-proxy.kubeconfig");
        write(
            &proxy_kubeconfig,
            kubeconfig_for(CONTEXT, &server, &pki.ca, &node_certs.kube_proxy),
        )?;

        net::create()?;

        self.spawn(
            "etcd",
            apiserver::etcd(binaries, &sub("etcd")?, ETCD_CLIENT, ETCD_PEER),
        )?;
        let mut api =
            apiserver::kube_apiserver_at(binaries, &pki, ETCD_CLIENT, NODE_IP, APISERVER_PORT);
        // The API server reaches the kubelet (logs, exec, port-forward) as admin and checks the
        // kubelet's serving certificate against the cluster CA.
        api.arg(arg("kubelet-client-certificate", &pki.admin.0))
            .arg(arg("kubelet-client-key", &pki.admin.1))
            .arg(arg("kubelet-certificate-authority", &pki.ca))
            .arg(arg("kubelet-preferred-address-types", "InternalIP"));
        let api_index = self.spawn("kube-apiserver", api)?;
        self.await_apiserver(&pki, api_index)?;

        let admin = self.state.kubeconfig.clone();
        let client = |name: &str| {
            let mut cmd = Command::new(binaries.path(name));
            cmd.arg(arg("kubeconfig", &admin))
                .arg(arg("authentication-kubeconfig", &admin))
                .arg(arg("authorization-kubeconfig", &admin))
                .arg(arg("bind-address", "127.0.0.1"))
                .arg(arg("leader-elect", "false"));
            cmd
        };
        let mut kcm = client("kube-controller-manager");
        kcm.arg(arg(
            "service-account-private-key-file",
            &pki.service_account_key,
        ))
        .arg(arg("root-ca-file", &pki.ca))
        .arg(arg("service-cluster-ip-range", SERVICE_RANGE))
        .arg(arg("use-service-account-credentials", "true"))
        // Its default, /usr/libexec/kubernetes/..., would be created on the host.
        .arg(arg("flex-volume-plugin-dir", sub("flex-volume")?));
        self.spawn("kube-controller-manager", kcm)?;
        self.spawn("kube-scheduler", client("kube-scheduler"))?;

        // containerd, with its own root, state, socket, CNI and plugin folders.
        let containerd_dir = sub("containerd")?;
        let cni_dir = sub("cni/net.d")?;
        write(
            &cni_dir.join("10-camunda-conformance.conflist"),
            serde_json::to_string_pretty(&net::cni_config(&sub("cni/ipam")?))?,
        )?;
        let config = containerd_dir.join("config.toml");
        write(
            &config,
            containerd_config(&dir, &cni_dir, &sub("containerd/opt")?),
        )?;
        let mut containerd = Command::new("/usr/bin/containerd");
        containerd.arg("--config").arg(&config);
        let containerd_index = self.spawn("containerd", containerd)?;
        self.await_containerd(containerd_index)?;
        import(&self.state.containerd_socket())?;

        // The kubelet, on the node's own cgroup root.
        host::create_cgroup_root(CGROUP_ROOT)?;
        let resolv = dir.join("resolv.conf");
        // No upstream resolver exists for pods that do not use the cluster's DNS.
        write(
            &resolv,
            "# no upstream resolvers: the node has no network beyond its own\n".into(),
        )?;
        let kubelet_config = dir.join("kubelet.yaml");
        write(
            &kubelet_config,
            serde_yaml::to_string(&kubelet_configuration(
                &dir,
                &pki.ca,
                &node_certs.kubelet_serving,
                &resolv,
            ))?,
        )?;
        let mut kubelet = Command::new(binaries.path("kubelet"));
        kubelet
            .arg(arg("config", &kubelet_config))
            .arg(arg("kubeconfig", &kubelet_kubeconfig))
            .arg(arg("root-dir", sub("kubelet")?))
            .arg(arg("cert-dir", sub("kubelet-pki")?))
            .arg(arg("hostname-override", NODE_NAME))
            .arg(arg("node-ip", NODE_IP))
            .arg(arg("v", "1"));
        self.spawn("kubelet", kubelet)?;

        let proxy_config = dir.join("kube-proxy.yaml");
        write(
            &proxy_config,
            serde_yaml::to_string(&kube_proxy_configuration(&proxy_kubeconfig))?,
        )?;
        let mut proxy = Command::new(binaries.path("kube-proxy"));
        proxy.arg(arg("config", &proxy_config));
        self.spawn("kube-proxy", proxy)?;
        Ok(())
    }

    fn await_apiserver(&mut self, pki: &Pki, index: usize) -> Result<()> {
        let client = crate::kwok::control_plane::admin_client(pki)?;
        let url = format!("https://{NODE_IP}:{APISERVER_PORT}/readyz");
        let log = self.log_of(index);
        wait::until(
            "kube-apiserver /readyz",
            Duration::from_secs(120),
            Some(&log),
            || {
                if let Some(exit) = self.exited(index) {
                    return Probe::Failed(exit);
                }
                match client.get(&url).send() {
                    Ok(r) if r.status().is_success() => Probe::Ready(()),
                    Ok(r) => Probe::Pending(format!("{}", r.status())),
                    Err(err) => Probe::Pending(format!("{err}")),
                }
            },
        )
    }

    fn await_containerd(&mut self, index: usize) -> Result<()> {
        let socket = self.state.containerd_socket();
        let log = self.log_of(index);
        wait::until("containerd", Duration::from_secs(60), Some(&log), || {
            if let Some(exit) = self.exited(index) {
                return Probe::Failed(exit);
            }
            match ctr(&socket, &["version"])
                .timeout(Duration::from_secs(5))
                .capture()
            {
                Ok(out) if out.success => Probe::Ready(()),
                Ok(out) => Probe::Pending(out.stderr.trim().to_string()),
                Err(err) => Probe::Pending(format!("{err:#}")),
            }
        })
    }

    /// A component that exited, with the end of its log; `None` while all run.
    pub fn any_exited(&mut self) -> Option<String> {
        let count = self.state.groups.len();
        (0..count).find_map(|i| self.exited(i))
    }

    /// Lets the node outlive this process (`--keep`): returns what `--down` needs.
    pub fn keep(mut self) -> State {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.keep();
        }
        active().take();
        self.state.clone()
    }

    /// Stops the node and puts the host back; returns what could not be removed. The node
    /// stays registered with the signal handler until the teardown is done: a Ctrl-C in the
    /// middle runs the (idempotent) teardown to its end before the process exits.
    pub fn stop(mut self) -> Vec<String> {
        let problems = teardown(&self.state, Some(&self.state.kubeconfig));
        if let Some(mut supervisor) = self.supervisor.take() {
            supervisor.shutdown();
        }
        active().take();
        problems
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            for problem in teardown(&self.state, None) {
                eprintln!("warning: {problem}");
            }
            if let Some(mut supervisor) = self.supervisor.take() {
                supervisor.shutdown();
            }
            active().take();
        }
    }
}

/// `ctr --address SOCKET ARGS` in containerd's Kubernetes namespace.
pub fn ctr(socket: &Path, args: &[&str]) -> Cmd {
    let mut all = vec![
        "--address".to_string(),
        socket.display().to_string(),
        "--namespace".to_string(),
        "k8s.io".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    Cmd::new("ctr", all).timeout(Duration::from_secs(60))
}

/// Stops the node from its recorded state: with `kubeconfig` the pods are deleted first so the
/// kubelet unmounts their volumes and CNI releases their addresses; then the processes, the
/// runtime's shims and containers, the mounts, the namespace, the cgroups, the sysctls and the
/// host folders. Returns what is left (empty: nothing).
pub fn teardown(state: &State, kubeconfig: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(kubeconfig) = kubeconfig {
        // No controller re-creates what is deleted next.
        let controllers: Vec<(String, i32)> = state
            .groups
            .iter()
            .filter(|(c, _)| c == "kube-controller-manager")
            .cloned()
            .collect();
        supervisor::stop_groups(&controllers, Duration::from_secs(10));
        if let Err(err) = delete_pods(kubeconfig) {
            problems.push(format!("deleting the pods: {err:#}"));
        }
    }
    // Clients before servers: the API server before etcd.
    let mut groups = state.groups.clone();
    groups.reverse();
    for one in &groups {
        supervisor::stop_groups(std::slice::from_ref(one), Duration::from_secs(10));
    }
    let socket = state.containerd_socket().display().to_string();
    for pid in host::processes_mentioning(&socket) {
        // SAFETY: a containerd shim of this node's containerd (its command line names the socket).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    problems.extend(host::remove_cgroup_root(CGROUP_ROOT));
    problems.extend(host::unmount_all_under(&state.run_dir));
    problems.extend(net::delete());
    problems.extend(state.before.restore());
    if state.run_dir.exists() {
        if let Err(err) = std::fs::remove_dir_all(&state.run_dir) {
            problems.push(format!("removing {}: {err}", state.run_dir.display()));
        }
    }
    problems.extend(host::leaks(
        Some(&state.run_dir),
        CGROUP_ROOT,
        &state.before,
    ));
    problems.sort();
    problems.dedup();
    problems
}

/// Deletes every pod and waits (bounded) until the kubelet has confirmed each one gone.
fn delete_pods(kubeconfig: &Path) -> Result<()> {
    apiserver::kubectl(
        kubeconfig,
        &[
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            "--wait=false",
            "--grace-period=1",
        ],
    )
    .output()?;
    let started = std::time::Instant::now();
    let mut seen = String::new();
    while started.elapsed() < Duration::from_secs(90) {
        seen = apiserver::kubectl(
            kubeconfig,
            &["get", "pods", "--all-namespaces", "--no-headers"],
        )
        .timeout(Duration::from_secs(15))
        .output()?;
        if seen.trim().is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    anyhow::bail!(
        "pods still there after 90 s: {}",
        seen.lines().take(5).collect::<Vec<_>>().join("; ")
    )
}

fn containerd_config(run_dir: &Path, cni_dir: &Path, opt_dir: &Path) -> String {
    let c = run_dir.join("containerd");
    let show = |p: &Path| p.display().to_string();
    format!(
        r#"# Written per run by cargo xtask e2e --backend node.
version = 2
root = "{root}"
state = "{state}"
# Plugins that would otherwise work on host folders or devices.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host's bounding set lacks.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces under the run's folder, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = show(&c.join("root")),
        state = show(&c.join("state")),
        socket = show(&containerd_socket(run_dir)),
        opt = show(opt_dir),
        pause = super::PAUSE_IMAGE,
        cni = show(cni_dir),
    )
}

fn kubelet_configuration(
    run_dir: &Path,
    ca: &Path,
    serving: &(PathBuf, PathBuf),
    resolv: &Path,
) -> serde_json::Value {
    json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": ca},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": serving.0,
        "tlsPrivateKeyFile": serving.1,
        "containerRuntimeEndpoint": format!("unix://{}", containerd_socket(run_dir).display()),
        // The host has cgroup v1 (the kubelet refuses it unless told otherwise) and no systemd
        // manager for the node's cgroups.
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": CGROUP_ROOT,
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "resolvConf": resolv,
        "podLogsDir": run_dir.join("pod-logs"),
        "volumePluginDir": run_dir.join("volume-plugins"),
        "failSwapOn": false,
        // Nothing can be pulled again: never collect the imported images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        // A shared developer disk is often fuller than the defaults allow.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        // The kubelet would refuse to start on kernel defaults that differ from its own; the
        // teardown puts back what it sets (host::KUBELET_SYSCTLS).
        "protectKernelDefaults": false,
        "serializeImagePulls": false,
        "nodeStatusUpdateFrequency": "5s",
        // How soon a changed Secret reaches a mounted volume: the Prometheus Operator hands
        // Prometheus its scrape configuration that way (the default 1m is a minute of waiting
        // for the first targets).
        "syncFrequency": "10s",
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
    })
}

fn kube_proxy_configuration(kubeconfig: &Path) -> serde_json::Value {
    json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "mode": "iptables",
        "bindAddress": NODE_IP,
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        // Conntrack limits are kernel-wide on this host: leave them alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelet_runs_on_the_nodes_own_cgroup_root_and_keeps_its_images() {
        let config = kubelet_configuration(
            Path::new("/run/x"),
            Path::new("/run/x/pki/ca.crt"),
            &(PathBuf::from("a.crt"), PathBuf::from("a.key")),
            Path::new("/run/x/resolv.conf"),
        );
        assert_eq!(config["cgroupRoot"], CGROUP_ROOT);
        assert_eq!(config["failCgroupV1"], false);
        assert_eq!(config["imageGCHighThresholdPercent"], 100);
        assert_eq!(
            config["containerRuntimeEndpoint"],
            "unix:///run/x/containerd/containerd.sock"
        );
        assert_eq!(config["authentication"]["anonymous"]["enabled"], false);
    }

    #[test]
    fn containerd_keeps_its_state_in_the_run_folder() {
        let text = containerd_config(
            Path::new("/run/x"),
            Path::new("/run/x/cni"),
            Path::new("/run/x/opt"),
        );
        assert!(text.contains("restrict_oom_score_adj = true"), "{text}");
        assert!(text.contains("root = \"/run/x/containerd/root\""), "{text}");
        assert!(
            text.contains("netns_mounts_under_state_dir = true"),
            "{text}"
        );
        assert!(!text.contains("/var/lib/containerd"), "{text}");
    }
}
