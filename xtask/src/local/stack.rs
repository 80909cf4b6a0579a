//! Starting the stack's components and describing it: PostgreSQL, Redis behind twemproxy,
//! Prometheus, nginx and the Camunda replicas.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::app::{self, App};
use super::ports::Ports;
use super::prereq::Programs;
use super::render::{
    self, Balance, HttpEntry, NginxConf, ScrapeTarget, AFFINITY_COOKIE, INGRESS_IP, PROMETHEUS_JOB,
};
use super::supervisor::{self, Supervisor};
use super::tls::Pki;
use super::wait::{self, Probe};
use crate::artifacts::Timings;
use crate::command;
use crate::flavour::Flavour;

/// The ingress host name, the same as the kind overlay's.
pub const HOST: &str = "camunda.test";
const DB_NAME: &str = "camunda";
pub const DB_USER: &str = "camunda";
/// Hikari's pool per replica (the app's DB_CONN_MAXACTIVE default).
const POOL_PER_REPLICA: u32 = 20;

/// A daemon of the stack: its process group and the port it serves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Daemon {
    pub pid: i32,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplicaState {
    pub name: String,
    pub pid: i32,
    pub http_port: u16,
    pub metrics_port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NginxState {
    pub pid: i32,
    pub http_port: u16,
    pub https_port: u16,
}

/// Everything needed to find, test, heal and stop the stack, with no secret in it: this is
/// also the state file of a kept stack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StackState {
    pub temp_dir: PathBuf,
    pub artifacts: PathBuf,
    pub sticky: bool,
    /// The Camunda 7 line the replicas run (its webapp path).
    #[serde(default)]
    pub flavour: Flavour,
    pub admin_user: String,
    pub postgres: Daemon,
    pub redis: Option<Daemon>,
    pub nutcracker: Option<Daemon>,
    pub prometheus: Daemon,
    pub nginx: NginxState,
    pub replicas: Vec<ReplicaState>,
}

impl StackState {
    pub fn secrets_dir(&self) -> PathBuf {
        self.temp_dir.join("secrets")
    }
    pub fn admin_password_file(&self) -> PathBuf {
        self.secrets_dir().join("admin-password")
    }
    pub fn db_password_file(&self) -> PathBuf {
        self.secrets_dir().join("db-password")
    }
    pub fn tls_cert(&self) -> PathBuf {
        self.secrets_dir().join("tls.crt")
    }
    pub fn tls_key(&self) -> PathBuf {
        self.secrets_dir().join("tls.key")
    }
    pub fn ca_file(&self) -> PathBuf {
        self.artifacts.join("ca.pem")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.artifacts.join("config")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.artifacts.join("logs")
    }
    pub fn nginx_conf_file(&self) -> PathBuf {
        self.config_dir().join("nginx.conf")
    }
    pub fn prometheus_file(&self) -> PathBuf {
        self.config_dir().join("prometheus.yml")
    }

    /// Every process group, for stopping them all.
    pub fn groups(&self) -> Vec<(String, i32)> {
        let mut groups = vec![
            ("postgres".to_string(), self.postgres.pid),
            ("prometheus".to_string(), self.prometheus.pid),
            ("nginx".to_string(), self.nginx.pid),
        ];
        for (name, daemon) in [("redis", &self.redis), ("nutcracker", &self.nutcracker)] {
            if let Some(daemon) = daemon {
                groups.push((name.to_string(), daemon.pid));
            }
        }
        groups.extend(self.replicas.iter().map(|r| (r.name.clone(), r.pid)));
        groups
    }

    /// The normal ingress config of this stack; faults change its fields.
    pub fn default_nginx_conf(&self) -> NginxConf {
        NginxConf {
            host: HOST.into(),
            http_port: self.nginx.http_port,
            https_port: self.nginx.https_port,
            cert: self.tls_cert(),
            key: self.tls_key(),
            upstream_ports: self.replicas.iter().map(|r| r.http_port).collect(),
            balance: Balance::for_sessions(self.sticky),
            extra_routes: Vec::new(),
            http_entry: HttpEntry::Redirect,
            exposed_ports: Vec::new(),
            routed_prefixes: vec![
                format!("{}/", self.flavour.webapp_path()),
                format!("{}/", self.flavour.rest_path()),
            ],
            runtime_dir: self.temp_dir.join("nginx"),
            access_log: self.logs_dir().join("nginx-access.log"),
        }
    }

    pub fn scrape_targets(&self) -> Vec<ScrapeTarget> {
        self.replicas
            .iter()
            .map(|r| ScrapeTarget {
                replica: r.name.clone(),
                metrics_port: r.metrics_port,
            })
            .collect()
    }

