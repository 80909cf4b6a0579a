//! Every place a stack can run, behind one interface ([`Backend`]), and the settings of a run.
//! `crate::e2e` picks the backend, opens it and drives it through the same phases whatever it
//! is.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ValueEnum;

use crate::artifacts::Timings;
use crate::flavour::Flavour;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// `kind` when a Docker engine answers, else `local`.
    Auto,
    Kind,
    Local,
    Existing,
    /// A real control plane with kwok's simulated pods (built from the Go module proxy, cached).
    Kwok,
    /// A real one-node Kubernetes on this host: the control plane plus kubelet and kube-proxy,
    /// Debian's containerd, images built here, Traefik as the front door (root, Linux).
    Node,
}

impl BackendChoice {
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Kind => "kind",
            BackendChoice::Local => "local",
            BackendChoice::Existing => "existing",
            BackendChoice::Kwok => "kwok",
            BackendChoice::Node => "node",
        }
    }
}

/// What stands in front of the Camunda Service on the node backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Route {
    /// The overlay's Ingress as written (its ingress-nginx annotations), served by Traefik's
    /// ingress-nginx provider.
    Ingress,
    /// A Gateway API Gateway with a TLS listener and an HTTPRoute instead of the Ingress,
    /// served by the same Traefik.
    Gateway,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMode {
    /// Cookie affinity at the ingress, sessions in each replica's memory.
    Sticky,
    /// Spring Session through twemproxy in front of Redis.
    SharedRedis,
    /// Sessions through twemproxy in front of memcached.
    SharedMemcached,
}

/// One `cargo xtask e2e` run as the command line asked for it (see `cli.rs` for each flag).
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub backend: BackendChoice,
    pub sessions: SessionMode,
    pub flavour: Flavour,
    pub replicas: u16,
    pub keep: bool,
    pub reuse: bool,
    pub suites: Vec<String>,
    pub artifacts: Option<PathBuf>,
    pub faults: bool,
    pub plan: bool,
    pub down: bool,
    pub route: Route,
    pub overlay: Option<PathBuf>,
    pub context: Option<String>,
    pub ca: Option<PathBuf>,
    pub no_deploy: bool,
    pub http_port: u16,
    pub https_port: u16,
}

impl RunSettings {
    /// The options that choose what is deployed, as a user would type them.
    pub fn stack(&self) -> String {
        let name = |value: Option<clap::builder::PossibleValue>| {
            value.map(|v| v.get_name().to_string()).unwrap_or_default()
        };
        let mut stack = format!(
            "--sessions {} --flavour {} --route {}",
            name(self.sessions.to_possible_value()),
            self.flavour.name(),
            name(self.route.to_possible_value()),
        );
        if let Some(overlay) = &self.overlay {
            stack += &format!(" --overlay {}", overlay.display());
        }
        stack
    }
}

/// A place a stack runs, as `crate::e2e` drives it. `down` is called whatever happened before it.
pub trait Backend {
    /// Brings the stack up (or connects to a kept or existing one) and describes it for the
    /// suites.
    fn up(&mut self, timings: &mut Timings) -> Result<()>;
    /// The target description `up` wrote (`camunda-conformance run --target`).
    fn target(&self) -> Option<&Path>;
    /// Every selected suite against the target; `Ok(false)` when a check failed.
    fn suites(&mut self, timings: &mut Timings) -> Result<bool>;
    /// The backend's fault catalogue, one fault at a time: each must fail the checks it
    /// names, by their symptom, and the stack must heal.
    fn faults(&mut self, timings: &mut Timings) -> Result<bool>;
    /// After a failure: what a person needs to debug, into the artifacts folder.
    fn diagnostics(&mut self);
    /// Stops the stack, or keeps it (`--keep`) for `--reuse` and `--backend existing`.
    fn down(&mut self, timings: &mut Timings) -> Result<()>;
}
