//! `--faults`: the fault catalogue (`camunda_conformance_suites::faults`) injected into the
//! running local stack, one fault at a time. Each fault must fail its expected checks for the
//! expected reason; after it is undone the suites it touched must pass again (the stack heals).
//! The outcome is the fault matrix, in human, JSON and JUnit form in the artifacts folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camunda_conformance_suites::faults::{self, FaultInfo};
use camunda_conformance_suites::{Backend, SessionMode, StopHandle, Target};
use serde::Deserialize;

use super::render::{
    Balance, ExtraRoute, HttpEntry, NginxConf, RouteMatch, ScrapeTarget, DUPLICATE_JOB,
};
use super::stack::{http_client, random_token, write_file, ReplicaFlavour, ReplicaState, Stack};
use super::tls::Pki;
use super::wait::{self, Probe};
use crate::artifacts::Artifacts;
use crate::fault_matrix::{self, MatrixRow};

/// The database of the replica outside the cluster.
const OUTSIDER_DB: &str = "camunda_outsider";
/// The webapp's "who am I" and logout (below the flavour's webapp path), as the sessions suite
/// calls them.
const WHOAMI_PATH: &str = "/api/admin/auth/user/default";
const LOGOUT_PATH: &str = "/api/admin/auth/user/default/logout";
/// A fault's suites never need long: shorter bounds keep a fault that is (rightly) failing a
/// wait from waiting the whole default bound.
const FAULT_BOUNDS: camunda_conformance_suites::Bounds = camunda_conformance_suites::Bounds {
    prometheus_s: 10,
    settle_s: 8,
    job_s: 15,
    scale_out_s: 300,
    scale_in_s: 600,
};

/// The odd replicas the catalogue needs, started once for all faults.
struct Odd {
    /// Basic auth off, the login exempt from CSRF, jmx_exporter without the Tomcat and Camunda
    /// rules, no job executor.
    lax: ReplicaState,
    /// No jmx_exporter agent, no job executor.
    no_agent: ReplicaState,
    /// A database and sessions of its own: a replica outside the cluster.
    outsider: ReplicaState,
}

/// What a fault changes; everything here is undone after the probe.
#[derive(Default)]
struct Setup {
    nginx: Option<NginxConf>,
    /// Scrape targets and whether a second job scrapes them again.
    prometheus: Option<(Vec<ScrapeTarget>, bool)>,
    /// The target the probe runs against (default: the stack's own).
    target: Option<Target>,
    stop_redis: bool,
    /// Process groups stopped (SIGSTOP) for the probe.
    freeze: Vec<i32>,
    /// A user created for the probe, deleted afterwards.
    user: Option<String>,
    /// Kubelet-like health probes on these replicas' engine-rest while the suites run: the
    /// background traffic a Kubernetes pod always has.
    kubelet_probes: Vec<ReplicaState>,
}

/// How often the emulated kubelet probes each replica: busier than a real kubelet (every 10 s,
/// liveness and readiness) so that a short probe window sees it.
const KUBELET_PROBE_EVERY: Duration = Duration::from_millis(200);

/// GETs each replica's engine-rest root until `stop` is set, like a kubelet's probes.
fn kubelet_probes(
    urls: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let client = http_client()?;
    Ok(std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for url in &urls {
                // A failed probe is the replica's problem, seen by the suites anyway.
                let _ = client.get(url).send();
            }
            std::thread::sleep(KUBELET_PROBE_EVERY);
        }
    }))
}