    /// The target description `camunda-conformance run` reads.
    pub fn target(&self, replicas: &[ReplicaState]) -> camunda_conformance_suites::Target {
        use camunda_conformance_suites as suites;
        let https = self.nginx.https_port;
        suites::Target {
            name: crate::artifacts::run_name(
                "local",
                self.flavour,
                if self.sticky {
                    "sticky"
                } else {
                    "shared-redis"
                },
            ),
            backend: suites::Backend::Local,
            ingress: suites::Ingress {
                base_url: format!("https://{HOST}:{https}"),
                host: Some(HOST.into()),
                connect_to: Some(SocketAddr::new(
                    INGRESS_IP.parse().expect("an IP address"),
                    https,
                )),
                http_url: Some(format!("http://{HOST}:{}", self.nginx.http_port)),
                ca_file: Some(self.ca_file()),
                webapp_path: self.flavour.webapp_path().into(),
                rest_path: self.flavour.rest_path().into(),
                // The local stack publishes no port besides the ingress's.
                exposed: Vec::new(),
            },
            sessions: suites::Sessions {
                mode: if self.sticky {
                    suites::SessionMode::Sticky
                } else {
                    suites::SessionMode::Shared
                },
                affinity_cookie: AFFINITY_COOKIE.into(),
            },
            credentials: suites::Credentials::from_file(
                &self.admin_user,
                self.admin_password_file(),
            ),
            // This stack's jmx_exporter rules: the default series names.
            metrics: suites::Metrics::default(),
            prometheus: Some(suites::Prometheus {
                url: format!("http://127.0.0.1:{}", self.prometheus.port),
                job: PROMETHEUS_JOB.into(),
            }),
            replicas: replicas
                .iter()
                .map(|r| suites::Replica {
                    name: r.name.clone(),
                    http_url: format!("http://127.0.0.1:{}", r.http_port),
                    metrics_url: Some(format!("http://127.0.0.1:{}/metrics", r.metrics_port)),
                    prometheus_instance: None,
                    stop: u32::try_from(r.pid)
                        .ok()
                        .map(|pid| suites::StopHandle::Signal { pid }),
                })
                .collect(),
            kubernetes: None,
            disruptive: suites::Disruptive { allowed: true },
            allowed_skips: local_allowed_skips(self.sticky),
            bounds: suites::Bounds::default(),
        }
    }

    /// Writes the target description for these replicas; returns its path.
    pub fn write_target(&self, path: &Path, replicas: &[ReplicaState]) -> Result<PathBuf> {
        write_target(path, &self.target(replicas))
    }
}

/// What `run --strict` may skip on the local stack: the Kubernetes-only scaling checks and the
/// checks of the other session mode — nothing else, so one replica, a missing Prometheus or a
/// missing stop handle fail the run instead of turning it green.
fn local_allowed_skips(sticky: bool) -> Vec<camunda_conformance_suites::AllowedSkip> {
    use camunda_conformance_suites::{self as suites, AllowedSkip, SessionMode, Suite};
    let mode = if sticky {
        SessionMode::Sticky
    } else {
        SessionMode::Shared
    };
    suites::catalog()
        .into_iter()
        .filter(|check| check.suite == Suite::Scaling && check.id != "scaling.load-generator")
        .map(|check| {
            AllowedSkip::new(
                check.id,
                "the local backend has no Kubernetes; the HPA is proven on the node backend (real CPU)",
            )
        })
        .chain(suites::faults::KUBERNETES_ONLY_CHECKS.iter().map(|id| {
            AllowedSkip::new(
                *id,
                "the local backend has no Kubernetes: no pods, Deployment or HPA to compare",
            )
        }))
        .chain(suites::session_mode_skips(mode))
        .collect()
}

pub fn write_target(path: &Path, target: &camunda_conformance_suites::Target) -> Result<PathBuf> {
    write_file(path, &target.to_toml()?, 0o644)?;
    Ok(path.to_path_buf())
}

/// How one replica differs from the normal ones (the fault catalogue's odd replicas).
#[derive(Clone, Debug)]
pub struct ReplicaFlavour {
    /// The jmx_exporter agent, with this config file instead of the image's.
    pub jmx_agent: bool,
    pub jmx_config: Option<PathBuf>,
    pub basic_auth: bool,
    pub job_executor: bool,
    /// The webapp's login endpoint exempt from CSRF protection (csrf entry points).
    pub csrf_exempt_login: bool,
    /// A database of its own instead of the stack's.
    pub own_database: Option<String>,
    /// Sessions in its own memory even when the stack shares them.
    pub own_sessions: bool,
}

impl ReplicaFlavour {
    pub fn normal() -> Self {
        Self {
            jmx_agent: true,
            jmx_config: None,
            basic_auth: true,
            job_executor: true,
            csrf_exempt_login: false,
            own_database: None,
            own_sessions: false,
        }
    }
}

/// The running stack: its processes, its temp dir, its state.
pub struct Stack {
    /// Declared first: dropped (processes stopped) before the temp dir is removed.
    pub supervisor: Supervisor,
    temp: Option<tempfile::TempDir>,
    pub state: StackState,
    pub programs: Programs,
    pub app: App,
    pub ports: Ports,
}

