//! The load generator: a fixed number of concurrent request loops against the target's
//! engine-rest through its ingress (what the scaling suite sends), or against a loopback URL
//! (what proves the generator itself). Bounded in time and in request count; it measures
//! what it achieved.
//!
//! [`REQUIRED_RATE_PER_S`] is the rate the generator itself must sustain (proven against nginx
//! on loopback); [`SCALE_OUT_CPU_CORES`] is the CPU its load must make the Camunda replicas burn,
//! which the local e2e measures against the real stack.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::{Client, Url};

use crate::check::Ctx;
use crate::http::Http;
use crate::target::{Secret, Target};

/// Successful engine-rest requests per second through the ingress that make the e2e HPA
/// scale out. Derivation:
/// - the e2e HPA (manifests/base/camunda/hpa.yaml + components/e2e) targets 70 % CPU of the
///   500m request at 2 replicas; the controller acts only beyond its 10 % tolerance, so the
///   pods must burn more than 2 × 500m × 0.70 × 1.1 = 770m together.
/// - one request of `PATHS` (basic auth, one engine query, JSON) costs the Camunda JVM
///   (7.24.0, Spring Boot app of fixtures/camunda-app, H2, measured from /proc CPU time over
///   4000–6000 requests on one replica): 16 ms cold, 7–8 ms after 5000 requests, 2.1–3.6 ms
///   JIT-warm.
/// - at the cheapest warm cost, 770m / 2.1 ms = 367 requests/s; rounded up to 400/s, which is
///   840m at 2.1 ms and 1000–1400m at the usual 2.5–3.6 ms (ceil(2 × 1.0/0.7) = 3 replicas).
pub const REQUIRED_RATE_PER_S: f64 = 400.0;

/// CPU cores the load must make two Camunda replicas burn together for the e2e HPA to scale
/// out: 2 × 500m × 70 % × 1.1 tolerance (see [`REQUIRED_RATE_PER_S`]). What the HPA reacts to is
/// CPU, not a request rate, so this is the measure that holds on any machine.
pub const SCALE_OUT_CPU_CORES: f64 = 0.77;

/// Concurrent request loops of the scaling suite's load.
pub const SCALING_WORKERS: usize = 16;

/// Upper bounds of one load run, whatever the caller asks.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 60);
pub const MAX_WORKERS: usize = 64;
pub const MAX_REQUESTS: u64 = 2_000_000;

/// After an error a worker pauses, so that a broken target is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// Per request against a loopback URL.
const LOOPBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Engine queries that make the engine work (authentication, a database query, JSON) without
/// writing anything.
const PATHS: &[&str] = &[
    "/process-definition?latestVersion=true",
    "/history/process-instance?maxResults=100",
    "/history/activity-instance?maxResults=100",
    "/task?maxResults=100",
];

/// Where load goes. Only the target's own ingress or a loopback address.
pub struct LoadTarget {
    label: String,
    client: Client,
    urls: Vec<String>,
    auth: Option<(String, Secret)>,
}

impl LoadTarget {
    /// The target's engine-rest through its ingress, with the target's credentials.
    pub fn ingress(target: &Target) -> Result<Self> {
        let http = Http::new(target).context("preparing the load's HTTP client")?;
        let password = target
            .credentials
            .password()
            .context("the load needs the target's credentials")?;
        Ok(Self::engine_rest(
            target,
            http.ingress,
            target.credentials.username.clone(),
            password,
        ))
    }

    pub(crate) fn from_ctx(ctx: &Ctx<'_>) -> Result<Self> {
        Ok(Self::engine_rest(
            ctx.target,
            ctx.http.ingress.clone(),
            ctx.username().to_string(),
            ctx.password()?.clone(),
        ))
    }

    fn engine_rest(target: &Target, client: Client, username: String, password: Secret) -> Self {
        Self {
            label: format!("{} engine-rest through the ingress", target.name),
            client,
            urls: PATHS.iter().map(|path| target.rest_url(path)).collect(),
            auth: Some((username, password)),
        }
    }

    /// Plain GETs of `url`, which must name a loopback address (`127.0.0.0/8`, `::1`,
    /// `localhost`).
    pub fn loopback(url: &str) -> Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("load URL `{url}`"))?;
        let host = parsed.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback || !matches!(parsed.scheme(), "http" | "https") {
            bail!("load URL `{url}`: only http(s) to a loopback address is allowed");
        }
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(LOOPBACK_TIMEOUT)
            .build()
            .context("building the load's HTTP client")?;
        Ok(Self {
            label: url.to_string(),
            client,
            urls: vec![url.to_string()],
            auth: None,
        })
    }
}

