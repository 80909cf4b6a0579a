//! The target description: everything the suites know about the deployment under test.
//! Written by `cargo xtask e2e`, or by hand for an existing deployment; read by
//! `camunda-conformance run --target FILE`. Relative paths are relative to the file.
//!
//! ```toml
//! name = "local-sticky"
//! backend = "local"                        # local | kind | existing | kwok
//! [ingress]
//! base_url = "https://camunda.test:18443"  # https; its port must equal connect_to's
//! connect_to = "127.0.0.1:18443"           # optional: the host resolves here, no DNS
//! http_url = "http://camunda.test:18080"   # optional: must redirect to https
//! ca_file = "ca.pem"                       # optional: the only CA trusted for the ingress;
//!                                          # absent: the system's roots (public certificates)
//! webapp_path = "/camunda"                 # default; forks use /operaton, /webapp
//! rest_path = "/engine-rest"               # default
//! [sessions]
//! mode = "sticky"                          # sticky | shared
//! affinity_cookie = "INGRESSCOOKIE"        # default; never JSESSIONID
//! [credentials]
//! username = "conformance"
//! password_file = "password"               # or password_env = "VAR"; never inline
//! [prometheus]                             # optional: without it those checks skip
//! url = "http://127.0.0.1:19090"
//! job = "camunda"
//! [[replicas]]
//! name = "camunda-0"
//! http_url = "http://127.0.0.1:28080"
//! metrics_url = "http://127.0.0.1:29404/metrics"
//! prometheus_instance = "10.244.0.7:9404"  # optional: when Prometheus scrapes another address
//! stop = { signal = { pid = 1234 } }       # or { signal_all = { pids = [1234, 1250] } }, or
//!                                          # { delete_pod = { namespace = "camunda", name = "camunda-0" } }
//! [metrics]                                # optional: the series the metrics suite requires
//! preset = "jmx"                           # jmx (default: this project's jmx_exporter rules) |
//!                                          # micrometer (Spring Boot, /actuator/prometheus)
//! request_counter = "tomcat_requestcount_total"  # optional overrides of the preset's names:
//!                                          # jvm_series, request_counter, engine_prefix,
//!                                          # engine_label ("name=value"), path
//! [kubernetes]                             # kind/existing: scaling suite and delete_pod
//! context = "kind-camunda-conformance"     # optional, as is kubeconfig
//! namespace = "camunda"
//! deployment = "camunda"
//! hpa = "camunda"
//! [disruptive]
//! allowed = true                           # default false: disruptive checks skip
//! [[allowed_skips]]                        # under `run --strict` a skip fails unless listed
//! check = "scaling.*"                      # a check id, or `suite.*` for a whole suite
//! reason = "no Kubernetes on this target"  # required: why skipping it is fine here
//! [bounds]                                 # optional, seconds; these are the defaults
//! prometheus_s = 60
//! settle_s = 20
//! job_s = 60
//! scale_out_s = 300
//! scale_in_s = 600
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use reqwest::Url;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    pub backend: Backend,
    pub ingress: Ingress,
    pub sessions: Sessions,
    pub credentials: Credentials,
    /// Absent: the Prometheus checks of the metrics suite are skipped with that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<Prometheus>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// The series names of the metrics suite.
    #[serde(default)]
    pub metrics: Metrics,
    /// Needed by the scaling suite (kind/existing backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes>,
    #[serde(default)]
    pub disruptive: Disruptive,
    /// Skips that `run --strict` accepts, each with the reason it is fine for this target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_skips: Vec<AllowedSkip>,
    #[serde(default)]
    pub bounds: Bounds,
}

/// A check (or `suite.*`) that may be skipped under `run --strict`, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedSkip {
    pub check: String,
    pub reason: String,
}