/// Runs every fault of the catalogue that applies to this stack; `Ok(false)` when one was not
/// detected or the stack did not heal.
pub fn run(stack: &mut Stack, cli: &Path, artifacts: &Artifacts) -> Result<bool> {
    let mode = if stack.state.sticky {
        SessionMode::Sticky
    } else {
        SessionMode::Shared
    };
    let catalogue: Vec<&FaultInfo> = faults::CATALOGUE
        .iter()
        .filter(|f| f.applies_to(mode) && f.injected_on(Backend::Local))
        .collect();
    let dir = artifacts.dir.join("faults");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "\nfaults: {} misconfigurations of the catalogue apply to this stack; each must fail its checks, then the stack must heal",
        catalogue.len()
    );
    stack.heal(true)?;
    let started = Instant::now();
    let (odd, indices) = start_odd_replicas(stack, &dir)?;
    let outcome = run_catalogue(stack, cli, &dir, &odd, mode, &catalogue);
    for index in indices {
        stack.supervisor.stop(index);
    }
    let rows = outcome?;
    let ok = fault_matrix::report(&rows, &artifacts.dir, started.elapsed())?;
    Ok(ok)
}

fn run_catalogue(
    stack: &mut Stack,
    cli: &Path,
    dir: &Path,
    odd: &Odd,
    mode: SessionMode,
    catalogue: &[&FaultInfo],
) -> Result<Vec<MatrixRow>> {
    let mut rows = Vec::new();
    for fault in catalogue {
        // The previous heal check may have stopped a replica (shared-survives-stop does).
        stack.heal(true)?;
        let started = Instant::now();
        let suites = fault_matrix::suites_of(fault, mode);
        fault_matrix::announce(fault, mode);
        let setup = setup(fault.id, stack, odd)?;
        let stop_probes = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probes = kubelet_probes(
            setup
                .kubelet_probes
                .iter()
                .map(|r| {
                    format!(
                        "http://127.0.0.1:{}{}/engine",
                        r.http_port,
                        stack.state.flavour.rest_path()
                    )
                })
                .collect(),
            stop_probes.clone(),
        )?;
        let probed = apply(stack, &setup).and_then(|()| {
            let target = setup.target.clone().unwrap_or_else(|| base_target(stack));
            let file = write_target(dir, &format!("{}.toml", fault.id), &target)?;
            fault_matrix::probe(
                cli,
                &file,
                &suites,
                &dir.join(format!("{}.json", fault.id)),
                false,
                None,
            )
        });
        stop_probes.store(true, std::sync::atomic::Ordering::Relaxed);
        if probes.join().is_err() {
            println!("  the emulated kubelet probes panicked");
        }
        let undone = undo(stack, &setup);
        let touched = fault_matrix::touched(fault, mode, &probed);
        let healed = undone.and_then(|()| {
            let file = write_target(dir, "target.toml", &base_target(stack))?;
            let report = fault_matrix::probe(
                cli,
                &file,
                &suites,
                &dir.join(format!("{}-healed.json", fault.id)),
                true,
                None,
            )?;
            fault_matrix::heal_problems(&report, &touched)
        });
        rows.extend(fault_matrix::judge(fault, mode, &probed, &healed, started));
    }
    Ok(rows)
}

/// The stack's own target with the short fault bounds.
fn base_target(stack: &Stack) -> Target {
    let mut target = stack.state.target(&stack.state.replicas);
    target.bounds = FAULT_BOUNDS;
    target
}

fn with_replicas(stack: &Stack, replicas: &[ReplicaState]) -> Target {
    let mut target = base_target(stack);
    target.replicas = stack.state.target(replicas).replicas;
    target
}

fn without_stop_handles(mut target: Target) -> Target {
    for replica in &mut target.replicas {
        replica.stop = None;
    }
    target
}

/// The target lists exactly these replicas and the ingress routes to exactly them: an odd
/// replica is part of the deployment, not only of the harness's view of it.
fn behind_ingress(stack: &Stack, replicas: &[ReplicaState]) -> Setup {
    Setup {
        nginx: Some(routed_to(
            stack,
            replicas.iter().map(|r| r.http_port).collect(),
        )),
        target: Some(with_replicas(stack, replicas)),
        ..Setup::default()
    }
}

fn routed_to(stack: &Stack, ports: Vec<u16>) -> NginxConf {
    NginxConf {
        upstream_ports: ports,
        ..stack.state.default_nginx_conf()
    }
}