impl Stack {
    /// Starts every component, recording each one's start in `timings`.
    pub fn start(
        app: App,
        artifacts: &Path,
        replicas: u16,
        sticky: bool,
        keep: bool,
        programs: Programs,
        timings: &mut Timings,
    ) -> Result<Stack> {
        let supervisor = Supervisor::new(artifacts.join("logs"), !keep)?;
        let temp = tempfile::Builder::new()
            .prefix("camunda-e2e-")
            .tempdir()
            .context("creating the run's temp dir")?;
        supervisor::register_temp_dir(temp.path());
        let temp_dir = temp.path().to_path_buf();
        if !render::safe_path(&temp_dir) || !render::safe_path(artifacts) {
            bail!("the temp dir {} or the artifacts folder {} contains characters config files cannot hold", temp_dir.display(), artifacts.display());
        }
        let mut ports = Ports::default();
        let state = StackState {
            temp_dir,
            artifacts: artifacts.to_path_buf(),
            sticky,
            flavour: app.flavour,
            // Camunda ids must match `[a-zA-Z0-9]+` (its default resource whitelist): no dash.
            admin_user: format!("conformance{}", random_token(6)?),
            postgres: Daemon {
                pid: 0,
                port: ports.free()?,
            },
            redis: None,
            nutcracker: None,
            prometheus: Daemon {
                pid: 0,
                port: ports.free()?,
            },
            nginx: NginxState {
                pid: 0,
                http_port: ports.free()?,
                https_port: ports.free()?,
            },
            replicas: (0..replicas)
                .map(|i| {
                    Ok(ReplicaState {
                        name: format!("camunda-{i}"),
                        pid: 0,
                        http_port: ports.free()?,
                        metrics_port: ports.free()?,
                    })
                })
                .collect::<Result<_>>()?,
        };
        let mut stack = Stack {
            supervisor,
            temp: Some(temp),
            state,
            app,
            programs,
            ports,
        };
        timings.measure("secrets, TLS (rcgen), app copy", || stack.prepare_files())?;
        timings.measure("start postgres (initdb, ready, createdb)", || {
            stack.start_postgres(replicas)
        })?;
        if !sticky {
            timings.measure("start redis + nutcracker", || stack.start_session_store())?;
        }
        timings.measure("start prometheus", || stack.start_prometheus())?;
        timings.measure("start nginx", || stack.start_nginx())?;
        let names: Vec<usize> = (0..stack.state.replicas.len()).collect();
        if let Some((first, rest)) = names.split_first() {
            timings.measure("start camunda-0 (creates the schema)", || {
                stack.start_replicas(&[*first])
            })?;
            if !rest.is_empty() {
                timings.measure(
                    &format!("start camunda-1..{} (parallel)", rest.len()),
                    || stack.start_replicas(rest),
                )?;
            }
        }
        Ok(stack)
    }

    /// A stack kept by an earlier run: no process is ours, the temp dir stays.
    pub fn adopt(state: StackState, programs: Programs) -> Result<Stack> {
        Ok(Stack {
            supervisor: Supervisor::new(state.logs_dir(), false)?,
            temp: None,
            app: App::in_dir(&state.temp_dir.join("app"), state.flavour),
            programs,
            ports: Ports::default(),
            state,
        })
    }

