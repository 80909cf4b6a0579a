//! etcd and kube-apiserver on loopback: their command lines (shared by the kwok backend, which
//! runs them under its supervisor beside the controllers) and [`Standalone`], the two alone for
//! `camunda-conformance validate --api-server`.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::Binaries;
use crate::cmd::Cmd;
use crate::pki::Pki;
use crate::{CONTEXT, FRONT_PROXY_NAME, SERVICE_RANGE};

/// `--flag=value`.
pub fn arg(flag: &str, value: impl AsRef<OsStr>) -> OsString {
    let mut out = OsString::from(format!("--{flag}="));
    out.push(value.as_ref());
    out
}

/// A free loopback port now (its process binds it a moment later).
pub fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// etcd serving clients at `client` and peers at `peer`, its data in `data`.
pub fn etcd(binaries: &Binaries, data: &Path, client: u16, peer: u16) -> Command {
    let mut etcd = Command::new(binaries.path("etcd"));
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    etcd.arg(arg("data-dir", data))
        .arg(arg("name", "kwok"))
        .arg(arg("listen-client-urls", &client_url))
        .arg(arg("advertise-client-urls", &client_url))
        .arg(arg("listen-peer-urls", &peer_url))
        .arg(arg("initial-advertise-peer-urls", &peer_url))
        .arg(arg("initial-cluster", format!("kwok={peer_url}")))
        // A throwaway cluster: durability costs time and buys nothing.
        .arg("--unsafe-no-fsync");
    etcd
}

/// kube-apiserver on 127.0.0.1:`port` with etcd at `etcd_client`: client-certificate admin,
/// Node,RBAC, the aggregation layer's front proxy.
pub fn kube_apiserver(binaries: &Binaries, pki: &Pki, etcd_client: u16, port: u16) -> Command {
    let mut api = kube_apiserver_at(binaries, pki, etcd_client, "127.0.0.1", port);
    // Loopback is no valid endpoint address for the `kubernetes` Service.
    api.arg(arg("endpoint-reconciler-type", "none"));
    api
}

/// kube-apiserver serving (and advertising itself) at `address`:`port`, etcd on the loopback of
/// the same network namespace.
pub fn kube_apiserver_at(
    binaries: &Binaries,
    pki: &Pki,
    etcd_client: u16,
    address: &str,
    port: u16,
) -> Command {
    let mut api = Command::new(binaries.path("kube-apiserver"));
    api.arg(arg(
        "etcd-servers",
        format!("http://127.0.0.1:{etcd_client}"),
    ))
    .arg(arg("bind-address", address))
    .arg(arg("advertise-address", address))
    .arg(arg("secure-port", port.to_string()))
    .arg(arg("tls-cert-file", &pki.apiserver.0))
    .arg(arg("tls-private-key-file", &pki.apiserver.1))
    .arg(arg("client-ca-file", &pki.ca))
    .arg(arg("service-account-key-file", &pki.service_account_pub))
    .arg(arg(
        "service-account-signing-key-file",
        &pki.service_account_key,
    ))
    .arg(arg(
        "service-account-issuer",
        "https://kubernetes.default.svc.cluster.local",
    ))
    .arg(arg("service-cluster-ip-range", SERVICE_RANGE))
    .arg(arg("authorization-mode", "Node,RBAC"))
    .arg(arg("allow-privileged", "true"))
    // The aggregation layer (metrics.k8s.io) authenticates itself with this client.
    .arg(arg("proxy-client-cert-file", &pki.front_proxy.0))
    .arg(arg("proxy-client-key-file", &pki.front_proxy.1))
    .arg(arg("requestheader-client-ca-file", &pki.ca))
    .arg(arg("requestheader-allowed-names", FRONT_PROXY_NAME))
    .arg(arg("requestheader-username-headers", "X-Remote-User"))
    .arg(arg("requestheader-group-headers", "X-Remote-Group"))
    .arg(arg("requestheader-extra-headers-prefix", "X-Remote-Extra-"));
    api
}