fn extra_route(stack: &Stack, matcher: RouteMatch, ports: Vec<u16>) -> NginxConf {
    NginxConf {
        extra_routes: vec![ExtraRoute { matcher, ports }],
        ..stack.state.default_nginx_conf()
    }
}

/// What each fault of the catalogue does to the stack.
fn setup(id: &str, stack: &mut Stack, odd: &Odd) -> Result<Setup> {
    let state = stack.state.clone();
    let first = state.replicas[0].clone();
    let plus = |extra: &ReplicaState| {
        let mut replicas = state.replicas.clone();
        replicas.push(extra.clone());
        replicas
    };
    let nginx = |conf: NginxConf| Setup {
        nginx: Some(conf),
        ..Setup::default()
    };
    let target = |target: Target| Setup {
        target: Some(target),
        ..Setup::default()
    };
    Ok(match id {
        "no-jmx-agent" => behind_ingress(stack, &plus(&odd.no_agent)),
        "jmx-rules-jvm-only" => behind_ingress(stack, &plus(&odd.lax)),
        "not-scraped" => {
            let mut scraped = state.scrape_targets();
            scraped.pop();
            Setup {
                prometheus: Some((scraped, false)),
                ..Setup::default()
            }
        }
        "duplicate-scrape" => Setup {
            prometheus: Some((state.scrape_targets(), true)),
            ..Setup::default()
        },
        "ingress-outside-target" => nginx(routed_to(stack, vec![odd.no_agent.http_port])),
        "metrics-path-through-ingress" => nginx(extra_route(
            stack,
            RouteMatch::Path("/metrics".into()),
            vec![first.metrics_port],
        )),
        "metrics-port-on-ingress" => nginx(NginxConf {
            exposed_ports: vec![first.metrics_port],
            ..state.default_nginx_conf()
        }),
        "rest-auth-off" | "login-csrf-exempt" => nginx(routed_to(stack, vec![odd.lax.http_port])),
        "rest-auth-off-for-delete" => nginx(extra_route(
            stack,
            RouteMatch::Method("DELETE"),
            vec![odd.lax.http_port],
        )),
        "suite-user-missing" => {
            let mut edited = base_target(stack);
            edited.credentials.username = format!("conformanceNobody{}", random_token(8)?);
            target(edited)
        }
        "other-ca" => {
            let other = Pki::generate(super::stack::HOST)?;
            let (cert, key) = (
                state.secrets_dir().join("other-ca-tls.crt"),
                state.secrets_dir().join("other-ca-tls.key"),
            );
            stack.install_certificate(&other, &cert, &key)?;
            nginx(NginxConf {
                cert,
                key,
                ..state.default_nginx_conf()
            })
        }
        "no-https-redirect" => nginx(NginxConf {
            http_entry: HttpEntry::Proxy,
            ..state.default_nginx_conf()
        }),
        "redirect-drops-port" => nginx(NginxConf {
            http_entry: HttpEntry::RedirectDroppingPort,
            ..state.default_nginx_conf()
        }),
        "same-jvm-twice" => {
            let again = ReplicaState {
                name: format!("{}-again", first.name),
                ..first.clone()
            };
            // The ingress sends the login to that JVM: the session is valid under both names
            // (through another replica it would be valid under neither).
            Setup {
                nginx: Some(routed_to(stack, vec![first.http_port])),
                target: Some(without_stop_handles(with_replicas(
                    stack,
                    &[first.clone(), again],
                ))),
                ..Setup::default()
            }
        }
        "suite-user-not-authorized" => {
            let user = format!("conformanceNoAuthz{}", random_token(6)?);
            let password_file = state.secrets_dir().join("unauthorized-password");
            write_file(&password_file, &random_token(24)?, 0o600)?;
            create_user(stack, &user, &password_file)?;
            let mut edited = base_target(stack);
            edited.credentials =
                camunda_conformance_suites::Credentials::from_file(&user, password_file);
            Setup {
                target: Some(edited),
                user: Some(user),
                ..Setup::default()
            }
        }
        "separate-databases" => behind_ingress(stack, &[first.clone(), odd.outsider.clone()]),
        "ingress-other-database" => nginx(routed_to(stack, vec![odd.outsider.http_port])),
        "job-executor-off" => {
            // The stack's replicas are frozen so that only the two without a job executor
            // serve the shared database.
            let pair = [odd.lax.clone(), odd.no_agent.clone()];
            Setup {
                nginx: Some(routed_to(stack, pair.iter().map(|r| r.http_port).collect())),
                target: Some(with_replicas(stack, &pair)),
                freeze: state.replicas.iter().map(|r| r.pid).collect(),
                ..Setup::default()
            }
        }
        "single-upstream" => nginx(routed_to(stack, vec![first.http_port])),
        "ip-hash" => nginx(NginxConf {
            balance: Balance::ClientAddress,
            ..state.default_nginx_conf()
        }),
        "round-robin-no-store" => nginx(NginxConf {
            balance: Balance::RoundRobin,
            ..state.default_nginx_conf()
        }),
        "affinity-cookie-lax" => nginx(NginxConf {
            balance: Balance::CookieLaxAttributes,
            ..state.default_nginx_conf()
        }),
        "affinity-cookie-ignored" => nginx(NginxConf {
            balance: Balance::CookieIgnored,
            ..state.default_nginx_conf()
        }),
        "auth-api-outside-cluster" => nginx(extra_route(
            stack,
            RouteMatch::Path(format!("{}{WHOAMI_PATH}", state.flavour.webapp_path())),
            vec![odd.outsider.http_port],
        )),
        "logout-outside-cluster" => nginx(extra_route(
            stack,
            RouteMatch::Path(format!("{}{LOGOUT_PATH}", state.flavour.webapp_path())),
            vec![odd.outsider.http_port],
        )),
        "store-down" => Setup {
            stop_redis: true,
            ..Setup::default()
        },
        "store-in-replica" => {
            let redis = state.redis.as_ref().context("a shared stack has Redis")?;
            let mut edited = base_target(stack);
            // Stopping camunda-0 stops the store with it, like a sidecar in its pod.
            edited.replicas[0].stop = Some(StopHandle::SignalAll {
                pids: vec![u32::try_from(first.pid)?, u32::try_from(redis.pid)?],
            });
            target(edited)
        }
        // Not behind the round-robin ingress: there it would break the login itself, before
        // the check that looks for the session on every replica.
        "replica-without-store" => target(without_stop_handles(with_replicas(
            stack,
            &plus(&odd.outsider),
        ))),
        // Behind the ingress too, as a third pod of the Deployment would be.
        "third-replica-own-database" => behind_ingress(stack, &plus(&odd.outsider)),
        "stale-upstream-under-probes" => Setup {
            nginx: Some(routed_to(
                stack,
                vec![first.http_port, odd.no_agent.http_port],
            )),
            kubelet_probes: state.replicas.clone(),
            ..Setup::default()
        },
        "ready-replica-outside-ingress" => Setup {
            target: Some(without_stop_handles(with_replicas(
                stack,
                &plus(&odd.outsider),
            ))),
            kubelet_probes: plus(&odd.outsider),
            ..Setup::default()
        },
        other => bail!("fault `{other}` of the catalogue has no injection on the local backend"),
    })
}