    /// Secrets (0700 dir), the certificate, the CA for the suites.
    fn prepare_files(&mut self) -> Result<()> {
        let secrets = self.state.secrets_dir();
        fs::create_dir(&secrets).with_context(|| format!("creating {}", secrets.display()))?;
        fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))?;
        // The rest of the temp dir must be reachable by nginx's workers and the postgres user.
        fs::set_permissions(&self.state.temp_dir, fs::Permissions::from_mode(0o755))?;
        write_file(&self.state.db_password_file(), &random_token(32)?, 0o600)?;
        write_file(&self.state.admin_password_file(), &random_token(24)?, 0o600)?;
        let pki = Pki::generate(HOST)?;
        self.install_certificate(&pki, &self.state.tls_cert(), &self.state.tls_key())?;
        write_file(&self.state.ca_file(), pki.ca_pem(), 0o644)?;
        for dir in ["nginx", "prometheus"] {
            fs::create_dir_all(self.state.temp_dir.join(dir))?;
        }
        fs::create_dir_all(self.state.config_dir())?;
        self.app = self.app.copy_to(&self.state.temp_dir.join("app"))?;
        Ok(())
    }

    /// Writes a certificate chain and key where nginx reads them (the key stays in secrets/).
    pub fn install_certificate(&self, pki: &Pki, cert: &Path, key: &Path) -> Result<()> {
        write_file(cert, &pki.leaf_chain_pem(), 0o644)?;
        write_file(key, pki.leaf_key_pem(), 0o600)
    }

    fn start_postgres(&mut self, replicas: u16) -> Result<()> {
        let (uid, gid) = user_ids("postgres")?;
        let pg_dir = self.state.temp_dir.join("pg");
        fs::create_dir(&pg_dir)?;
        chown(&pg_dir, uid, gid)?;
        fs::set_permissions(&pg_dir, fs::Permissions::from_mode(0o700))?;
        // initdb reads the password from a file the postgres user owns; removed right after.
        let pwfile = pg_dir.join("pwfile");
        fs::copy(self.state.db_password_file(), &pwfile)?;
        chown(&pwfile, uid, gid)?;
        let data = pg_dir.join("data");
        let mut initdb = Command::new(self.programs.pg_bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "--username",
                DB_USER,
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .uid(uid)
            .gid(gid);
        let index = self.supervisor.spawn("postgres-initdb", initdb)?;
        let log = self.supervisor.get(index).log.clone();
        let outcome = wait::until(
            "initdb",
            Duration::from_secs(120),
            Some(&log),
            || match self.supervisor.get(index).exited() {
                Some(status) => Probe::Ready(status),
                None => Probe::Pending("initialising the cluster".into()),
            },
        );
        let _ = fs::remove_file(&pwfile);
        let status = outcome?;
        if !status.contains("exit status: 0") {
            bail!(
                "initdb failed ({status}):\n{}",
                supervisor::log_tail(&log, 30)
            );
        }

        // Every replica's pool, the fault catalogue's three replicas' pools, and room for the
        // suites and psql.
        let max_connections = (u32::from(replicas) + 3) * POOL_PER_REPLICA + 20;
        let port = self.state.postgres.port;
        let mut postgres = Command::new(self.programs.pg_bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .args(["-c", &format!("max_connections={max_connections}")])
            // No Unix socket: everything connects over TCP, and a socket path under a long
            // TMPDIR exceeds the 107 bytes a socket address holds (postgres then refuses to start).
            .args(["-c", "unix_socket_directories="])
            // A throw-away database: durability buys nothing here and costs start-up time.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .uid(uid)
            .gid(gid);
        let index = self.supervisor.spawn("postgres", postgres)?;
        self.state.postgres.pid = self.supervisor.get(index).pid;
        let log = self.supervisor.get(index).log.clone();
        let isready = self.programs.pg_bin.join("pg_isready");
        wait::until(
            &format!("postgres on :{port}"),
            Duration::from_secs(60),
            Some(&log),
            || {
                if let Some(status) = self.supervisor.get(index).exited() {
                    return Probe::Failed(format!("postgres exited ({status})"));
                }
                let mut probe = Command::new(&isready);
                probe.args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()]);
                match command::output(probe, "pg_isready", Duration::from_secs(10)) {
                    Ok(output) if output.status.success() => Probe::Ready(()),
                    Ok(output) => Probe::Pending(format!("pg_isready: {}", output.status)),
                    Err(err) => Probe::Pending(format!("{err:#}")),
                }
            },
        )?;
        self.create_database(DB_NAME)
    }

    /// `createdb NAME` on the stack's PostgreSQL, owned by the stack's database user.
    pub fn create_database(&self, name: &str) -> Result<()> {
        let password = fs::read_to_string(self.state.db_password_file())?;
        let mut createdb = Command::new(self.programs.pg_bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.state.postgres.port.to_string())
            .args(["-U", DB_USER, name])
            // The environment, never the command line.
            .env("PGPASSWORD", password.trim_end());
        let output = command::output(
            createdb,
            &format!("createdb {name}"),
            Duration::from_secs(30),
        )?;
        if !output.status.success() {
            bail!(
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn start_session_store(&mut self) -> Result<()> {
        let redis_port = self.ports.free()?;
        self.spawn_redis(redis_port)?;

        let proxy_port = self.ports.free()?;
        let stats_port = self.ports.free()?;
        let conf = self.state.config_dir().join("nutcracker.yml");
        write_file(
            &conf,
            &render::nutcracker_yml(proxy_port, redis_port),
            0o644,
        )?;
        let mut nutcracker = Command::new(&self.programs.nutcracker);
        nutcracker
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-s", &stats_port.to_string()])
            .arg("-p")
            .arg(self.state.temp_dir.join("nutcracker.pid"))
            .arg("-o")
            .arg(self.supervisor.log_path("nutcracker"));
        let index = self.supervisor.spawn("nutcracker", nutcracker)?;
        self.state.nutcracker = Some(Daemon {
            pid: self.supervisor.get(index).pid,
            port: proxy_port,
        });
        self.wait_redis_ping("nutcracker (twemproxy -> redis)", index, proxy_port)
    }

    /// Redis on `port` (a restart after a fault reuses the port twemproxy knows).
    fn spawn_redis(&mut self, port: u16) -> Result<()> {
        let redis_dir = self.state.temp_dir.join("redis");
        fs::create_dir_all(&redis_dir)?;
        let mut redis = Command::new(&self.programs.redis);
        redis
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&redis_dir);
        let index = self.supervisor.spawn("redis", redis)?;
        self.state.redis = Some(Daemon {
            pid: self.supervisor.get(index).pid,
            port,
        });
        self.wait_redis_ping("redis", index, port)
    }

    /// Stops the session store's Redis (the fault of a store that is down).
    pub fn stop_redis(&mut self) -> Result<()> {
        let redis = self
            .state
            .redis
            .as_ref()
            .context("this stack has no Redis")?;
        supervisor::stop_groups(&[("redis".into(), redis.pid)], Duration::from_secs(5));
        Ok(())
    }

    /// Starts Redis again on its port if it is not running.
    pub fn heal_redis(&mut self) -> Result<()> {
        let Some(redis) = self.state.redis.clone() else {
            return Ok(());
        };
        self.supervisor.reap();
        if supervisor::group_alive(redis.pid) {
            return Ok(());
        }
        println!("restarting redis on :{}", redis.port);
        self.spawn_redis(redis.port)
    }

    fn wait_redis_ping(&mut self, what: &str, index: usize, port: u16) -> Result<()> {
        let log = self.supervisor.get(index).log.clone();
        wait::until(
            &format!("{what} on :{port}"),
            Duration::from_secs(30),
            Some(&log),
            || {
                if let Some(status) = self.supervisor.get(index).exited() {
                    return Probe::Failed(format!("exited ({status})"));
                }
                match redis_ping(port) {
                    Ok(()) => Probe::Ready(()),
                    Err(err) => Probe::Pending(format!("{err:#}")),
                }
            },
        )
    }

    fn start_prometheus(&mut self) -> Result<()> {
        let conf = self.state.prometheus_file();
        write_file(
            &conf,
            &render::prometheus_yml(&self.state.scrape_targets(), false),
            0o644,
        )?;
        let port = self.state.prometheus.port;
        let mut prometheus = Command::new(&self.programs.prometheus);
        prometheus
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.state.temp_dir.join("prometheus").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Five scrape intervals: a series that stops being scraped (a fault undone) leaves
            // instant queries within seconds instead of Prometheus's default five minutes.
            .arg("--query.lookback-delta=10s")
            .arg("--web.enable-lifecycle");
        let index = self.supervisor.spawn("prometheus", prometheus)?;
        self.state.prometheus.pid = self.supervisor.get(index).pid;
        let url = format!("http://127.0.0.1:{port}/-/ready");
        self.wait_http(
            &format!("prometheus on :{port}"),
            index,
            &url,
            Duration::from_secs(60),
        )
    }

    fn start_nginx(&mut self) -> Result<()> {
        let conf = self.state.nginx_conf_file();
        write_file(
            &conf,
            &render::nginx_conf(&self.state.default_nginx_conf()),
            0o644,
        )?;
        self.nginx_test(&conf)?;
        let mut nginx = Command::new(&self.programs.nginx);
        nginx
            .arg("-p")
            .arg(self.state.temp_dir.join("nginx"))
            .arg("-c")
            .arg(&conf)
            .args(["-e", "stderr"]);
        let index = self.supervisor.spawn("nginx", nginx)?;
        self.state.nginx.pid = self.supervisor.get(index).pid;
        let (http, https) = (self.state.nginx.http_port, self.state.nginx.https_port);
        let log = self.supervisor.get(index).log.clone();
        wait::until(
            &format!("nginx on :{http} and :{https}"),
            Duration::from_secs(30),
            Some(&log),
            || {
                if let Some(status) = self.supervisor.get(index).exited() {
                    return Probe::Failed(format!("exited ({status})"));
                }
                let up = |port| TcpStream::connect((INGRESS_IP, port)).is_ok();
                if up(http) && up(https) {
                    Probe::Ready(())
                } else {
                    Probe::Pending("not listening yet".into())
                }
            },
        )
    }

    /// `nginx -t` on a config, so a bad one fails with nginx's own words before it is used.
    pub fn nginx_test(&self, conf: &Path) -> Result<()> {
        let mut test = Command::new(&self.programs.nginx);
        test.arg("-t")
            .arg("-p")
            .arg(self.state.temp_dir.join("nginx"))
            .arg("-c")
            .arg(conf)
            .args(["-e", "stderr"]);
        let output = command::output(test, "nginx -t", Duration::from_secs(30))?;
        if !output.status.success() {
            bail!(
                "nginx -t rejected {}:\n{}",
                conf.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The environment of a replica; `secret` values are never written to the artifacts.
    fn replica_env(
        &self,
        replica: &ReplicaState,
        flavour: &ReplicaFlavour,
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SERVER_PORT", replica.http_port.to_string()),
            ("DB_DRIVER", "org.postgresql.Driver".to_string()),
            (
                "DB_URL",
                format!(
                    "jdbc:postgresql://127.0.0.1:{}/{}",
                    self.state.postgres.port,
                    flavour.own_database.as_deref().unwrap_or(DB_NAME)
                ),
            ),
            ("DB_USERNAME", DB_USER.to_string()),
            (
                "DB_PASSWORD_FILE",
                self.state.db_password_file().display().to_string(),
            ),
            ("DB_CONN_MAXACTIVE", POOL_PER_REPLICA.to_string()),
            ("CAMUNDA_BPM_ADMIN_USER_ID", self.state.admin_user.clone()),
            (
                "CAMUNDA_BPM_ADMIN_USER_PASSWORD_FILE",
                self.state.admin_password_file().display().to_string(),
            ),
            (
                "CAMUNDA_BPM_RUN_AUTH_ENABLED",
                flavour.basic_auth.to_string(),
            ),
            // auth.wrong-password waits out the lock a wrong password causes: 1 s here instead
            // of Camunda's 3 s keeps `--reuse` quick; the lock itself is what the check proves.
            ("CAMUNDA_BPM_LOGIN_DELAY_BASE", "1".into()),
        ];
        if flavour.jmx_agent {
            env.push(("JMX_PROMETHEUS_PORT", replica.metrics_port.to_string()));
        }
        if !flavour.job_executor {
            // Spring Boot's relaxed binding of camunda.bpm.job-execution.enabled.
            env.push(("CAMUNDA_BPM_JOBEXECUTION_ENABLED", "false".into()));
        }
        if flavour.csrf_exempt_login {
            // camunda.bpm.webapp.csrf.entry-points: paths the CSRF filter lets through
            // unchecked (the servlet path and the context-relative one).
            env.push((
                "CAMUNDA_BPM_WEBAPP_CSRF_ENTRYPOINTS",
                format!(
                    "{}/api/admin/auth/user/default/login/welcome,/api/admin/auth/user/default/login/welcome",
                    self.state.flavour.webapp_path()
                ),
            ));
        }
        match &self.state.nutcracker {
            Some(proxy) if !self.state.sticky && !flavour.own_sessions => {
                env.push(("SESSION_STORE", "redis".into()));
                env.push(("SESSION_REDIS_HOST", "127.0.0.1".into()));
                env.push(("SESSION_REDIS_PORT", proxy.port.to_string()));
            }
            _ => env.push(("SESSION_STORE", "none".into())),
        }
        env
    }

    /// Spawns one replica (not waiting); returns the supervisor index.
    pub fn spawn_replica(
        &mut self,
        replica: &ReplicaState,
        flavour: ReplicaFlavour,
    ) -> Result<usize> {
        let env = self.replica_env(replica, &flavour);
        let agent = flavour.jmx_agent.then(|| {
            let config = flavour
                .jmx_config
                .clone()
                .unwrap_or_else(|| self.app.jmx_config.clone());
            (replica.metrics_port, config)
        });
        let work = self.state.temp_dir.join(&replica.name);
        fs::create_dir_all(&work)?;
        let mut command = app::java_command(&self.programs.java, &self.app, agent, &work);
        let mut listing = String::from(
            "# Environment of the replica (secrets come from files in the temp dir)\n",
        );
        for (key, value) in &env {
            listing.push_str(&format!("{key}={value}\n"));
        }
        listing.push_str(&format!("# {command:?}\n"));
        write_file(
            &self
                .state
                .config_dir()
                .join(format!("{}.env", replica.name)),
            &listing,
            0o644,
        )?;
        // A clean environment: nothing of the caller's (proxies, SPRING_*) leaks into the app.
        command.env_clear().current_dir(&work);
        for key in ["PATH", "HOME", "LANG", "JAVA_HOME", "TZ"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command.env("TMPDIR", &work).envs(env);
        self.supervisor.spawn(&replica.name, command)
    }

    /// Starts replicas (by index in the state) in parallel and waits until all are ready.
    fn start_replicas(&mut self, indices: &[usize]) -> Result<()> {
        let mut spawned = Vec::new();
        for &i in indices {
            let replica = self.state.replicas[i].clone();
            let index = self.spawn_replica(&replica, ReplicaFlavour::normal())?;
            self.state.replicas[i].pid = self.supervisor.get(index).pid;
            spawned.push((
                self.state.replicas[i].clone(),
                Some(index),
                ReplicaFlavour::normal(),
            ));
        }
        self.wait_replicas(&spawned)
    }

    /// Waits until every replica answers `GET /engine-rest/engine` with 200 (and serves metrics
    /// when it has the agent).
    pub fn wait_replicas(
        &mut self,
        replicas: &[(ReplicaState, Option<usize>, ReplicaFlavour)],
    ) -> Result<()> {
        let client = http_client()?;
        let started = Instant::now();
        let mut ready: Vec<Option<Duration>> = vec![None; replicas.len()];
        let names: Vec<&str> = replicas.iter().map(|(r, _, _)| r.name.as_str()).collect();
        let what = names.join(", ");
        let mut failed_log = None;
        let outcome = wait::until(&what, Duration::from_secs(240), None, || {
            let mut pending = Vec::new();
            for (slot, (replica, index, flavour)) in replicas.iter().enumerate() {
                if ready[slot].is_some() {
                    continue;
                }
                // Our child: wait for it (a zombie still counts as alive); else ask the kernel.
                let exited = match index {
                    Some(index) => self.supervisor.get(*index).exited(),
                    None => (!supervisor::group_alive(replica.pid)).then(|| "gone".to_string()),
                };
                if let Some(status) = exited {
                    failed_log = Some(self.supervisor.log_path(&replica.name));
                    return Probe::Failed(format!("{} exited ({status})", replica.name));
                }
                let engine = format!("http://127.0.0.1:{}/engine-rest/engine", replica.http_port);
                let seen = match client.get(&engine).send() {
                    Ok(response) if response.status().is_success() => {
                        if flavour.jmx_agent {
                            let metrics =
                                format!("http://127.0.0.1:{}/metrics", replica.metrics_port);
                            match client.get(&metrics).send() {
                                Ok(m) if m.status().is_success() => None,
                                Ok(m) => Some(format!("metrics {}", m.status())),
                                Err(err) => Some(format!("metrics: {}", short_error(&err))),
                            }
                        } else {
                            None
                        }
                    }
                    Ok(response) => Some(format!("engine {}", response.status())),
                    Err(err) => Some(short_error(&err)),
                };
                match seen {
                    None => ready[slot] = Some(started.elapsed()),
                    Some(seen) => pending.push(format!("{}: {seen}", replica.name)),
                }
            }
            if pending.is_empty() {
                Probe::Ready(())
            } else {
                Probe::Pending(pending.join("; "))
            }
        });
        if let Err(err) = outcome {
            // Name the log of the replica that failed, or of every pending one on a timeout.
            let logs: Vec<PathBuf> = match failed_log {
                Some(log) => vec![log],
                None => replicas
                    .iter()
                    .enumerate()
                    .filter(|(slot, _)| ready[*slot].is_none())
                    .map(|(_, (replica, _, _))| self.supervisor.log_path(&replica.name))
                    .collect(),
            };
            let tails: Vec<String> = logs
                .iter()
                .map(|log| {
                    format!(
                        "--- last lines of {} ---\n{}",
                        log.display(),
                        supervisor::log_tail(log, 25)
                    )
                })
                .collect();
            return Err(err.context(tails.join("\n")));
        }
        // wait::until already named the time of a single replica.
        for (slot, (replica, _, _)) in replicas.iter().enumerate().filter(|_| replicas.len() > 1) {
            if let Some(took) = ready[slot] {
                println!(
                    "    {} ready after {:.1}s",
                    replica.name,
                    took.as_secs_f64()
                );
            }
        }
        Ok(())
    }

    /// Waits for an HTTP 2xx from `url` while the process lives.
    fn wait_http(&mut self, what: &str, index: usize, url: &str, timeout: Duration) -> Result<()> {
        let client = http_client()?;
        let log = self.supervisor.get(index).log.clone();
        wait::until(what, timeout, Some(&log), || {
            if let Some(status) = self.supervisor.get(index).exited() {
                return Probe::Failed(format!("exited ({status})"));
            }
            match client.get(url).send() {
                Ok(response) if response.status().is_success() => Probe::Ready(()),
                Ok(response) => Probe::Pending(format!("{url}: {}", response.status())),
                Err(err) => Probe::Pending(short_error(&err)),
            }
        })
    }

    /// Restarts replicas that died (the shared-session check kills one on purpose) on the same
    /// ports; with `wait`, until they are ready, else they come up in the background.
    pub fn heal(&mut self, wait: bool) -> Result<()> {
        self.supervisor.reap();
        let dead: Vec<usize> = (0..self.state.replicas.len())
            .filter(|&i| !supervisor::group_alive(self.state.replicas[i].pid))
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = dead
            .iter()
            .map(|&i| self.state.replicas[i].name.as_str())
            .collect();
        println!("restarting stopped replicas: {}", names.join(", "));
        if wait {
            self.start_replicas(&dead)
        } else {
            for i in dead {
                let replica = self.state.replicas[i].clone();
                let index = self.spawn_replica(&replica, ReplicaFlavour::normal())?;
                self.state.replicas[i].pid = self.supervisor.get(index).pid;
            }
            Ok(())
        }
    }

    /// Waits until every replica of a kept stack is ready (one probe when they are).
    pub fn wait_kept_replicas(&mut self) -> Result<()> {
        let replicas: Vec<_> = self
            .state
            .replicas
            .iter()
            .map(|r| (r.clone(), None, ReplicaFlavour::normal()))
            .collect();
        self.wait_replicas(&replicas)
    }

    /// nginx re-reads its config (SIGHUP to the master); waits until a new worker started.
    pub fn reload_nginx(&mut self, conf: &NginxConf) -> Result<()> {
        let file = self.state.nginx_conf_file();
        let text = render::nginx_conf(conf);
        write_file(&file, &text, 0o644)?;
        self.nginx_test(&file)?;
        let log = self.state.logs_dir().join("nginx.log");
        let master = self.state.nginx.pid;
        let old_workers = children(master);
        // SAFETY: signals the nginx master this stack started.
        if unsafe { libc::kill(master, libc::SIGHUP) } != 0 {
            bail!(
                "nginx (pid {master}) cannot be signalled: {}",
                std::io::Error::last_os_error()
            );
        }
        // An old worker keeps serving the connections it accepted (a client's keep-alive
        // connection would see the old config): wait until every old worker is gone.
        wait::until("nginx reload", Duration::from_secs(20), Some(&log), || {
            let workers = children(master);
            let lingering = workers.iter().filter(|w| old_workers.contains(w)).count();
            if lingering == 0 && !workers.is_empty() {
                Probe::Ready(())
            } else {
                Probe::Pending(format!(
                    "{lingering} old worker(s) still running, {} worker(s) in all",
                    workers.len()
                ))
            }
        })
    }

    /// Prometheus re-reads prometheus.yml (POST /-/reload); `duplicate` adds a second job.
    pub fn reload_prometheus(&self, targets: &[ScrapeTarget], duplicate: bool) -> Result<()> {
        write_file(
            &self.state.prometheus_file(),
            &render::prometheus_yml(targets, duplicate),
            0o644,
        )?;
        let url = format!("http://127.0.0.1:{}/-/reload", self.state.prometheus.port);
        let response = http_client()?
            .post(&url)
            .send()
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("POST {url}: {}", response.status());
        }
        Ok(())
    }

    /// Stops everything and removes the temp dir.
    pub fn teardown(mut self) -> Result<()> {
        self.supervisor.shutdown();
        if let Some(temp) = self.temp.take() {
            let path = temp.path().to_path_buf();
            temp.close()
                .with_context(|| format!("removing {}", path.display()))?;
            supervisor::forget_temp_dir(&path);
        }
        Ok(())
    }

    /// Leaves processes and temp dir in place (`--keep`); returns the state to save.
    pub fn keep(self) -> StackState {
        let Stack {
            supervisor,
            temp,
            state,
            ..
        } = self;
        supervisor.keep();
        if let Some(temp) = temp {
            let path = temp.keep();
            supervisor::forget_temp_dir(&path);
        }
        state
    }
}

/// An HTTP client for loopback probes: no proxy from the environment, short timeouts.
pub fn http_client() -> Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .context("building the HTTP client")
}

fn short_error(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "connection refused".into()
    } else if err.is_timeout() {
        "timeout".into()
    } else {
        err.to_string()
    }
}

/// The pids of a process's children (Linux `/proc/PID/task/PID/children`).
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `PING` → `+PONG`, directly or through twemproxy (which only takes the RESP array form: it
/// closes the connection on an inline command).
fn redis_ping(port: u16) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connect")?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .context("send PING")?;
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).context("read reply")?;
    let reply = String::from_utf8_lossy(&reply[..n]);
    if reply.starts_with("+PONG") {
        Ok(())
    } else {
        bail!("PING answered {:?}", reply.trim_end())
    }
}