impl AllowedSkip {
    pub fn new(check: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            reason: reason.into(),
        }
    }

    /// Whether this entry names the check: its id, or its suite as `suite.*`.
    pub fn covers(&self, check_id: &str) -> bool {
        match self.check.strip_suffix(".*") {
            Some(suite) => check_id
                .strip_prefix(suite)
                .is_some_and(|rest| rest.starts_with('.')),
            None => self.check == check_id,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    Kind,
    Existing,
    /// A real control plane whose pods kwok simulates: nothing runs Camunda.
    Kwok,
    /// A real one-node cluster on the harness's host (`cargo xtask e2e --backend node`).
    Node,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// What clients use, `https://host[:port]`.
    pub base_url: String,
    /// The TLS host name; defaults to the host of `base_url` and must equal it when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where the host name resolves to, inside the client (no DNS). Absent: ordinary DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_to: Option<SocketAddr>,
    /// The plain HTTP entry that must redirect to HTTPS. Absent: the redirect check is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    /// The only CA the suites trust for the ingress (PEM). Absent: the platform's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_webapp_path")]
    pub webapp_path: String,
    #[serde(default = "default_rest_path")]
    pub rest_path: String,
    /// Every other address a client outside the cluster reaches the replicas at: the node
    /// ports and load-balancer addresses of the Services that select them.
    /// `metrics.not-public` asks each for the metrics path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<SocketAddr>,
}

fn default_webapp_path() -> String {
    "/camunda".into()
}

fn default_rest_path() -> String {
    "/engine-rest".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    pub mode: SessionMode,
    /// The ingress's affinity cookie (sticky mode).
    #[serde(default = "default_affinity_cookie")]
    pub affinity_cookie: String,
}

fn default_affinity_cookie() -> String {
    "INGRESSCOOKIE".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    Sticky,
    Shared,
}

/// The user the suites log in with. The password comes from a file or an environment
/// variable, never from the target file itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Only so that an inline password gets a precise error instead of "unknown field".
    #[serde(default, skip_serializing)]
    password: Option<toml::Value>,
    /// Read by `run --kube-context` from the cluster's Secret: held in memory only, never
    /// serialised (a written description names `password_env` or `password_file` instead).
    #[serde(skip)]
    in_memory: Option<Secret>,
}

impl Credentials {
    pub fn from_file(username: impl Into<String>, password_file: impl Into<PathBuf>) -> Self {
        Self {
            username: username.into(),
            password_file: Some(password_file.into()),
            password_env: None,
            password: None,
            in_memory: None,
        }
    }

    /// A password that exists only in this process.
    pub fn in_memory(username: impl Into<String>, password: String) -> Self {
        Self {
            username: username.into(),
            password_file: None,
            password_env: None,
            password: None,
            in_memory: Some(Secret(password)),
        }
    }

    pub fn from_env(username: impl Into<String>, variable: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password_file: None,
            password_env: Some(variable.into()),
            password: None,
            in_memory: None,
        }
    }

    /// Reads the password (a file's trailing newline is not part of it).
    pub(crate) fn password(&self) -> Result<Secret> {
        if let Some(secret) = &self.in_memory {
            return Ok(secret.clone());
        }
        let value = match (&self.password_file, &self.password_env) {
            (Some(file), None) => std::fs::read_to_string(file)
                .with_context(|| format!("reading credentials.password_file {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            (None, Some(var)) => std::env::var(var).with_context(|| {
                format!("reading credentials.password_env: environment variable {var}")
            })?,
            _ => bail!("credentials: exactly one of password_file and password_env is needed"),
        };
        if value.is_empty() {
            bail!("credentials: the password is empty");
        }
        Ok(Secret(value))
    }
}

/// A password: never shown by Debug or Display.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What the metrics suite requires of every replica's page: a preset names it all, an explicit
/// name overrides the preset's (so nobody fails for naming alone).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    #[serde(default)]
    pub preset: MetricsPreset,
    /// A JVM series (also the per-replica PromQL query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jvm_series: Option<String>,
    /// The HTTP request counter, summed over its series (the traffic checks watch it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_counter: Option<String>,
    /// A process-engine series: a name starting with this...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_prefix: Option<String>,
    /// ...carrying this label (`name=value`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_label: Option<String>,
    /// The path of the metrics page on each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsPreset {
    /// This project's jmx_exporter rules (`manifests/base/camunda/prometheus-jmx.yml`).
    #[default]
    Jmx,
    /// Spring Boot Actuator with Micrometer's Prometheus registry. Camunda 7's starter has no
    /// engine meter binder; its job executor is the `camundaTaskExecutor` ThreadPoolTaskExecutor
    /// bean, which Actuator exposes as `executor_*{name="camundaTaskExecutor"}`.
    Micrometer,
}