/// What a load run achieved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadStats {
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Transport errors and answers other than 2xx.
    pub errors: u64,
    pub elapsed: Duration,
    /// Successful requests per second over `elapsed`.
    pub rate_per_s: f64,
    /// Latency of the successful requests.
    pub p50: Duration,
    pub p95: Duration,
    pub last_error: Option<String>,
}

impl fmt::Display for LoadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} errors in {:.1} s: {:.0} successful/s, p50 {} ms, p95 {} ms",
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.rate_per_s,
            self.p50.as_millis(),
            self.p95.as_millis()
        )?;
        if let Some(error) = &self.last_error {
            write!(f, "; last error: {error}")?;
        }
        Ok(())
    }
}

/// What a running load has done so far, readable while it runs.
#[derive(Default)]
pub(crate) struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Live {
    pub fn record(&self, result: std::result::Result<(), String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = result {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(err);
            }
        }
    }

    /// Requests, errors, the last error.
    pub fn snapshot(&self) -> (u64, u64, Option<String>) {
        let last = self.last_error.lock().ok().and_then(|l| l.clone());
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            last,
        )
    }
}

/// Loads `target` with `workers` concurrent request loops for `duration` and measures it.
/// Refuses durations above [`MAX_DURATION`] and worker counts above [`MAX_WORKERS`]; stops
/// early after [`MAX_REQUESTS`].
pub async fn measure(target: &LoadTarget, duration: Duration, workers: usize) -> Result<LoadStats> {
    drive(
        target,
        duration,
        workers,
        &AtomicBool::new(false),
        &Live::default(),
    )
    .await
}