/// Creates/overwrites a file with the given mode (set before any content is written).
pub fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Letters and digits from the kernel's CSPRNG.
pub fn random_token(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // 256 % 57 bias is irrelevant for throw-away test credentials of this length.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn user_ids(name: &str) -> Result<(u32, u32)> {
    let c_name = CString::new(name)?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read once, right away.
    let entry = unsafe { libc::getpwnam(c_name.as_ptr()) };
    if entry.is_null() {
        bail!("the OS user `{name}` does not exist (it comes with the postgresql package)");
    }
    // SAFETY: non-null pointer from getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok((uid, gid))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {} to uid {uid}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sticky: bool) -> StackState {
        let daemon = |port| Daemon { pid: 4242, port };
        StackState {
            temp_dir: "/tmp/camunda-e2e-test".into(),
            artifacts: "/tmp/artifacts".into(),
            sticky,
            flavour: Flavour::Ce,
            admin_user: "conformanceAbc123".into(),
            postgres: daemon(15432),
            redis: (!sticky).then(|| daemon(16379)),
            nutcracker: (!sticky).then(|| daemon(22121)),
            prometheus: daemon(19090),
            nginx: NginxState {
                pid: 4243,
                http_port: 18080,
                https_port: 18443,
            },
            replicas: (0..2)
                .map(|i| ReplicaState {
                    name: format!("camunda-{i}"),
                    pid: 5000 + i,
                    http_port: 28080 + i as u16,
                    metrics_port: 29404 + i as u16,
                })
                .collect(),
        }
    }

    #[test]
    fn the_ingress_routes_replica_http_ports_never_metrics_ports() {
        for sticky in [true, false] {
            let state = state(sticky);
            let conf = render::nginx_conf(&state.default_nginx_conf());
            for replica in &state.replicas {
                assert!(conf.contains(&format!("server 127.0.0.1:{} ", replica.http_port)));
                assert!(
                    !conf.contains(&replica.metrics_port.to_string()),
                    "metrics port {} in nginx.conf",
                    replica.metrics_port
                );
            }
            assert_eq!(conf.contains("hash $affinity_key"), sticky);
        }
    }

    #[test]
    fn the_target_loads_and_carries_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(false);
        let path = state
            .write_target(&dir.path().join("target.toml"), &state.replicas)
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("password ="), "{text}");
        let target = camunda_conformance_suites::Target::load(&path).unwrap();
        assert_eq!(target.ingress.base_url, "https://camunda.test:18443");
        assert_eq!(
            target.ingress.connect_to,
            Some(([127, 0, 0, 2], 18443).into())
        );
        assert_eq!(
            target.sessions.mode,
            camunda_conformance_suites::SessionMode::Shared
        );
        assert_eq!(
            target.credentials.password_file.as_deref(),
            Some(Path::new("/tmp/camunda-e2e-test/secrets/admin-password"))
        );
        assert_eq!(target.replicas.len(), 2);
        assert_eq!(
            target.replicas[1].stop,
            Some(camunda_conformance_suites::StopHandle::Signal { pid: 5001 })
        );
        assert_eq!(
            target.replicas[1].instance().as_deref(),
            Some("127.0.0.1:29405")
        );
    }

    #[test]
    fn the_local_target_allows_only_the_skips_that_are_true_of_the_stack() {
        let sticky = state(true).target(&state(true).replicas);
        let allowed = |target: &camunda_conformance_suites::Target, id: &str| {
            target.allowed_skips.iter().any(|a| a.covers(id))
        };
        assert!(allowed(&sticky, "scaling.scale-out"));
        assert!(allowed(&sticky, "sessions.shared-survives-stop"));
        // What one replica, a missing Prometheus or a missing stop handle would skip must fail.
        for id in [
            "scaling.load-generator",
            "cluster.distinct-replicas",
            "cluster.deploy",
            "sessions.affinity-routing",
            "sessions.fresh-clients-spread",
            "metrics.prometheus-targets",
        ] {
            assert!(!allowed(&sticky, id), "{id} must not be allowed to skip");
        }
        let shared = state(false).target(&state(false).replicas);
        assert!(allowed(&shared, "sessions.affinity-routing"));
        assert!(!allowed(&shared, "sessions.shared-survives-stop"));
        shared.validate().unwrap();
    }

    #[test]
    fn the_kept_state_round_trips() {
        let state = state(true);
        let json = serde_json::to_string(&state).unwrap();
        let back: StackState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.groups(), state.groups());
        assert_eq!(
            back.groups().len(),
            5,
            "postgres, prometheus, nginx, 2 replicas"
        );
    }

    #[test]
    fn tokens_are_random_and_alphanumeric() {
        let a = random_token(24).unwrap();
        let b = random_token(24).unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn secret_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        write_file(&file, "x", 0o600).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