impl Metrics {
    pub fn micrometer() -> Self {
        Self {
            preset: MetricsPreset::Micrometer,
            ..Self::default()
        }
    }

    fn pick<'a>(&'a self, given: &'a Option<String>, jmx: &'a str, micrometer: &'a str) -> &'a str {
        given.as_deref().unwrap_or(match self.preset {
            MetricsPreset::Jmx => jmx,
            MetricsPreset::Micrometer => micrometer,
        })
    }

    pub fn jvm_series(&self) -> &str {
        self.pick(
            &self.jvm_series,
            "jvm_memory_used_bytes",
            "jvm_memory_used_bytes",
        )
    }

    pub fn request_counter(&self) -> &str {
        self.pick(
            &self.request_counter,
            "tomcat_requestcount_total",
            "http_server_requests_seconds_count",
        )
    }

    pub fn engine_prefix(&self) -> &str {
        self.pick(&self.engine_prefix, "camunda_", "executor_")
    }

    /// `(name, value)` the engine series must carry, if any.
    pub fn engine_label(&self) -> Option<(&str, &str)> {
        let label = match (&self.engine_label, self.preset) {
            (Some(label), _) => label.as_str(),
            (None, MetricsPreset::Jmx) => return None,
            (None, MetricsPreset::Micrometer) => "name=camundaTaskExecutor",
        };
        label.split_once('=')
    }

