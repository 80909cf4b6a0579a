//! The `local` backend: the full stack as real processes on loopback — PostgreSQL, Redis behind
//! twemproxy (shared sessions), Prometheus, nginx as the TLS ingress and N Camunda replicas —
//! then every live suite through `camunda-conformance run`.

pub(crate) mod app;
mod faults;
pub(crate) mod ports;
pub(crate) mod prereq;
mod render;
mod stack;
pub(crate) mod supervisor;
pub(crate) mod tls;
pub(crate) mod wait;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::artifacts::{workspace_root, Artifacts, Timings};
use crate::backend::{Backend, Route, RunSettings, SessionMode};
use crate::conformance;
use stack::{Stack, StackState};

/// The stack as processes on loopback, kept (`--keep`) in a state file that `--reuse` adopts
/// and `--down` stops.
pub struct LocalBackend {
    settings: RunSettings,
    artifacts: PathBuf,
    kept_file: PathBuf,
    stack: Option<Stack>,
    cli: Option<PathBuf>,
    target: Option<PathBuf>,
}

impl LocalBackend {
    /// Refuses what cannot run before anything is installed, built or started.
    pub fn open(settings: &RunSettings, artifacts: &Artifacts) -> Result<Self> {
        settings.flavour.ensure_available()?;
        if settings.sessions == SessionMode::SharedMemcached {
            bail!(
                "--sessions shared-memcached is not available: no maintained session manager serves \
                 memcached on Tomcat 10.1 (memcached-session-manager stops at Tomcat 9, Spring Session \
                 has no memcached store; see fixtures/camunda-app SessionStore.java). \
                 Use --sessions shared-redis (Spring Session through twemproxy) or --sessions sticky."
            );
        }
        if settings.route != Route::Ingress {
            bail!("--route is for --backend node (the local stack's front door is nginx)");
        }
        Ok(Self {
            settings: settings.clone(),
            artifacts: artifacts.dir.clone(),
            kept_file: kept_state_file(&workspace_root()),
            stack: None,
            cli: None,
            target: None,
        })
    }

    fn sticky(&self) -> bool {
        self.settings.sessions == SessionMode::Sticky
    }

    /// A fresh stack; a kept one that still runs is refused, a dead one's record dropped.
    fn start(&mut self, timings: &mut Timings) -> Result<Stack> {
        if let Some(state) = load_kept(&self.kept_file)? {
            if state
                .groups()
                .iter()
                .any(|(_, pid)| supervisor::group_alive(*pid))
            {
                bail!(
                    "a kept local stack is still running ({}): test it with `cargo xtask e2e --backend local --reuse` \
                     or stop it with `cargo xtask e2e --backend local --down`",
                    self.kept_file.display()
                );
            }
            std::fs::remove_file(&self.kept_file).ok();
        }
        let programs = timings.measure("prerequisites", prereq::ensure)?;
        self.cli = Some(timings.measure("build camunda-conformance", conformance::build_cli)?);
        let mut build_supervisor = supervisor::Supervisor::new(self.artifacts.join("logs"), true)?;
        let app = timings.measure("camunda app (build cache)", || {
            app::ensure_built(
                &workspace_root(),
                &programs.mvn,
                self.settings.flavour,
                &mut build_supervisor,
            )
        })?;
        drop(build_supervisor);
        Stack::start(
            app,
            &self.artifacts,
            self.settings.replicas,
            self.sticky(),
            self.settings.keep,
            programs,
            timings,
        )
    }