/// [`measure`], also stopped by `stop`, counting into `live` as it goes.
pub(crate) async fn drive(
    target: &LoadTarget,
    duration: Duration,
    workers: usize,
    stop: &AtomicBool,
    live: &Live,
) -> Result<LoadStats> {
    if duration.is_zero() || duration > MAX_DURATION {
        bail!(
            "load duration {} s: must be above 0 and at most {} s",
            duration.as_secs_f64(),
            MAX_DURATION.as_secs()
        );
    }
    if workers == 0 || workers > MAX_WORKERS {
        bail!("load workers {workers}: must be between 1 and {MAX_WORKERS}");
    }
    tracing::info!(
        "load: {} with {workers} workers for at most {} s",
        target.label,
        duration.as_secs()
    );
    let started = Instant::now();
    let sent = AtomicU64::new(0);
    let worker = |index: usize| {
        let sent = &sent;
        async move {
            let mut run = WorkerRun::default();
            let mut n = index;
            while !stop.load(Ordering::Relaxed)
                && started.elapsed() < duration
                && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
            {
                let url = &target.urls[n % target.urls.len()];
                n += 1;
                let mut request = target.client.get(url);
                if let Some((username, password)) = &target.auth {
                    request = request.basic_auth(username, Some(password.expose()));
                }
                let begun = Instant::now();
                let result = match request.send().await {
                    // The body is read so that the connection is reused and the cost is real.
                    Ok(response) => match response.error_for_status() {
                        Ok(response) => response.bytes().await.map(|_| ()),
                        Err(err) => Err(err),
                    },
                    Err(err) => Err(err),
                };
                run.requests += 1;
                match result {
                    Ok(()) => {
                        run.latencies.push(begun.elapsed());
                        live.record(Ok(()));
                    }
                    Err(err) => {
                        run.errors += 1;
                        // Never the URL's credentials: reqwest errors show the URL only.
                        let shown = err.without_url().to_string();
                        live.record(Err(shown.clone()));
                        run.last_error = Some(shown);
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
            }
            run
        }
    };
    let runs = futures::future::join_all((0..workers).map(worker)).await;
    Ok(summarise(runs, started.elapsed()))
}

#[derive(Default)]
struct WorkerRun {
    requests: u64,
    errors: u64,
    latencies: Vec<Duration>,
    last_error: Option<String>,
}

fn summarise(runs: Vec<WorkerRun>, elapsed: Duration) -> LoadStats {
    let mut stats = LoadStats {
        elapsed,
        ..LoadStats::default()
    };
    let mut latencies = Vec::new();
    for run in runs {
        stats.requests += run.requests;
        stats.errors += run.errors;
        latencies.extend(run.latencies);
        if run.last_error.is_some() {
            stats.last_error = run.last_error;
        }
    }
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    stats.p50 = percentile(50);
    stats.p95 = percentile(95);
    stats.rate_per_s = latencies.len() as f64 / elapsed.as_secs_f64().max(0.001);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    /// nginx on a free loopback port with a generated config, killed on drop.
    struct Nginx {
        child: Child,
        port: u16,
        dir: tempfile::TempDir,
    }

    impl Drop for Nginx {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn start_nginx() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = format!(
            // One process: killing it leaves no orphaned worker behind.
            r#"daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location = /ok {{ default_type application/json; return 200 '{{"ok":true}}'; }}
        location / {{ return 404; }}
    }}
}}
"#,
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed at /usr/sbin/nginx (CI installs nginx-light)");
        let nginx = Nginx { child, port, dir };
        // Listening within 10 s, or the test fails with nginx's own error log.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reaches_the_required_rate_against_nginx_on_loopback() {
        let nginx = start_nginx();
        let target = LoadTarget::loopback(&format!("http://127.0.0.1:{}/ok", nginx.port)).unwrap();
        let stats = measure(&target, Duration::from_secs(3), SCALING_WORKERS)
            .await
            .unwrap();
        eprintln!("nginx on loopback: {stats}");
        assert_eq!(stats.errors, 0, "{stats}");
        assert!(stats.rate_per_s >= REQUIRED_RATE_PER_S, "{stats}");
        // Bounded in time: it stopped at the duration (plus one request's latency).
        assert!(stats.elapsed < Duration::from_secs(4), "{stats}");
        assert!(
            stats.p50 <= stats.p95 && stats.p95 > Duration::ZERO,
            "{stats}"
        );

        // Errors are counted and do not count towards the rate.
        let missing =
            LoadTarget::loopback(&format!("http://127.0.0.1:{}/missing", nginx.port)).unwrap();
        let stats = measure(&missing, Duration::from_millis(500), 2)
            .await
            .unwrap();
        assert!(
            stats.errors > 0 && stats.errors == stats.requests,
            "{stats}"
        );
        assert_eq!(stats.rate_per_s, 0.0);
        assert!(
            stats
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("404"),
            "{stats}"
        );
        drop(nginx);
    }

    #[tokio::test]
    async fn only_loopback_and_bounded_runs() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:81/",
        ] {
            assert!(LoadTarget::loopback(url).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "https://example.com/",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(LoadTarget::loopback(url).is_err(), "{url}");
        }
        let target = LoadTarget::loopback("http://127.0.0.1:9/").unwrap();
        for (duration, workers) in [
            (Duration::ZERO, 1),
            (MAX_DURATION + Duration::from_secs(1), 1),
            (Duration::from_secs(1), 0),
            (Duration::from_secs(1), MAX_WORKERS + 1),
        ] {
            assert!(measure(&target, duration, workers).await.is_err());
        }
        // A stop flag already set: nothing is sent.
        let stop = AtomicBool::new(true);
        let live = Live::default();
        let stats = drive(&target, Duration::from_secs(5), 4, &stop, &live)
            .await
            .unwrap();
        assert_eq!(stats.requests, 0);
        assert_eq!(live.snapshot(), (0, 0, None));
        // Port 9 (discard) refuses on loopback: every request is counted as an error, live.
        let live = Live::default();
        let stats = drive(
            &target,
            Duration::from_millis(300),
            1,
            &AtomicBool::new(false),
            &live,
        )
        .await
        .unwrap();
        let (requests, errors, last) = live.snapshot();
        assert_eq!((requests, errors), (stats.requests, stats.errors));
        assert!(requests > 0 && errors == requests, "{requests} {errors}");
        assert!(last.is_some());
    }

    #[test]
    fn percentiles_and_rate() {
        let run = WorkerRun {
            requests: 101,
            errors: 1,
            latencies: (1..=100).rev().map(Duration::from_millis).collect(),
            last_error: Some("boom".into()),
        };
        let stats = summarise(vec![run, WorkerRun::default()], Duration::from_secs(2));
        assert_eq!(stats.requests, 101);
        assert_eq!(stats.p50, Duration::from_millis(51));
        assert_eq!(stats.p95, Duration::from_millis(96));
        assert_eq!(stats.rate_per_s, 50.0);
        assert_eq!(stats.last_error.as_deref(), Some("boom"));
        assert_eq!(
            summarise(Vec::new(), Duration::from_secs(1)).p95,
            Duration::ZERO
        );
    }
}