fn apply(stack: &mut Stack, setup: &Setup) -> Result<()> {
    if let Some(conf) = &setup.nginx {
        stack.reload_nginx(conf)?;
    }
    if let Some((targets, duplicate)) = &setup.prometheus {
        stack.reload_prometheus(targets, *duplicate)?;
        let jobs = if *duplicate { 2 } else { 1 };
        wait_prometheus_targets(stack, targets.len() * jobs)?;
    }
    if setup.stop_redis {
        stack.stop_redis()?;
    }
    for pid in &setup.freeze {
        signal_group(*pid, libc::SIGSTOP);
    }
    Ok(())
}

/// Undoes everything a fault may have changed, also when the probe failed half-way.
fn undo(stack: &mut Stack, setup: &Setup) -> Result<()> {
    for pid in &setup.freeze {
        signal_group(*pid, libc::SIGCONT);
    }
    let mut problems = Vec::new();
    let mut attempt = |what: &str, result: Result<()>| {
        if let Err(err) = result {
            problems.push(format!("{what}: {err:#}"));
        }
    };
    if setup.nginx.is_some() {
        let conf = stack.state.default_nginx_conf();
        attempt("restoring nginx", stack.reload_nginx(&conf));
    }
    if let Some((_, duplicate)) = &setup.prometheus {
        let targets = stack.state.scrape_targets();
        attempt(
            "restoring prometheus",
            stack
                .reload_prometheus(&targets, false)
                .and_then(|()| wait_prometheus_targets(stack, targets.len()))
                .and_then(|()| {
                    if *duplicate {
                        wait_series_gone(stack, &format!("up{{job=\"{DUPLICATE_JOB}\"}}"))
                    } else {
                        Ok(())
                    }
                }),
        );
    }
    if let Some(user) = &setup.user {
        attempt("deleting the fault's user", delete_user(stack, user));
    }
    attempt("restarting redis", stack.heal_redis());
    attempt("restarting stopped replicas", stack.heal(true));
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("; "))
    }
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: signals a process group this stack started; ESRCH (gone) is fine.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Starts the odd replicas in parallel (the outsider's database first).
fn start_odd_replicas(stack: &mut Stack, dir: &Path) -> Result<(Odd, Vec<usize>)> {
    stack.create_database(OUTSIDER_DB)?;
    let jvm_only = dir.join("jmx-jvm-only.yml");
    write_file(
        &jvm_only,
        "# Fault jmx-rules-jvm-only: java.lang beans only, none of the Tomcat or Camunda rules.\nincludeObjectNames: [\"java.lang:*\"]\n",
        0o644,
    )?;
    let mut replica = |name: &str| -> Result<ReplicaState> {
        Ok(ReplicaState {
            name: name.to_string(),
            pid: 0,
            http_port: stack.ports.free()?,
            metrics_port: stack.ports.free()?,
        })
    };
    let odd = Odd {
        lax: replica("camunda-lax")?,
        no_agent: replica("camunda-noagent")?,
        outsider: replica("camunda-outsider")?,
    };
    let flavours = [
        (
            &odd.lax,
            ReplicaFlavour {
                basic_auth: false,
                csrf_exempt_login: true,
                jmx_config: Some(jvm_only),
                job_executor: false,
                ..ReplicaFlavour::normal()
            },
        ),
        (
            &odd.no_agent,
            ReplicaFlavour {
                jmx_agent: false,
                job_executor: false,
                ..ReplicaFlavour::normal()
            },
        ),
        (
            &odd.outsider,
            ReplicaFlavour {
                own_database: Some(OUTSIDER_DB.into()),
                own_sessions: true,
                ..ReplicaFlavour::normal()
            },
        ),
    ];
    let mut spawned = Vec::new();
    let mut indices = Vec::new();
    for (replica, flavour) in flavours {
        let index = stack.spawn_replica(replica, flavour.clone())?;
        indices.push(index);
        let replica = ReplicaState {
            pid: stack.supervisor.get(index).pid,
            ..replica.clone()
        };
        spawned.push((replica, Some(index), flavour));
    }
    let started = stack.wait_replicas(&spawned);
    if let Err(err) = started {
        for index in &indices {
            stack.supervisor.stop(*index);
        }
        return Err(err.context("starting the fault catalogue's replicas"));
    }
    let pid = |i: usize| spawned[i].0.clone();
    Ok((
        Odd {
            lax: pid(0),
            no_agent: pid(1),
            outsider: pid(2),
        },
        indices,
    ))
}

fn write_target(dir: &Path, name: &str, target: &Target) -> Result<PathBuf> {
    super::stack::write_target(&dir.join(name), target)
}

/// Creates an engine user without any authorization (through a replica, as the admin user).
fn create_user(stack: &Stack, user: &str, password_file: &Path) -> Result<()> {
    let password = std::fs::read_to_string(password_file)?;
    let body = serde_json::json!({
        "profile": {"id": user, "firstName": "Conformance", "lastName": "Fault", "email": "fault@camunda.test"},
        "credentials": {"password": password.trim_end()},
    });
    admin_request(
        stack,
        reqwest::Method::POST,
        "/user/create",
        Some(body),
        204,
    )
}

fn delete_user(stack: &Stack, user: &str) -> Result<()> {
    admin_request(
        stack,
        reqwest::Method::DELETE,
        &format!("/user/{user}"),
        None,
        204,
    )
}

fn admin_request(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    want: u16,
) -> Result<()> {
    let admin_password = std::fs::read_to_string(stack.state.admin_password_file())?;
    let url = format!(
        "http://127.0.0.1:{}{}{path}",
        stack.state.replicas[0].http_port,
        stack.state.flavour.rest_path()
    );
    let mut request = http_client()?
        .request(method.clone(), &url)
        .basic_auth(&stack.state.admin_user, Some(admin_password.trim_end()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().with_context(|| format!("{method} {url}"))?;
    if response.status().as_u16() != want {
        bail!("{method} {url}: expected {want}, got {}", response.status());
    }
    Ok(())
}

/// Waits until Prometheus has `count` active targets, all up, so a check sees the reloaded
/// configuration, not the previous one.
fn wait_prometheus_targets(stack: &Stack, count: usize) -> Result<()> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Targets {
        active_targets: Vec<ActiveTarget>,
    }
    #[derive(Deserialize)]
    struct ActiveTarget {
        health: String,
    }
    let what = format!("Prometheus to have {count} active targets, all up");
    wait_prometheus(
        stack,
        &what,
        "targets",
        &[("state", "active")],
        |t: Targets| {
            let up = t.active_targets.iter().filter(|t| t.health == "up").count();
            (t.active_targets.len() == count && up == count)
                .then_some(())
                .ok_or_else(|| format!("{} active, {up} up", t.active_targets.len()))
        },
    )
}

/// Waits until an instant query returns nothing (the series went stale after a reload).
fn wait_series_gone(stack: &Stack, query: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Vector {
        result: Vec<serde_json::Value>,
    }
    let what = format!("Prometheus to drop `{query}`");
    wait_prometheus(stack, &what, "query", &[("query", query)], |v: Vector| {
        v.result
            .is_empty()
            .then_some(())
            .ok_or_else(|| format!("{} series left", v.result.len()))
    })
}

/// Polls `GET /api/v1/{endpoint}?{query}` until `judge` accepts the answer's `data`.
fn wait_prometheus<T: serde::de::DeserializeOwned>(
    stack: &Stack,
    what: &str,
    endpoint: &str,
    query: &[(&str, &str)],
    judge: impl Fn(T) -> std::result::Result<(), String>,
) -> Result<()> {
    #[derive(Deserialize)]
    struct Answer<T> {
        data: T,
    }
    let client = http_client()?;
    let url = format!(
        "http://127.0.0.1:{}/api/v1/{endpoint}",
        stack.state.prometheus.port
    );
    let log = stack.state.logs_dir().join("prometheus.log");
    wait::until(what, Duration::from_secs(30), Some(&log), || {
        let answer = client
            .get(&url)
            .query(query)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json::<Answer<T>>());
        match answer.map(|a| judge(a.data)) {
            Ok(Ok(())) => Probe::Ready(()),
            Ok(Err(seen)) => Probe::Pending(seen),
            Err(err) => Probe::Pending(err.to_string()),
        }
    })
}
