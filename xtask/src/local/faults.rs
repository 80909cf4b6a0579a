//! `--faults`: break the running stack on purpose, one fault at a time, and prove that the check
//! meant to catch it fails (then restore the stack).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::stack::{http_client, write_target, ReplicaFlavour, ReplicaState, Stack};
use super::tls::Pki;
use super::wait::{self, Probe};
use crate::artifacts::Artifacts;

/// One fault and the check that must fail because of it.
struct Fault {
    name: &'static str,
    suite: &'static str,
    check: &'static str,
}

const AUTH_OFF: Fault = Fault {
    name: "basic auth off (ingress -> replica with CAMUNDA_BPM_RUN_AUTH_ENABLED=false)",
    suite: "auth",
    check: "auth.no-credentials",
};
const NO_AGENT: Fault = Fault {
    name: "one replica without the jmx agent",
    suite: "metrics",
    check: "metrics.replica-endpoints",
};
const NO_AFFINITY: Fault = Fault {
    name: "replicas with neither affinity nor a shared store (nginx round robin)",
    suite: "sessions",
    check: "sessions.login",
};
const NOT_SCRAPED: Fault = Fault {
    name: "Prometheus not scraping one replica",
    suite: "metrics",
    check: "metrics.prometheus-targets",
};
const OTHER_CA: Fault = Fault {
    name: "ingress certificate from another CA",
    suite: "tls",
    check: "tls.certificate",
};

/// What `camunda-conformance run --format json` reports (only the fields used here).
#[derive(Deserialize)]
struct Report {
    checks: Vec<ReportCheck>,
}

#[derive(Deserialize)]
struct ReportCheck {
    id: String,
    status: String,
    message: String,
}

struct Observed {
    fault: &'static str,
    check: &'static str,
    status: String,
    message: String,
}

/// The status of a fault that does not apply to this stack.
const NOT_RUN: &str = "n/a";

impl Observed {
    /// A fault that ran and whose check did not fail went unnoticed.
    fn missed(&self) -> bool {
        self.status != "fail" && self.status != NOT_RUN
    }
}

/// Runs every fault; `Ok(false)` when one was not detected.
pub fn run(stack: &mut Stack, cli: &Path, artifacts: &Artifacts) -> Result<bool> {
    let catalog = camunda_conformance_suites::catalog();
    for fault in [&AUTH_OFF, &NO_AGENT, &NO_AFFINITY, &NOT_SCRAPED, &OTHER_CA] {
        if !catalog.iter().any(|c| c.id == fault.check) {
            bail!(
                "fault `{}` names check {} which the suites do not have",
                fault.name,
                fault.check
            );
        }
    }
    println!("\nfaults: breaking the stack on purpose, one fault at a time");
    stack.heal(true)?;
    let dir = artifacts.dir.join("faults");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // Both odd replicas start together: one JVM start-up instead of two.
    let noauth = extra_replica(stack, "camunda-noauth")?;
    let noagent = extra_replica(stack, "camunda-noagent")?;
    let no_auth = ReplicaFlavour {
        jmx_agent: true,
        basic_auth: false,
    };
    let no_agent = ReplicaFlavour {
        jmx_agent: false,
        basic_auth: true,
    };
    let noauth_index = stack.spawn_replica(&noauth, no_auth)?;
    let noagent_index = stack.spawn_replica(&noagent, no_agent)?;
    let spawned = [
        (
            with_pid(&noauth, stack, noauth_index),
            Some(noauth_index),
            no_auth,
        ),
        (
            with_pid(&noagent, stack, noagent_index),
            Some(noagent_index),
            no_agent,
        ),
    ];
    let started = stack.wait_replicas(&spawned);
    let outcome = started.and_then(|()| run_all(stack, cli, &dir, &spawned[0].0, &spawned[1].0));
    stack.supervisor.stop(noauth_index);
    stack.supervisor.stop(noagent_index);
    let observed = outcome?;

    let width = observed.iter().map(|o| o.fault.len()).max().unwrap_or(5);
    println!(
        "\n{:<width$} {:<28} {:<6} message (full text in {})",
        "fault",
        "expected failing check",
        "seen",
        dir.display()
    );
    for o in &observed {
        let mut message: String = o.message.chars().take(140).collect();
        if message.len() < o.message.len() {
            message.push('…');
        }
        println!(
            "{:<width$} {:<28} {:<6} {}",
            o.fault,
            o.check,
            o.status,
            message.replace('\n', " ")
        );
    }
    let missed: Vec<&str> = observed
        .iter()
        .filter(|o| o.missed())
        .map(|o| o.fault)
        .collect();
    if missed.is_empty() {
        println!("every fault that applies to this stack was detected by its check");
        Ok(true)
    } else {
        println!("NOT DETECTED: {}", missed.join("; "));
        Ok(false)
    }
}