    /// `--reuse`: the stack a `--keep` run left, checked whole.
    fn adopt(&mut self, timings: &mut Timings) -> Result<Stack> {
        let Some(state) = load_kept(&self.kept_file)? else {
            bail!(
                "--reuse: no kept local stack ({} does not exist); start one with `cargo xtask e2e --backend local --keep`",
                self.kept_file.display()
            );
        };
        if state.sticky != self.sticky() {
            bail!(
                "--reuse: the kept stack runs sessions {}, not {:?}; pass the same --sessions or `--down` it",
                if state.sticky { "sticky" } else { "shared-redis" },
                self.settings.sessions
            );
        }
        let dead: Vec<String> = state
            .groups()
            .into_iter()
            .filter(|(name, pid)| !name.starts_with("camunda-") && !supervisor::group_alive(*pid))
            .map(|(name, pid)| format!("{name} (pid {pid})"))
            .collect();
        if !dead.is_empty() {
            bail!(
                "--reuse: the kept stack is broken, gone: {}; stop it with `cargo xtask e2e --backend local --down`",
                dead.join(", ")
            );
        }
        let programs = timings.measure("prerequisites", prereq::ensure)?;
        self.cli = Some(timings.measure("build camunda-conformance", conformance::build_cli)?);
        let mut stack = Stack::adopt(state, programs)?;
        timings.measure("kept stack ready", || {
            stack.heal(true)?;
            stack.wait_kept_replicas()
        })?;
        Ok(stack)
    }

    fn stack(&mut self) -> Result<(&mut Stack, &Path)> {
        match (self.stack.as_mut(), self.cli.as_deref()) {
            (Some(stack), Some(cli)) => Ok((stack, cli)),
            _ => bail!("the local stack is not up"),
        }
    }
}

impl Backend for LocalBackend {
    fn up(&mut self, timings: &mut Timings) -> Result<()> {
        let stack = if self.settings.reuse {
            self.adopt(timings)?
        } else {
            self.start(timings)?
        };
        let stack = self.stack.insert(stack);
        let target_file = self.artifacts.join("target.toml");
        self.target = Some(
            stack
                .state
                .write_target(&target_file, &stack.state.replicas)?,
        );
        Ok(())
    }

    fn target(&self) -> Option<&Path> {
        self.target.as_deref()
    }

    fn suites(&mut self, timings: &mut Timings) -> Result<bool> {
        let target = self
            .target
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no target description was written"))?;
        let (suites, artifacts) = (self.settings.suites.clone(), self.artifacts.clone());
        let (stack, cli) = self.stack()?;
        let cli = cli.to_path_buf();
        timings.measure("suites", || {
            run_suites_restarting(stack, &cli, &target, &suites, &artifacts)
        })
    }

    fn faults(&mut self, timings: &mut Timings) -> Result<bool> {
        let artifacts = Artifacts {
            dir: self.artifacts.clone(),
        };
        let (stack, cli) = self.stack()?;
        let cli = cli.to_path_buf();
        timings.measure("faults", || faults::run(stack, &cli, &artifacts))
    }

    fn diagnostics(&mut self) {
        // Every process of the stack logs into the artifacts folder as it runs.
        println!("stack logs: {}", self.artifacts.join("logs").display());
    }

    fn down(&mut self, timings: &mut Timings) -> Result<()> {
        let Some(stack) = self.stack.take() else {
            return Ok(());
        };
        if self.settings.keep || self.settings.reuse {
            let state = keep_whole(stack, &self.kept_file)?;
            if !self.settings.reuse {
                announce_kept(&state, &self.kept_file);
            }
        } else {
            println!("tearing down the local stack");
            timings.measure("teardown", || stack.teardown())?;
        }
        Ok(())
    }
}

/// The suites, while a replica a check stopped is restarted at once in the background, as a
/// Deployment would: it is back soon after the report, off the report's critical path.
fn run_suites_restarting(
    stack: &mut Stack,
    cli: &Path,
    target: &Path,
    suites: &[String],
    report_dir: &Path,
) -> Result<bool> {
    let mut restart_failed = None;
    let passed = conformance::run_suites_ticking(cli, target, suites, report_dir, || {
        if restart_failed.is_none() {
            restart_failed = stack.heal(false).err();
        }
    })?;
    if let Some(err) = restart_failed {
        return Err(err.context("restarting a replica a check stopped"));
    }
    Ok(passed)
}

/// Keeps the stack for `--reuse`, whole: a replica a disruptive check stopped was restarted
/// during the suites, and is waited for here, after the report, so that the next `--reuse`
/// does not wait for it before its own.
fn keep_whole(mut stack: Stack, kept_file: &Path) -> Result<StackState> {
    stack.heal(false)?;
    let started = std::time::Instant::now();
    stack.wait_kept_replicas()?;
    let waited = started.elapsed();
    if waited > Duration::from_millis(500) {
        println!(
            "after the report: waited {:.1} s for the restarted replica, so the kept stack is whole",
            waited.as_secs_f64()
        );
    }
    let state = stack.keep();
    save_kept(kept_file, &state)?;
    Ok(state)
}

