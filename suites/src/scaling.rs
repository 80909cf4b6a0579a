//! scaling (Kubernetes only): the metrics API answers, the HPA reports current metrics, load
//! through the ingress scales the deployment out within a bound, the new pods become Ready and
//! take traffic, sessions behave as their mode promises during the scale-out, and it scales
//! back in after the load.
//!
//! The cluster is reached through [`KubeOps`]; [`kubectl::Kubectl`] implements it with kubectl
//! (the kind backend's tool) and parses the API objects itself. The decisions over those
//! objects are the pure functions of [`hpa`].

mod generator;
mod hpa;
pub(crate) mod kubectl;
pub mod load;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Cookies, Polled};
use crate::prom;
use crate::sessions::{ingress, session_only};
use crate::target::{Backend, SessionMode};
use crate::webapp::Webapp;
use crate::Suite;

pub use hpa::{HpaCondition, HpaStatus};

const fn check(id: &'static str, description: &'static str, disruptive: bool) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Scaling,
        description,
        disruptive,
    }
}

pub(crate) const LOAD_GENERATOR_ID: &str = "scaling.load-generator";
/// Why the load generator check skips on Kubernetes.
pub(crate) const LOAD_GENERATOR_ON_KUBERNETES: &str = "proven on the local backend, where the replicas' CPU is measured; on Kubernetes scaling.scale-out under the same load proves it";

const LOAD_GENERATOR: CheckInfo = check(
    LOAD_GENERATOR_ID,
    "local backend: the scaling load through the ingress drives the replicas' CPU to the HPA's scale-out point (or half of what a busy machine leaves them)",
    true,
);
const METRICS_API: CheckInfo = check(
    "scaling.metrics-api",
    "the metrics API (metrics.k8s.io) reports the deployment's pods",
    false,
);
const HPA_METRICS: CheckInfo = check(
    "scaling.hpa-metrics",
    "the HPA reports current values for its metrics",
    false,
);
const SCALE_OUT: CheckInfo = check(
    "scaling.scale-out",
    "under load through the ingress the HPA scales out within the bound",
    true,
);
const NEW_PODS_READY: CheckInfo = check(
    "scaling.new-pods-ready",
    "the new pods become Ready and serve requests",
    true,
);
const SESSIONS: CheckInfo = check(
    "scaling.sessions-during-scale-out",
    "a session logged in before the load stays valid through the ingress on every request during the scale-out; shared mode: it is also valid on a new pod",
    true,
);
const SCALE_IN: CheckInfo = check(
    "scaling.scale-in",
    "after the load the HPA scales back in within the bound",
    true,
);

/// The scaling checks that cannot be shown on kwok's simulated pods, and why.
pub const SIMULATED_SCALING_SKIPS: &[(&str, &str)] = &[
    (
        NEW_PODS_READY.id,
        "serving traffic cannot be shown on simulated pods: no container runs, nothing answers requests",
    ),
    (
        SESSIONS.id,
        "talks to Camunda itself: on kwok the pods are simulated and no container runs",
    ),
];

pub(crate) const CHECKS: &[CheckInfo] = &[
    LOAD_GENERATOR,
    METRICS_API,
    HPA_METRICS,
    SCALE_OUT,
    NEW_PODS_READY,
    SESSIONS,
    SCALE_IN,
];

/// Between two session probes through the ingress during the scale-out.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Session probes without an answer (timeouts, 5xx under load) beyond this share fail the
/// session check: it cannot vouch for what it did not see.
const MAX_PROBE_ERROR_SHARE: f64 = 0.1;

/// A boxed future, so that [`KubeOps`] stays object safe.
pub type KubeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What the scaling suite asks of the cluster.
pub trait KubeOps: Send + Sync {
    /// Names of the namespace's pods that the metrics API reports usage for.
    fn pod_metrics(&self) -> KubeFuture<'_, Vec<String>>;
    /// The HPA's spec bounds and status.
    fn hpa(&self) -> KubeFuture<'_, HpaStatus>;
    /// The deployment's pods (terminating ones excluded).
    fn pods(&self) -> KubeFuture<'_, Vec<PodState>>;
    /// A local port forwarded to `port` of `pod`, open while the value lives.
    fn port_forward(&self, pod: &str, port: u16) -> KubeFuture<'_, PortForward>;
    /// kwok: the CPU usage kwok reports for `pod` (`None`: back to kwok's idle default).
    fn set_simulated_cpu(&self, pod: &str, millicores: Option<u64>) -> KubeFuture<'_, ()>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub ready: bool,
    pub ip: Option<String>,
    /// The container port named `http` (Tomcat).
    pub http_port: u16,
    /// The pod's CPU request in millicores (what the HPA's utilization is a percentage of).
    pub cpu_request_m: Option<u64>,
}