/// Where the kubeconfig of a control plane's private folder is.
pub fn kubeconfig_path(private: &Path) -> PathBuf {
    private.join("kubeconfig")
}

/// The admin kubeconfig: file references to the PKI (keys are not copied anywhere).
pub fn kubeconfig_yaml(port: u16, pki: &Pki) -> String {
    kubeconfig_for(
        CONTEXT,
        &format!("https://127.0.0.1:{port}"),
        &pki.ca,
        &pki.admin,
    )
}

/// A kubeconfig of one context `context` for `server`, authenticating with the client
/// certificate `identity` (certificate, key): file references only.
pub fn kubeconfig_for(
    context: &str,
    server: &str,
    ca: &Path,
    identity: &(PathBuf, PathBuf),
) -> String {
    serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": server,
            "certificate-authority": ca,
        }}],
        "users": [{"name": context, "user": {
            "client-certificate": identity.0,
            "client-key": identity.1,
        }}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }))
    .unwrap_or_default()
}

/// `kubectl --kubeconfig K ...`, bounded.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Cmd {
    let mut all = vec!["--kubeconfig".to_string(), kubeconfig.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Cmd::new("kubectl", all).timeout(Duration::from_secs(60))
}

/// etcd and kube-apiserver alone, in a private temp dir, stopped (and the dir removed) on drop.
/// The processes die with this one too (PR_SET_PDEATHSIG), so Ctrl-C leaves nothing running.
pub struct Standalone {
    children: Vec<Child>,
    pub kubeconfig: PathBuf,
    /// PKI, kubeconfig, etcd data, component logs.
    dir: tempfile::TempDir,
}

fn spawn(mut command: Command, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))
}

impl Standalone {
    pub fn start(binaries: &Binaries) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("camunda-conformance-apiserver-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("creating the API server's private folder")?;
        let pki = Pki::generate(dir.path())?;
        let (client, peer, port) = (free_port()?, free_port()?, free_port()?);
        let kubeconfig = kubeconfig_path(dir.path());
        std::fs::write(&kubeconfig, kubeconfig_yaml(port, &pki))
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let mut server = Self {
            children: Vec::new(),
            kubeconfig,
            dir,
        };
        let logs = server.dir.path().to_path_buf();
        server.children.push(spawn(
            etcd(binaries, &logs.join("etcd-data"), client, peer),
            &logs.join("etcd.log"),
        )?);
        server.children.push(spawn(
            kube_apiserver(binaries, &pki, client, port),
            &logs.join("kube-apiserver.log"),
        )?);
        server.await_ready(Duration::from_secs(120))?;
        Ok(server)
    }

    /// Keeps the private folder (component logs; also the PKI, which dies with the processes)
    /// for a person to read after a failure.
    pub fn keep_logs(&mut self) -> PathBuf {
        self.dir.disable_cleanup(true);
        self.dir.path().to_path_buf()
    }

    fn await_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut seen = String::from("not asked yet");
        while started.elapsed() < timeout {
            for child in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "a control-plane process exited ({status}); its logs are kept in {}",
                        self.keep_logs().display()
                    );
                }
            }
            let readyz = kubectl(&self.kubeconfig, &["get", "--raw", "/readyz"])
                .timeout(Duration::from_secs(10))
                .capture();
            match readyz {
                Ok(out) if out.success => return Ok(()),
                Ok(out) => seen = out.stderr.lines().last().unwrap_or_default().to_string(),
                Err(err) => seen = format!("{err:#}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!(
            "kube-apiserver was not ready within {}s; last seen: {seen}; logs kept in {}",
            timeout.as_secs(),
            self.keep_logs().display()
        )
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // The API server before etcd: one whose etcd went first hangs in its graceful shutdown.
        for child in self.children.iter_mut().rev() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals a child we started and have not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