    pub fn path(&self) -> &str {
        self.pick(&self.path, "/metrics", "/actuator/prometheus")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prometheus {
    pub url: String,
    /// The scrape job of the Camunda replicas.
    pub job: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub name: String,
    /// Direct HTTP access to this replica (bypassing the ingress).
    pub http_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
    /// The replica's `instance` label in Prometheus when it differs from the host:port of
    /// `metrics_url` (e.g. pod IP:9404 on Kubernetes, where metrics_url is a port-forward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_instance: Option<String>,
    /// How a disruptive check may stop this replica. Absent: it cannot be stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopHandle>,
}

impl Replica {
    /// The `instance` label Prometheus gives this replica's target.
    pub fn instance(&self) -> Option<String> {
        if let Some(instance) = &self.prometheus_instance {
            return Some(instance.clone());
        }
        let url = Url::parse(self.metrics_url.as_deref()?).ok()?;
        Some(format!(
            "{}:{}",
            url.host_str()?,
            url.port_or_known_default()?
        ))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StopHandle {
    /// A local process: SIGKILL to this pid.
    Signal { pid: u32 },
    /// Local processes that live and die together, like a pod's containers (a replica and a
    /// sidecar): SIGKILL to each pid, the replica's first.
    SignalAll { pids: Vec<u32> },
    /// A pod: deleted through kubectl (with the target's kubernetes context).
    DeletePod { namespace: String, name: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kubernetes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    pub namespace: String,
    pub deployment: String,
    pub hpa: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disruptive {
    /// Checks that stop replicas, write to the engine database or load the stack run only
    /// when true.
    #[serde(default)]
    pub allowed: bool,
}

/// Upper bounds of the waits, in seconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounds {
    /// Prometheus to list every replica up / answer a query (a scrape interval or two).
    pub prometheus_s: u64,
    /// A counter to grow, a session to appear or disappear, a replica to stop.
    pub settle_s: u64,
    /// An async job to be run by the job executor.
    pub job_s: u64,
    /// The HPA to scale out under load.
    pub scale_out_s: u64,
    /// The HPA to scale back in after the load.
    pub scale_in_s: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            prometheus_s: 60,
            settle_s: 20,
            job_s: 60,
            scale_out_s: 300,
            scale_in_s: 600,
        }
    }
}

impl Target {
    /// Reads and validates a target file. Relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Target> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the target file {}", path.display()))?;
        let mut target: Target = toml::from_str(&text)
            .with_context(|| format!("parsing the target file {}", path.display()))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        target.resolve_paths(base);
        target
            .validate()
            .with_context(|| format!("invalid target file {}", path.display()))?;
        Ok(target)
    }

    /// The TOML form (what `cargo xtask e2e` writes).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("serialising the target description")
    }

    fn resolve_paths(&mut self, base: &Path) {
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(file) = &mut self.ingress.ca_file {
            absolute(file);
        }
        if let Some(file) = &mut self.credentials.password_file {
            absolute(file);
        }
        if let Some(file) = self.kubernetes.as_mut().and_then(|k| k.kubeconfig.as_mut()) {
            absolute(file);
        }
    }

    /// Checks what serde cannot; every error names the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(label) = &self.metrics.engine_label {
            if label
                .split_once('=')
                .is_none_or(|(name, _)| name.is_empty())
            {
                bail!("metrics.engine_label: expected `name=value`, got `{label}`");
            }
        }
        let creds = &self.credentials;
        if creds.password.is_some() {
            bail!("credentials.password: an inline password is not allowed; use password_file or password_env");
        }
        match (&creds.password_file, &creds.password_env) {
            (None, None) if creds.in_memory.is_some() => {}
            (None, None) => bail!("credentials: one of password_file and password_env is required"),
            (Some(_), Some(_)) => {
                bail!("credentials: password_file and password_env are exclusive; give one")
            }
            _ => {}
        }
        if creds.username.is_empty() {
            bail!("credentials.username: must not be empty");
        }
        let base = Url::parse(&self.ingress.base_url).with_context(|| {
            format!("ingress.base_url: `{}` is not a URL", self.ingress.base_url)
        })?;
        if base.scheme() != "https" {
            bail!(
                "ingress.base_url: must be https, got `{}`",
                self.ingress.base_url
            );
        }
        let Some(base_host) = base.host_str() else {
            bail!("ingress.base_url: `{}` has no host", self.ingress.base_url);
        };
        if let Some(host) = &self.ingress.host {
            if !host.eq_ignore_ascii_case(base_host) {
                bail!("ingress.host: `{host}` differs from the host of ingress.base_url (`{base_host}`)");
            }
        }
        if let (Some(connect_to), Some(port)) = (self.ingress.connect_to, base.port()) {
            // The URL's port wins over the resolved address's port in the client.
            if connect_to.port() != port {
                bail!(
                    "ingress.connect_to: port {} differs from the port of ingress.base_url ({port})",
                    connect_to.port()
                );
            }
        }
        if let Some(http_url) = &self.ingress.http_url {
            let url = Url::parse(http_url)
                .with_context(|| format!("ingress.http_url: `{http_url}` is not a URL"))?;
            if url.scheme() != "http" {
                bail!("ingress.http_url: must be http, got `{http_url}`");
            }
            if !url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(base_host))
            {
                bail!("ingress.http_url: its host must be the ingress host `{base_host}`");
            }
        }
        for (field, value) in [
            ("ingress.webapp_path", &self.ingress.webapp_path),
            ("ingress.rest_path", &self.ingress.rest_path),
        ] {
            if !value.starts_with('/') || value.ends_with('/') {
                bail!("{field}: `{value}` must start with `/` and not end with one");
            }
        }
        if self
            .sessions
            .affinity_cookie
            .eq_ignore_ascii_case("JSESSIONID")
        {
            bail!("sessions.affinity_cookie: must not be JSESSIONID (the application's session cookie)");
        }
        if let Some(prometheus) = &self.prometheus {
            Url::parse(&prometheus.url)
                .with_context(|| format!("prometheus.url: `{}` is not a URL", prometheus.url))?;
        }
        let catalog = crate::catalog();
        for (i, allowed) in self.allowed_skips.iter().enumerate() {
            if !catalog.iter().any(|check| allowed.covers(check.id)) {
                bail!(
                    "allowed_skips[{i}].check: `{}` names no check (a check id as listed by `camunda-conformance checks`, or `suite.*`)",
                    allowed.check
                );
            }
            if allowed.reason.trim().is_empty() {
                bail!(
                    "allowed_skips[{i}].reason: say why skipping `{}` is fine for this target",
                    allowed.check
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, replica) in self.replicas.iter().enumerate() {
            if !names.insert(replica.name.as_str()) {
                bail!("replicas[{i}].name: `{}` is used twice", replica.name);
            }
            Url::parse(&replica.http_url).with_context(|| {
                format!(
                    "replicas[{i}].http_url: `{}` is not a URL",
                    replica.http_url
                )
            })?;
            if let Some(metrics) = &replica.metrics_url {
                Url::parse(metrics).with_context(|| {
                    format!("replicas[{i}].metrics_url: `{metrics}` is not a URL")
                })?;
            }
            if matches!(replica.stop, Some(StopHandle::DeletePod { .. }))
                && self.kubernetes.is_none()
            {
                bail!("replicas[{i}].stop: delete_pod needs the [kubernetes] section");
            }
        }
        Ok(())
    }

    /// The ingress host name (validate() guarantees base_url has one).
    pub fn host(&self) -> String {
        self.ingress
            .host
            .clone()
            .or_else(|| {
                Url::parse(&self.ingress.base_url)
                    .ok()?
                    .host_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// `base_url` + path (path starts with `/`).
    pub fn ingress_url(&self, path: &str) -> String {
        format!("{}{path}", self.ingress.base_url.trim_end_matches('/'))
    }

    pub(crate) fn rest_url(&self, path: &str) -> String {
        self.ingress_url(&format!("{}{path}", self.ingress.rest_path))
    }

    pub(crate) fn webapp_url(&self, path: &str) -> String {
        self.ingress_url(&format!("{}{path}", self.ingress.webapp_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GOOD: &str = r#"
name = "local-sticky"
backend = "local"
[ingress]
base_url = "https://camunda.test:18443"
host = "camunda.test"
connect_to = "127.0.0.1:18443"
http_url = "http://camunda.test:18080"
ca_file = "ca.pem"
[sessions]
mode = "sticky"
[credentials]
username = "conformance"
password_file = "password"
[prometheus]
url = "http://127.0.0.1:19090"
job = "camunda"
[[replicas]]
name = "camunda-0"
http_url = "http://127.0.0.1:28080"
metrics_url = "http://127.0.0.1:29404/metrics"
stop = { signal = { pid = 1234 } }
[[replicas]]
name = "camunda-1"
http_url = "http://127.0.0.1:28081"
metrics_url = "http://127.0.0.1:29405/metrics"
[disruptive]
allowed = true
"#;

    fn load(text: &str) -> (tempfile::TempDir, Result<Target>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.toml");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let target = Target::load(&path);
        (dir, target)
    }

    fn error_of(text: &str) -> String {
        let (_dir, result) = load(text);
        format!("{:#}", result.expect_err("the target should be rejected"))
    }

    #[test]
    fn loads_the_sketch_with_defaults_and_resolved_paths() {
        let (dir, target) = load(GOOD);
        let target = target.unwrap();
        assert_eq!(target.ingress.webapp_path, "/camunda");
        assert_eq!(target.ingress.rest_path, "/engine-rest");
        assert_eq!(target.sessions.affinity_cookie, "INGRESSCOOKIE");
        assert_eq!(target.ingress.ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(
            target.replicas[0].stop,
            Some(StopHandle::Signal { pid: 1234 })
        );
        assert_eq!(
            target.replicas[1].instance().as_deref(),
            Some("127.0.0.1:29405")
        );
        assert_eq!(target.bounds.job_s, 60);
        assert_eq!(
            target.rest_url("/task"),
            "https://camunda.test:18443/engine-rest/task"
        );
        assert_eq!(target.host(), "camunda.test");
        // What xtask writes reads back.
        let again: Target = toml::from_str(&target.to_toml().unwrap()).unwrap();
        assert_eq!(again.replicas.len(), 2);
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc: String = include_str!("target.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//!"))
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .skip_while(|line| *line != "```toml")
            .skip(1)
            .take_while(|line| *line != "```")
            .collect::<Vec<_>>()
            .join("\n");
        let target: Target = toml::from_str(&doc).unwrap();
        target.validate().unwrap();
        assert_eq!(
            target.replicas[0].instance().as_deref(),
            Some("10.244.0.7:9404")
        );
        assert_eq!(target.kubernetes.unwrap().hpa, "camunda");
    }

    #[test]
    fn inline_password_is_refused_without_echoing_it() {
        let text = GOOD.replace("password_file = \"password\"", "password = \"hunter2\"");
        let err = error_of(&text);
        assert!(err.contains("credentials.password"), "{err}");
        assert!(err.contains("target.toml"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let err = error_of(&GOOD.replace("base_url = \"https://", "base_url = \"http://"));
        assert!(
            err.contains("target.toml") && err.contains("ingress.base_url"),
            "{err}"
        );

        let err = error_of(&GOOD.replace(
            "connect_to = \"127.0.0.1:18443\"",
            "connect_to = \"127.0.0.1:443\"",
        ));
        assert!(err.contains("ingress.connect_to"), "{err}");

        let err = error_of(&GOOD.replace(
            "mode = \"sticky\"",
            "mode = \"sticky\"\naffinity_cookie = \"JSESSIONID\"",
        ));
        assert!(err.contains("sessions.affinity_cookie"), "{err}");

        let err = error_of(&GOOD.replace("job = \"camunda\"", "job = \"camunda\"\nscrape = 1"));
        assert!(err.contains("scrape"), "{err}");

        let err = error_of(&GOOD.replace("backend = \"local\"", "backend = \"docker\""));
        assert!(err.contains("backend"), "{err}");

        let err = error_of(&format!(
            "{GOOD}\n[metrics]\nengine_label = \"camundaTaskExecutor\"\n"
        ));
        assert!(err.contains("metrics.engine_label"), "{err}");
        let err = error_of(&format!("{GOOD}\n[metrics]\npreset = \"dropwizard\"\n"));
        assert!(err.contains("preset"), "{err}");

        let err = error_of(&GOOD.replace(
            "password_file = \"password\"",
            "password_file = \"p\"\npassword_env = \"P\"",
        ));
        assert!(err.contains("exclusive"), "{err}");

        let err = error_of(&GOOD.replace("name = \"camunda-1\"", "name = \"camunda-0\""));
        assert!(err.contains("replicas[1].name"), "{err}");

        let err = error_of(&GOOD.replace(
            "stop = { signal = { pid = 1234 } }",
            "stop = { delete_pod = { namespace = \"n\", name = \"p\" } }",
        ));
        assert!(err.contains("replicas[0].stop"), "{err}");
    }

    #[test]
    fn an_in_memory_password_is_used_but_never_written_or_shown() {
        let (_dir, target) = load(GOOD);
        let mut target = target.unwrap();
        target.credentials = Credentials::in_memory("conformance", "pw-in-memory".into());
        target.validate().unwrap();
        assert_eq!(
            target.credentials.password().unwrap().expose(),
            "pw-in-memory"
        );
        let written = target.to_toml().unwrap();
        let shown = format!("{target:?}");
        for text in [&written, &shown] {
            assert!(!text.contains("pw-in-memory"), "{text}");
        }
    }

    #[test]
    fn password_file_is_read_without_its_newline() {
        let (dir, target) = load(GOOD);
        let target = target.unwrap();
        assert!(
            target.credentials.password().is_err(),
            "the file does not exist yet"
        );
        std::fs::write(dir.path().join("password"), "pw-123\n").unwrap();
        let secret = target.credentials.password().unwrap();
        assert_eq!(secret.expose(), "pw-123");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }
}