/// A running port-forward; dropping it ends the forwarding process.
pub struct PortForward {
    pub addr: SocketAddr,
    _child: tokio::process::Child,
}

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    if ctx.target.backend == Backend::Local {
        rec.check(&LOAD_GENERATOR, generator::load_generator(ctx))
            .await;
        rec.skip_rest(Suite::Scaling, "needs Kubernetes (backend local)");
        return;
    }
    rec.skip(&LOAD_GENERATOR, LOAD_GENERATOR_ON_KUBERNETES);
    let Some(kube) = &ctx.target.kubernetes else {
        rec.skip_rest(Suite::Scaling, "needs the target's [kubernetes] section");
        return;
    };
    let ops = kubectl::Kubectl::new(kube);
    let ops: &dyn KubeOps = &ops;

    rec.check(&METRICS_API, async {
        let pods = ops.pods().await?;
        let bound = Duration::from_secs(ctx.target.bounds.prometheus_s);
        let reported = poll(bound, Duration::from_secs(2), || async {
            match ops.pod_metrics().await {
                Ok(names) => {
                    let ours: Vec<&PodState> =
                        pods.iter().filter(|p| names.contains(&p.name)).collect();
                    if !pods.is_empty() && ours.len() == pods.len() {
                        Polled::Done(ours.len())
                    } else {
                        Polled::Pending(format!(
                            "metrics for [{}], deployment pods [{}]",
                            names.join(", "),
                            pods.iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        Ok(Verdict::Pass(format!(
            "metrics.k8s.io reports all {reported} pods of the deployment"
        )))
    })
    .await;

    rec.check(&HPA_METRICS, async {
        let bound = Duration::from_secs(ctx.target.bounds.prometheus_s);
        let metrics = poll(bound, Duration::from_secs(2), || async {
            match ops.hpa().await {
                Ok(hpa) => hpa::metrics_present(&hpa, &kube.deployment),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        Ok(Verdict::Pass(format!("HPA {}: {metrics}", kube.hpa)))
    })
    .await;

    if !ctx.target.disruptive.allowed {
        rec.skip_rest(Suite::Scaling, crate::check::NOT_ALLOWED);
        return;
    }
    under_load(ctx, ops, rec).await;
    rec.fail_rest(
        Suite::Scaling,
        "not checked: the scale-out did not happen (see scaling.scale-out)",
    );
}

/// What the scale-out produced for the later checks.
struct ScaledOut {
    initial: u32,
    /// The new pods, when they became Ready (and, with requests, serve).
    new_pods: Option<Vec<PodState>>,
}

/// Above this share of failed load requests the scale-out proves nothing about a working stack.
const MAX_LOAD_ERROR_SHARE: f64 = 0.05;
/// Below this many load requests the error share is not judged yet.
const MIN_LOAD_REQUESTS: u64 = 50;
/// How often the simulated-CPU driver looks for new pods to load.
const SIMULATED_CPU_INTERVAL: Duration = Duration::from_secs(3);

/// What makes the HPA scale out.
enum Driver {
    /// Requests to engine-rest through the ingress (kind, existing).
    Requests(load::LoadTarget),
    /// kwok: the CPU usage kwok reports for every pod of the deployment; no request is sent
    /// (the pods are simulated).
    SimulatedCpu { millicores: u64, why: String },
}

/// The simulated usage that makes the HPA want its maximum: twice its CPU target of the
/// pods' request.
fn simulated_cpu(hpa: &HpaStatus, pods: &[PodState]) -> Result<(u64, String), String> {
    let target = hpa.cpu_target_utilization.ok_or_else(|| {
        format!(
            "the HPA has no CPU utilization target to simulate load for; {}",
            hpa.summary()
        )
    })?;
    let request = pods
        .iter()
        .find_map(|p| p.cpu_request_m)
        .ok_or_else(|| "the pods request no CPU: utilization cannot be simulated".to_string())?;
    let millicores = request * u64::from(target) * 2 / 100;
    Ok((
        millicores,
        format!(
            "simulated load: kwok reports {millicores}m CPU per pod ({}% of the {request}m request, twice the HPA's {target}% target), set through pod annotation {}; no request was sent (the pods are simulated)",
            target * 2,
            kubectl::CPU_USAGE_ANNOTATION
        ),
    ))
}

/// The disruptive part: the HPA settled at minReplicas, then load (requests through the
/// ingress, or simulated CPU on kwok) until the new pods are Ready and (with requests) serve,
/// with a session probed all along; then the scale-in without load.
async fn under_load(ctx: &Ctx<'_>, ops: &dyn KubeOps, rec: &mut Recorder<'_>) {
    let simulated = ctx.target.backend == Backend::Kwok;
    let settled = async {
        let hpa = ops.hpa().await?;
        // From wherever it is back to minReplicas, as its behavior allows, or the settle bound.
        // A disruptive check before (a replica stopped and replaced) may have left the HPA busy:
        // it sees that load end only a metrics window later.
        let bound = (hpa::scale_down_s(
            &hpa,
            hpa.current_replicas.max(hpa.desired_replicas),
            hpa.min_replicas,
        ) + hpa::METRICS_LAG_S)
            .max(ctx.target.bounds.settle_s);
        let initial = poll(
            Duration::from_secs(bound),
            Duration::from_secs(5),
            || async {
                match ops.hpa().await {
                    Ok(now) => hpa::settled(&now),
                    Err(err) => Polled::Pending(format!("{err:#}")),
                }
            },
        )
        .await
        .map_err(|err| anyhow::anyhow!("before the load: {err:#}"))?;
        let pods = ops.pods().await?;
        Ok::<_, anyhow::Error>((initial, pods))
    };
    let (initial, pods) = match settled.await {
        Ok(found) => found,
        Err(err) => {
            rec.fail_rest(Suite::Scaling, &format!("{err:#}"));
            return;
        }
    };
    let driver = if simulated {
        match ops
            .hpa()
            .await
            .map_err(|e| format!("{e:#}"))
            .and_then(|hpa| simulated_cpu(&hpa, &pods))
        {
            Ok((millicores, why)) => Driver::SimulatedCpu { millicores, why },
            Err(reason) => {
                rec.fail_rest(Suite::Scaling, &format!("no load possible: {reason}"));
                return;
            }
        }
    } else {
        match load::LoadTarget::from_ctx(ctx) {
            Ok(target) => Driver::Requests(target),
            Err(err) => {
                rec.fail_rest(Suite::Scaling, &format!("no load possible: {err:#}"));
                return;
            }
        }
    };
    let webapp = ingress(ctx);
    let login = if simulated {
        None
    } else {
        Some(login_before_load(ctx, &webapp).await)
    };
    // The kubelet's probes count as requests too: what a pod serves is measured against them.
    let baseline = match (&driver, &ctx.target.prometheus) {
        (Driver::Requests(_), Some(prometheus)) => {
            Some(probe_baseline(ctx, &prometheus.url, &prometheus.job).await)
        }
        _ => None,
    };
    // Bounded anyway by the waits it serves, so that a forgotten stop cannot load the stack
    // for long: scale-out, new pods Ready, new pods serving.
    let limit = Duration::from_secs(ctx.target.bounds.scale_out_s.saturating_mul(3) + 60)
        .min(load::MAX_DURATION);
    let stop_load = AtomicBool::new(false);
    let stop_probe = AtomicBool::new(false);
    let live = load::Live::default();
    let old_pods: BTreeSet<String> = pods.into_iter().map(|p| p.name).collect();
    let under_load = async {
        let probe = async {
            match &login {
                Some(Ok(cookies)) => Some(probe_session(ctx, &webapp, cookies, &stop_probe).await),
                _ => None,
            }
        };
        let scale_out = async {
            let scaled =
                scale_out_checks(ctx, ops, rec, &driver, &live, initial, &old_pods, baseline).await;
            stop_probe.store(true, Ordering::Relaxed);
            stop_load.store(true, Ordering::Relaxed);
            scaled
        };
        let (probe, scaled) = tokio::join!(probe, scale_out);
        let scaled = scaled?;
        match &login {
            None => {
                rec.skip(&SESSIONS, SIMULATED_SCALING_SKIPS[1].1);
            }
            Some(login) => {
                rec.check(
                    &SESSIONS,
                    sessions_verdict(
                        ctx,
                        ops,
                        login,
                        probe,
                        scaled.new_pods.as_deref().unwrap_or_default(),
                    ),
                )
                .await;
            }
        }
        Some(scaled.initial)
    };
    let load = async {
        match &driver {
            Driver::Requests(target) => {
                match load::drive(target, limit, load::SCALING_WORKERS, &stop_load, &live).await {
                    Ok(stats) => tracing::info!("scaling load: {stats}"),
                    Err(err) => tracing::warn!("scaling load: {err:#}"),
                }
            }
            Driver::SimulatedCpu { millicores, .. } => {
                simulate_cpu(ops, *millicores, limit, &stop_load, &live).await;
            }
        }
    };
    let ((), initial) = tokio::join!(load, under_load);
    if let Some(initial) = initial {
        rec.check(&SCALE_IN, scale_in(ctx, ops, initial)).await;
    }
}

/// kwok: keeps every pod of the deployment (new ones included) at `millicores` until `stop`,
/// then back at kwok's idle default. Failed annotations count as load errors.
async fn simulate_cpu(
    ops: &dyn KubeOps,
    millicores: u64,
    limit: Duration,
    stop: &AtomicBool,
    live: &load::Live,
) {
    let started = std::time::Instant::now();
    let mut loaded = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        if let Ok(pods) = ops.pods().await {
            for pod in pods {
                if loaded.insert(pod.name.clone()) {
                    let set = ops.set_simulated_cpu(&pod.name, Some(millicores)).await;
                    live.record(set.map_err(|e| format!("{e:#}")));
                }
            }
        }
        tokio::time::sleep(SIMULATED_CPU_INTERVAL).await;
    }
    for pod in &loaded {
        // Pods removed meanwhile cannot be annotated; that is no error of the load.
        if let Err(err) = ops.set_simulated_cpu(pod, None).await {
            tracing::info!("idling {pod}: {err:#}");
        }
    }
}

/// Scale-out and new-pods checks under load; what they found when the deployment scaled out.
#[allow(clippy::too_many_arguments)]
async fn scale_out_checks(
    ctx: &Ctx<'_>,
    ops: &dyn KubeOps,
    rec: &mut Recorder<'_>,
    driver: &Driver,
    live: &load::Live,
    initial: u32,
    old_pods: &BTreeSet<String>,
    baseline: Option<Result<f64>>,
) -> Option<ScaledOut> {
    let mut scaled = false;
    rec.check(&SCALE_OUT, async {
        if let Err(reason) = hpa::before_load(&ops.hpa().await?) {
            return Ok(Verdict::Fail(reason));
        }
        let bound = Duration::from_secs(ctx.target.bounds.scale_out_s);
        let message = poll(bound, Duration::from_secs(5), || async {
            match ops.hpa().await {
                Ok(now) => hpa::scaled_out(&now, initial),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        scaled = true;
        Ok(load_verdict(driver, live, &message))
    })
    .await;
    if !scaled {
        return None;
    }
    let mut new_pods = None;
    rec.check(&NEW_PODS_READY, async {
        let (verdict, pods) = new_pods_ready(ctx, ops, old_pods, driver, baseline).await?;
        new_pods = pods;
        Ok(verdict)
    })
    .await;
    Some(ScaledOut { initial, new_pods })
}

/// The scale-out verdict with the load that caused it; a load with too many errors fails it.
fn load_verdict(driver: &Driver, live: &load::Live, scaled: &str) -> Verdict {
    let (requests, errors, last) = live.snapshot();
    match driver {
        Driver::SimulatedCpu { why, .. } if errors == 0 => {
            Verdict::Pass(format!("{scaled}; {why}"))
        }
        Driver::SimulatedCpu { why, .. } => Verdict::Fail(format!(
            "{scaled}; {why}; but {errors} of {requests} annotations failed, last: {}",
            last.unwrap_or_default()
        )),
        Driver::Requests(_) => {
            let share = if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            };
            let figures = format!(
                "load through the ingress so far: {requests} requests, {errors} errors ({:.1} %){}",
                share * 100.0,
                last.map(|l| format!(", last error: {l}"))
                    .unwrap_or_default()
            );
            if requests >= MIN_LOAD_REQUESTS && share > MAX_LOAD_ERROR_SHARE {
                Verdict::Fail(format!(
                    "{scaled}; but the load failed too often (more than {:.0} %): {figures}",
                    MAX_LOAD_ERROR_SHARE * 100.0
                ))
            } else if requests < MIN_LOAD_REQUESTS {
                Verdict::Fail(format!(
                    "{scaled}; but too little load was answered to credit it ({figures})"
                ))
            } else {
                Verdict::Pass(format!("{scaled}; {figures}"))
            }
        }
    }
}

/// The kubelet-probe-only request rate of the busiest replica before the load, per second.
async fn probe_baseline(ctx: &Ctx<'_>, prometheus: &str, job: &str) -> Result<f64> {
    let query = rate_query(ctx.target.metrics.request_counter(), job);
    let rates = instance_rates(ctx, prometheus, &query).await?;
    if rates.is_empty() {
        anyhow::bail!("Prometheus has no request rate of job {job} before the load");
    }
    Ok(rates.into_iter().map(|(_, rate)| rate).fold(0.0, f64::max))
}

/// Each instance's request rate, by the target's request counter (its metrics preset's or its
/// own name: Tomcat's for jmx_exporter, `http_server_requests_seconds_count` for Micrometer).
fn rate_query(counter: &str, job: &str) -> String {
    format!("sum by (instance) (rate({counter}{{job=\"{job}\"}}[1m]))")
}

/// Requests per second that count as traffic from the ingress: well above the probes.
fn serving_threshold(baseline: f64) -> f64 {
    baseline * 2.0 + 0.5
}

/// The new pods Ready and (with requests) serving; with them when both hold.
async fn new_pods_ready(
    ctx: &Ctx<'_>,
    ops: &dyn KubeOps,
    old_pods: &BTreeSet<String>,
    driver: &Driver,
    baseline: Option<Result<f64>>,
) -> Result<(Verdict, Option<Vec<PodState>>)> {
    let bound = Duration::from_secs(ctx.target.bounds.scale_out_s);
    let new_pods = poll(bound, Duration::from_secs(3), || async {
        match ops.pods().await {
            Ok(pods) => hpa::new_pods_ready(old_pods, &pods),
            Err(err) => Polled::Pending(format!("{err:#}")),
        }
    })
    .await?;
    let names: Vec<&str> = new_pods.iter().map(|p| p.name.as_str()).collect();
    if let Driver::SimulatedCpu { .. } = driver {
        return Ok((
            Verdict::Skip(format!(
                "new pods Ready: {}; {}",
                names.join(", "),
                SIMULATED_SCALING_SKIPS[0].1
            )),
            Some(new_pods),
        ));
    }
    let (Some(prometheus), Some(baseline)) = (&ctx.target.prometheus, baseline) else {
        return Ok((
            Verdict::Fail(format!(
                "new pods Ready: {}; cannot show that they take traffic without the [prometheus] section",
                names.join(", ")
            )),
            None,
        ));
    };
    let baseline = match baseline {
        Ok(rate) => rate,
        Err(err) => {
            return Ok((
                Verdict::Fail(format!(
                    "new pods Ready: {}; no probe baseline to tell traffic from kubelet probes: {err:#}",
                    names.join(", ")
                )),
                None,
            ))
        }
    };
    let threshold = serving_threshold(baseline);
    // Traffic proof: the new pods' Tomcat request rate (Prometheus labels them by pod IP) well
    // above what the kubelet's probes alone caused on the busiest pod before the load.
    let query = rate_query(ctx.target.metrics.request_counter(), &prometheus.job);
    let ips: Vec<String> = new_pods.iter().filter_map(|p| p.ip.clone()).collect();
    poll(
        Duration::from_secs(ctx.target.bounds.scale_out_s),
        Duration::from_secs(5),
        || async {
            match instance_rates(ctx, &prometheus.url, &query).await {
                Ok(rates) => serving(&rates, &ips, threshold),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        },
    )
    .await?;
    let verdict = Verdict::Pass(format!(
        "new pods Ready and serving ingress traffic (above {threshold:.2} requests/s; the probes alone made {baseline:.2}/s before the load): {}",
        names.join(", ")
    ));
    Ok((verdict, Some(new_pods)))
}

/// Done when every pod IP's instance serves above `threshold` requests per second.
fn serving(rates: &[(String, f64)], ips: &[String], threshold: f64) -> Polled<()> {
    let rate_of = |ip: &String| {
        rates
            .iter()
            .find(|(instance, _)| instance.starts_with(&format!("{ip}:")))
            .map(|(_, rate)| *rate)
    };
    let idle: Vec<String> = ips
        .iter()
        .filter(|ip| rate_of(ip).is_none_or(|rate| rate <= threshold))
        .map(|ip| format!("{ip} at {:.2}/s", rate_of(ip).unwrap_or(0.0)))
        .collect();
    if idle.is_empty() && !ips.is_empty() {
        Polled::Done(())
    } else {
        Polled::Pending(format!(
            "new pods not yet above {threshold:.2} requests/s: [{}]",
            idle.join(", ")
        ))
    }
}

async fn instance_rates(
    ctx: &Ctx<'_>,
    prometheus: &str,
    query: &str,
) -> Result<Vec<(String, f64)>> {
    let url = format!("{}/api/v1/query", prometheus.trim_end_matches('/'));
    let text = ctx
        .http
        .direct
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(prom::parse_vector(&text)?
        .into_iter()
        .filter_map(|(labels, value)| Some((labels.get("instance")?.clone(), value)))
        .collect())
}

/// The session the sessions check follows through the scale-out: logged in through the
/// ingress before any load, with the affinity cookie in sticky mode.
async fn login_before_load(ctx: &Ctx<'_>, webapp: &Webapp<'_>) -> Result<Cookies> {
    let mut cookies = Cookies::default();
    webapp
        .login(&mut cookies, ctx.username(), ctx.password()?)
        .await?;
    let affinity = &ctx.target.sessions.affinity_cookie;
    if ctx.target.sessions.mode == SessionMode::Sticky && cookies.get(affinity).is_none() {
        anyhow::bail!(
            "sticky mode: the login through the ingress set no affinity cookie `{affinity}` (cookies: {})",
            cookies.names().join(", ")
        );
    }
    Ok(cookies)
}

/// Who-am-I requests through the ingress, with every cookie of the login (the affinity
/// cookie included), until `stop`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Probe {
    requests: u32,
    /// Answers that did not know the session: what the check is about.
    misses: Vec<String>,
    /// Requests that got no HTTP answer (timeouts, refused connections under load): reported,
    /// but they say nothing about the session.
    errors: Vec<String>,
}

async fn probe_session(
    ctx: &Ctx<'_>,
    webapp: &Webapp<'_>,
    cookies: &Cookies,
    stop: &AtomicBool,
) -> Probe {
    let mut probe = Probe::default();
    let started = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        probe.requests += 1;
        let at = started.elapsed().as_secs();
        match webapp.whoami(cookies).await {
            Ok(Some(user)) if user == ctx.username() => {}
            Ok(Some(other)) => probe
                .misses
                .push(format!("at {at} s: logged in as `{other}`")),
            Ok(None) => probe.misses.push(format!("at {at} s: not logged in (404)")),
            Err(err) if no_answer(&err) => probe.errors.push(format!("at {at} s: {err:#}")),
            // 401, a redirect to the login, a 5xx: an answer, and the session is not in it.
            Err(err) => probe.misses.push(format!("at {at} s: {err:#}")),
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    probe
}

/// Whether a failed probe got no HTTP answer at all (timeout, refused, reset): only those are
/// load, anything answered without the session is a lost session.
fn no_answer(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<reqwest::Error>())
}

/// The session check: every probe found the session; in shared mode it is also valid on a
/// pod that did not exist when it was created.
async fn sessions_verdict(
    ctx: &Ctx<'_>,
    ops: &dyn KubeOps,
    login: &Result<Cookies>,
    probe: Option<Probe>,
    new_pods: &[PodState],
) -> Outcome {
    let cookies = match login {
        Ok(cookies) => cookies,
        Err(err) => anyhow::bail!("the login before the load failed: {err:#}"),
    };
    let probe = probe.unwrap_or_default();
    let mode = ctx.target.sessions.mode;
    let on_new_pod = match (mode, new_pods.first()) {
        (SessionMode::Shared, Some(pod)) => {
            let forward = ops.port_forward(&pod.name, pod.http_port).await?;
            let webapp = Webapp {
                label: pod.name.clone(),
                client: &ctx.http.direct,
                base: format!("http://{}{}", forward.addr, ctx.target.ingress.webapp_path),
            };
            let user = webapp.whoami(&session_only(cookies)).await?;
            Some((pod.name.as_str(), user))
        }
        _ => None,
    };
    Ok(session_decision(
        mode,
        ctx.username(),
        &probe,
        on_new_pod
            .as_ref()
            .map(|(pod, user)| (*pod, user.as_deref())),
    ))
}

/// The decision of the session check, over what the probes and the new pod said.
fn session_decision(
    mode: SessionMode,
    username: &str,
    probe: &Probe,
    on_new_pod: Option<(&str, Option<&str>)>,
) -> Verdict {
    let answered = probe.requests
        - u32::try_from(probe.errors.len())
            .unwrap_or(u32::MAX)
            .min(probe.requests);
    if answered == 0 {
        return Verdict::Fail(format!(
            "no session probe through the ingress was answered during the scale-out ({} sent; {})",
            probe.requests,
            probe.errors.last().map_or("none ran", String::as_str)
        ));
    }
    let unanswered_share = probe.errors.len() as f64 / f64::from(probe.requests.max(1));
    if unanswered_share > MAX_PROBE_ERROR_SHARE {
        return Verdict::Fail(format!(
            "{} of {} session probes through the ingress got no answer during the scale-out (more than {:.0} %), last: {}",
            probe.errors.len(),
            probe.requests,
            MAX_PROBE_ERROR_SHARE * 100.0,
            probe.errors.last().map_or("-", String::as_str)
        ));
    }
    if !probe.misses.is_empty() {
        let hint = match mode {
            SessionMode::Sticky => " (does the ingress re-balance sessions when pods are added? ingress-nginx needs affinity-mode: persistent)",
            SessionMode::Shared => " (is the session store shared by every pod?)",
        };
        return Verdict::Fail(format!(
            "expected every request through the ingress during the scale-out to find the session; {} of {answered} did not: {}{hint}",
            probe.misses.len(),
            probe.misses.join("; ")
        ));
    }
    let unanswered = match probe.errors.as_slice() {
        [] => String::new(),
        [.., last] => format!(
            " ({} more got no answer under load, last: {last})",
            probe.errors.len()
        ),
    };
    let through = format!(
        "{answered} of {answered} requests through the ingress during the scale-out found the session{unanswered}"
    );
    match (mode, on_new_pod) {
        (SessionMode::Sticky, _) => Verdict::Pass(format!("{through} (with its affinity cookie)")),
        (SessionMode::Shared, Some((pod, Some(user)))) if user == username => {
            Verdict::Pass(format!("{through}; valid on the new pod {pod} too"))
        }
        (SessionMode::Shared, Some((pod, user))) => Verdict::Fail(format!(
            "{through}, but on the new pod {pod} it is {}",
            user.map_or("unknown (404)".to_string(), |u| format!(
                "logged in as `{u}`"
            ))
        )),
        (SessionMode::Shared, None) => Verdict::Fail(format!(
            "{through}; no new pod Ready and serving to check it on (see {})",
            NEW_PODS_READY.id
        )),
    }
}

async fn scale_in(ctx: &Ctx<'_>, ops: &dyn KubeOps, initial: u32) -> Outcome {
    let bound_s = ctx.target.bounds.scale_in_s;
    if let Err(reason) = hpa::scale_in_fits(&ops.hpa().await?, initial, bound_s) {
        return Ok(Verdict::Fail(reason));
    }
    let message = poll(
        Duration::from_secs(bound_s),
        Duration::from_secs(10),
        || async {
            match ops.hpa().await {
                Ok(now) => hpa::scaled_in(&now, initial),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        },
    )
    .await?;
    Ok(Verdict::Pass(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(requests: u32, misses: &[&str]) -> Probe {
        Probe {
            requests,
            misses: misses.iter().map(|m| m.to_string()).collect(),
            errors: Vec::new(),
        }
    }

    fn message(verdict: &Verdict) -> &str {
        match verdict {
            Verdict::Pass(m) | Verdict::Fail(m) | Verdict::Skip(m) => m,
        }
    }

    /// Only a request without an HTTP answer is load; a new pod answering 401, a redirect to
    /// the login or a 5xx has lost the session.
    #[tokio::test]
    async fn only_a_missing_answer_is_no_answer() {
        use anyhow::Context;
        let refused = reqwest::Client::new()
            .get("http://127.0.0.1:1/camunda/api/admin/auth/user/default")
            .send()
            .await
            .map(|_| ())
            .context("ingress: GET …/auth/user/default");
        assert!(no_answer(&refused.unwrap_err()));
        for status in [401, 302, 500, 503] {
            let answered = anyhow::anyhow!(
                "ingress: GET …/auth/user/default: expected 200 (logged in) or 404 (not), got {status}"
            );
            assert!(!no_answer(&answered), "{status}");
        }
    }

    #[test]
    fn sticky_sessions_must_survive_every_request() {
        let clean = session_decision(SessionMode::Sticky, "conformance", &probe(40, &[]), None);
        assert!(matches!(clean, Verdict::Pass(_)), "{clean:?}");
        assert!(message(&clean).starts_with("40 of 40 requests"));

        let moved = session_decision(
            SessionMode::Sticky,
            "conformance",
            &probe(40, &["at 31 s: not logged in (404)"]),
            None,
        );
        assert!(matches!(moved, Verdict::Fail(_)), "{moved:?}");
        assert!(message(&moved).contains("1 of 40 did not: at 31 s"));
        assert!(message(&moved).contains("affinity-mode: persistent"));

        let none = session_decision(SessionMode::Sticky, "conformance", &probe(0, &[]), None);
        assert!(matches!(none, Verdict::Fail(_)));

        // A few requests without an answer (under load) are reported, not counted as misses.
        let mut slow = probe(20, &[]);
        slow.errors = vec!["at 5 s: timed out".into(), "at 9 s: refused".into()];
        let verdict = session_decision(SessionMode::Sticky, "conformance", &slow, None);
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
        assert!(message(&verdict).starts_with("18 of 18 requests"));
        assert!(
            message(&verdict).contains("2 more got no answer under load, last: at 9 s: refused")
        );
        // More than a tenth unanswered: the check cannot vouch for the session.
        let mut flaky = probe(10, &[]);
        flaky.errors = vec!["at 5 s: timed out".into(), "at 9 s: refused".into()];
        let verdict = session_decision(SessionMode::Sticky, "conformance", &flaky, None);
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        assert!(
            message(&verdict).starts_with("2 of 10 session probes"),
            "{verdict:?}"
        );
        let mut silent = probe(2, &[]);
        silent.errors = vec!["at 0 s: refused".into(), "at 1 s: refused".into()];
        let verdict = session_decision(SessionMode::Sticky, "conformance", &silent, None);
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        assert!(message(&verdict).contains("at 1 s: refused"));
    }

    fn verdict_is_pass(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Pass(_))
    }

    #[test]
    fn simulated_load_is_twice_the_cpu_target_and_says_so() {
        let hpa = HpaStatus {
            cpu_target_utilization: Some(70),
            ..HpaStatus::default()
        };
        let pods = [PodState {
            name: "camunda-a".into(),
            ready: true,
            ip: None,
            http_port: 8080,
            cpu_request_m: Some(500),
        }];
        let (millicores, why) = simulated_cpu(&hpa, &pods).unwrap();
        assert_eq!(millicores, 700);
        assert!(why.contains("no request was sent"), "{why}");
        assert!(simulated_cpu(&HpaStatus::default(), &pods)
            .unwrap_err()
            .contains("no CPU utilization target"));
        let mut no_request = pods.clone();
        no_request[0].cpu_request_m = None;
        assert!(simulated_cpu(&hpa, &no_request).is_err());

        let driver = Driver::SimulatedCpu { millicores, why };
        let live = load::Live::default();
        live.record(Ok(()));
        let verdict = load_verdict(&driver, &live, "scaled out from 2 to 4 replicas");
        assert!(verdict_is_pass(&verdict), "{verdict:?}");
        assert!(message(&verdict).contains("simulated load: kwok reports 700m"));
        live.record(Err("pods \"x\" not found".into()));
        assert!(!verdict_is_pass(&load_verdict(
            &driver,
            &live,
            "scaled out"
        )));
    }

    #[test]
    fn request_load_must_be_answered_to_credit_the_scale_out() {
        let driver = Driver::Requests(load::LoadTarget::loopback("http://127.0.0.1:9/").unwrap());
        let live = load::Live::default();
        for _ in 0..10 {
            live.record(Ok(()));
        }
        let few = load_verdict(&driver, &live, "scaled out");
        assert!(message(&few).contains("too little load"), "{few:?}");
        for _ in 0..90 {
            live.record(Ok(()));
        }
        let good = load_verdict(&driver, &live, "scaled out");
        assert!(verdict_is_pass(&good), "{good:?}");
        assert!(message(&good).contains("100 requests, 0 errors (0.0 %)"));
        for _ in 0..10 {
            live.record(Err("503 Service Unavailable".into()));
        }
        let bad = load_verdict(&driver, &live, "scaled out");
        assert!(!verdict_is_pass(&bad), "{bad:?}");
        assert!(message(&bad).contains("110 requests, 10 errors (9.1 %), last error: 503"));
    }

    #[test]
    fn serving_means_well_above_the_probe_baseline() {
        let threshold = serving_threshold(0.2);
        let ips = ["10.244.0.9".to_string()];
        let probes_only = [("10.244.0.9:9404".to_string(), 0.3)];
        assert!(matches!(
            serving(&probes_only, &ips, threshold),
            Polled::Pending(seen) if seen.contains("10.244.0.9 at 0.30/s")
        ));
        let loaded = [("10.244.0.9:9404".to_string(), 12.0)];
        assert!(matches!(
            serving(&loaded, &ips, threshold),
            Polled::Done(())
        ));
        assert!(matches!(
            serving(&loaded, &[], threshold),
            Polled::Pending(_)
        ));
    }

    #[test]
    fn shared_sessions_must_also_be_valid_on_a_new_pod() {
        let ok = session_decision(
            SessionMode::Shared,
            "conformance",
            &probe(12, &[]),
            Some(("camunda-x", Some("conformance"))),
        );
        assert!(matches!(ok, Verdict::Pass(_)), "{ok:?}");
        assert!(message(&ok).ends_with("valid on the new pod camunda-x too"));

        let unknown = session_decision(
            SessionMode::Shared,
            "conformance",
            &probe(12, &[]),
            Some(("camunda-x", None)),
        );
        assert!(message(&unknown).ends_with("on the new pod camunda-x it is unknown (404)"));
        assert!(matches!(unknown, Verdict::Fail(_)));

        let nowhere = session_decision(SessionMode::Shared, "conformance", &probe(12, &[]), None);
        assert!(matches!(nowhere, Verdict::Fail(_)));

        let missed = session_decision(
            SessionMode::Shared,
            "conformance",
            &probe(12, &["at 3 s: not logged in (404)"]),
            Some(("camunda-x", Some("conformance"))),
        );
        assert!(message(&missed).contains("session store"), "{missed:?}");
    }
}