fn run_all(
    stack: &mut Stack,
    cli: &Path,
    dir: &Path,
    noauth: &ReplicaState,
    noagent: &ReplicaState,
) -> Result<Vec<Observed>> {
    let state = stack.state.clone();
    // Prometheus is verified reloaded before a check runs: a few scrape intervals are enough
    // for the checks that wait for it.
    let fault_target = |replicas: &[ReplicaState], file: &str| {
        let mut target = state.target(replicas);
        target.bounds.prometheus_s = 10;
        write_target(&dir.join(file), &target)
    };
    let normal_target = fault_target(&state.replicas, "target.toml")?;
    let mut observed = Vec::new();

    // (1) The ingress sends everything to a replica without basic auth.
    let conf = state.nginx_conf(
        vec![noauth.http_port],
        state.sticky,
        state.tls_cert(),
        state.tls_key(),
    );
    stack.reload_nginx(&conf)?;
    let seen = probe(cli, &normal_target, &AUTH_OFF, dir);
    stack.reload_nginx(&state.default_nginx_conf())?;
    observed.push(seen?);

    // (2) The target lists a replica whose JVM runs without the agent.
    let mut replicas = state.replicas.clone();
    replicas.push(noagent.clone());
    let target = fault_target(&replicas, "target-noagent.toml")?;
    observed.push(probe(cli, &target, &NO_AGENT, dir)?);

    // (3) Round robin without a shared store: only meaningful on the sticky stack.
    if state.sticky {
        let conf = state.nginx_conf(
            state.replicas.iter().map(|r| r.http_port).collect(),
            false,
            state.tls_cert(),
            state.tls_key(),
        );
        stack.reload_nginx(&conf)?;
        let seen = probe(cli, &normal_target, &NO_AFFINITY, dir);
        stack.reload_nginx(&state.default_nginx_conf())?;
        observed.push(seen?);
    } else {
        observed.push(Observed {
            fault: NO_AFFINITY.name,
            check: NO_AFFINITY.check,
            status: NOT_RUN.into(),
            message: "needs --sessions sticky: a shared-session stack has the shared store".into(),
        });
    }

    // (4) Prometheus stops scraping the last replica.
    let mut targets = state.scrape_targets();
    targets.pop();
    stack.reload_prometheus(&targets)?;
    wait_prometheus_targets(stack, targets.len(), false)?;
    let seen = probe(cli, &normal_target, &NOT_SCRAPED, dir);
    stack.reload_prometheus(&state.scrape_targets())?;
    wait_prometheus_targets(stack, state.replicas.len(), true)?;
    observed.push(seen?);

    // (5) The ingress serves a certificate issued by a CA the target does not trust.
    let other = Pki::generate(super::stack::HOST)?;
    let (cert, key) = (
        state.secrets_dir().join("other-ca-tls.crt"),
        state.secrets_dir().join("other-ca-tls.key"),
    );
    stack.install_certificate(&other, &cert, &key)?;
    let conf = state.nginx_conf(
        state.replicas.iter().map(|r| r.http_port).collect(),
        state.sticky,
        cert,
        key,
    );
    stack.reload_nginx(&conf)?;
    let seen = probe(cli, &normal_target, &OTHER_CA, dir);
    stack.reload_nginx(&state.default_nginx_conf())?;
    observed.push(seen?);
    Ok(observed)
}

fn extra_replica(stack: &mut Stack, name: &str) -> Result<ReplicaState> {
    Ok(ReplicaState {
        name: name.to_string(),
        pid: 0,
        http_port: stack.ports.free()?,
        metrics_port: stack.ports.free()?,
    })
}

fn with_pid(replica: &ReplicaState, stack: &mut Stack, index: usize) -> ReplicaState {
    ReplicaState {
        pid: stack.supervisor.get(index).pid,
        ..replica.clone()
    }
}

/// `camunda-conformance run --suite S --format json --output F` and the status of the check.
fn probe(cli: &Path, target: &Path, fault: &Fault, dir: &Path) -> Result<Observed> {
    let output: PathBuf = dir.join(format!("{}.json", fault.check));
    println!(
        "\nfault: {} -> expecting {} to fail",
        fault.name, fault.check
    );
    let status = Command::new(cli)
        .arg("run")
        .arg("--target")
        .arg(target)
        .args(["--suite", fault.suite, "--format", "json", "--output"])
        .arg(&output)
        .status()
        .context("running camunda-conformance run")?;
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("camunda-conformance run could not run ({status})");
    }
    let text = std::fs::read_to_string(&output)
        .with_context(|| format!("reading {}", output.display()))?;
    let report: Report =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", output.display()))?;
    let check = report
        .checks
        .into_iter()
        .find(|c| c.id == fault.check)
        .with_context(|| format!("{} has no result for {}", output.display(), fault.check))?;
    Ok(Observed {
        fault: fault.name,
        check: fault.check,
        status: check.status,
        message: check.message,
    })
}

/// Waits until Prometheus's active targets of the job number `count` (and are all up, if
/// `all_up`), so a check sees the reloaded configuration, not the previous one.
fn wait_prometheus_targets(stack: &Stack, count: usize, all_up: bool) -> Result<()> {
    #[derive(Deserialize)]
    struct Targets {
        data: TargetsData,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TargetsData {
        active_targets: Vec<ActiveTarget>,
    }
    #[derive(Deserialize)]
    struct ActiveTarget {
        health: String,
    }
    let client = http_client()?;
    let url = format!(
        "http://127.0.0.1:{}/api/v1/targets?state=active",
        stack.state.prometheus.port
    );
    let log = stack.state.logs_dir().join("prometheus.log");
    wait::until(
        &format!("Prometheus to have {count} active targets"),
        Duration::from_secs(30),
        Some(&log),
        || {
            let targets = client
                .get(&url)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.json::<Targets>());
            match targets {
                Ok(t) => {
                    let active = t.data.active_targets;
                    let up = active.iter().filter(|t| t.health == "up").count();
                    if active.len() == count && (!all_up || up == count) {
                        Probe::Ready(())
                    } else {
                        Probe::Pending(format!("{} active, {up} up", active.len()))
                    }
                }
                Err(err) => Probe::Pending(err.to_string()),
            }
        },
    )
}