/// For the drivers that start stacks of their own (the bench, the interrupt test): a kept
/// stack must be stopped first.
pub fn refuse_if_kept(what: &str) -> Result<()> {
    let kept_file = kept_state_file(&workspace_root());
    if kept_file.exists() {
        bail!(
            "a kept local stack exists ({}): stop it with `cargo xtask e2e --backend local --down` before {what}",
            kept_file.display()
        );
    }
    Ok(())
}

/// The secrets of the kept stack (for the canary): passwords and the ingress's TLS key.
pub fn kept_secrets() -> Result<Vec<crate::canary::Secret>> {
    use crate::canary::Secret;
    let kept_file = kept_state_file(&workspace_root());
    let state = load_kept(&kept_file)?
        .with_context(|| format!("no kept local stack ({})", kept_file.display()))?;
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(vec![
        Secret::password(
            "the admin password",
            &state.admin_user,
            &read(state.admin_password_file())?,
        ),
        Secret::password(
            "the database password",
            stack::DB_USER,
            &read(state.db_password_file())?,
        ),
        Secret::pem_key("the ingress's TLS key", &read(state.tls_key())?),
    ])
}

/// `--down`: stops a kept stack and removes its temp dir.
pub fn down_kept() -> Result<bool> {
    let kept_file = &kept_state_file(&workspace_root());
    let Some(state) = load_kept(kept_file)? else {
        println!(
            "no kept local stack ({} does not exist)",
            kept_file.display()
        );
        return Ok(true);
    };
    let groups = state.groups();
    let killed = supervisor::stop_groups(&groups, Duration::from_secs(10));
    std::fs::remove_dir_all(&state.temp_dir)
        .or_else(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(err)
            }
        })
        .with_context(|| format!("removing {}", state.temp_dir.display()))?;
    std::fs::remove_file(kept_file).with_context(|| format!("removing {}", kept_file.display()))?;
    println!(
        "stopped the kept local stack ({} process groups, {killed} needed SIGKILL) and removed {}",
        groups.len(),
        state.temp_dir.display()
    );
    Ok(true)
}

pub(crate) fn kept_state_file(root: &Path) -> PathBuf {
    root.join("target/e2e/local-kept.json")
}

fn load_kept(file: &Path) -> Result<Option<StackState>> {
    match std::fs::read_to_string(file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("reading the kept stack's state {}", file.display()))
            .map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", file.display())),
    }
}

fn save_kept(file: &Path, state: &StackState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).context("serialising the kept stack's state")?;
    stack::write_file(file, &text, 0o644)
}

fn announce_kept(state: &StackState, kept_file: &Path) {
    println!(
        "\nkept the local stack (state: {}):\n  \
         ingress     https://{host}:{https}{webapp}/  (curl --cacert {ca} --resolve {host}:{https}:{ingress_ip} ...)\n  \
         http        http://{host}:{http}/ (308 to https)\n  \
         prometheus  http://127.0.0.1:{prom}/\n  \
         login       user {user}, password in {pw}\n  \
         re-run      cargo xtask e2e --backend local --sessions {sessions} --reuse\n  \
         stop        cargo xtask e2e --backend local --down",
        kept_file.display(),
        host = stack::HOST,
        webapp = state.flavour.webapp_path(),
        ingress_ip = render::INGRESS_IP,
        https = state.nginx.https_port,
        http = state.nginx.http_port,
        ca = state.ca_file().display(),
        prom = state.prometheus.port,
        user = state.admin_user,
        pw = state.admin_password_file().display(),
        sessions = if state.sticky { "sticky" } else { "shared-redis" },
    );
    for replica in &state.replicas {
        println!(
            "  {:<11} http://127.0.0.1:{}/  metrics http://127.0.0.1:{}/metrics  pid {}",
            replica.name, replica.http_port, replica.metrics_port, replica.pid
        );
    }
}
