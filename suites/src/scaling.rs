//! scaling (Kubernetes only): the metrics API answers, the HPA reports current metrics, load
//! through the ingress scales the deployment out within a bound, the new pods become Ready and
//! take traffic, sessions behave as their mode promises during the scale-out, and it scales
//! back in after the load.
//!
//! The cluster is reached through [`KubeOps`]; [`kubectl::Kubectl`] implements it with kubectl
//! (the kind backend's tool) and parses the API objects itself. The decisions over those
//! objects are the pure functions of [`hpa`].

mod hpa;
mod kubectl;
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
    METRICS_API,
    HPA_METRICS,
    SCALE_OUT,
    NEW_PODS_READY,
    SESSIONS,
    SCALE_IN,
];

/// Between two session probes through the ingress during the scale-out.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub ready: bool,
    pub ip: Option<String>,
    /// The container port named `http` (Tomcat).
    pub http_port: u16,
}

/// A running port-forward; dropping it ends the forwarding process.
pub struct PortForward {
    pub addr: SocketAddr,
    _child: tokio::process::Child,
}

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    if ctx.target.backend == Backend::Local {
        rec.skip_rest(Suite::Scaling, "needs Kubernetes (backend local)");
        return;
    }
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
                Ok(hpa) => hpa::metrics_present(&hpa),
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
    /// The new pods, when they became Ready and serve.
    new_pods: Option<Vec<PodState>>,
}

/// The disruptive part: a session logged in first, then load until the new pods serve, with
/// the session probed all along; then the scale-in without load.
async fn under_load(ctx: &Ctx<'_>, ops: &dyn KubeOps, rec: &mut Recorder<'_>) {
    let load_target = match load::LoadTarget::from_ctx(ctx) {
        Ok(target) => target,
        Err(err) => {
            rec.fail_rest(Suite::Scaling, &format!("no load possible: {err:#}"));
            return;
        }
    };
    let webapp = ingress(ctx);
    let login = login_before_load(ctx, &webapp).await;
    // Bounded anyway by the waits it serves, so that a forgotten stop cannot load the stack
    // for long: scale-out, new pods Ready, new pods serving.
    let limit = Duration::from_secs(ctx.target.bounds.scale_out_s.saturating_mul(3) + 60)
        .min(load::MAX_DURATION);
    let stop_load = AtomicBool::new(false);
    let stop_probe = AtomicBool::new(false);
    let under_load = async {
        let probe = async {
            match &login {
                Ok(cookies) => Some(probe_session(ctx, &webapp, cookies, &stop_probe).await),
                Err(_) => None,
            }
        };
        let scale_out = async {
            let scaled = scale_out_checks(ctx, ops, rec).await;
            stop_probe.store(true, Ordering::Relaxed);
            stop_load.store(true, Ordering::Relaxed);
            scaled
        };
        let (probe, scaled) = tokio::join!(probe, scale_out);
        let scaled = scaled?;
        rec.check(
            &SESSIONS,
            sessions_verdict(
                ctx,
                ops,
                &login,
                probe,
                scaled.new_pods.as_deref().unwrap_or_default(),
            ),
        )
        .await;
        Some(scaled.initial)
    };
    let (stats, initial) = tokio::join!(
        load::drive(&load_target, limit, load::SCALING_WORKERS, &stop_load),
        under_load
    );
    match stats {
        Ok(stats) => tracing::info!("scaling load: {stats}"),
        Err(err) => tracing::warn!("scaling load: {err:#}"),
    }
    if let Some(initial) = initial {
        rec.check(&SCALE_IN, scale_in(ctx, ops, initial)).await;
    }
}

/// Scale-out and new-pods checks under load; what they found when the deployment scaled out.
async fn scale_out_checks(
    ctx: &Ctx<'_>,
    ops: &dyn KubeOps,
    rec: &mut Recorder<'_>,
) -> Option<ScaledOut> {
    let mut before: Option<(u32, BTreeSet<String>)> = None;
    rec.check(&SCALE_OUT, async {
        let initial = match hpa::before_load(&ops.hpa().await?) {
            Ok(initial) => initial,
            Err(reason) => return Ok(Verdict::Fail(reason)),
        };
        let pods: BTreeSet<String> = ops.pods().await?.into_iter().map(|p| p.name).collect();
        let bound = Duration::from_secs(ctx.target.bounds.scale_out_s);
        let message = poll(bound, Duration::from_secs(5), || async {
            match ops.hpa().await {
                Ok(now) => hpa::scaled_out(&now, initial),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        before = Some((initial, pods));
        Ok(Verdict::Pass(message))
    })
    .await;
    let (initial, old_pods) = before?;

    let mut new_pods = None;
    rec.check(&NEW_PODS_READY, async {
        let (verdict, pods) = new_pods_ready(ctx, ops, &old_pods).await?;
        new_pods = pods;
        Ok(verdict)
    })
    .await;
    Some(ScaledOut { initial, new_pods })
}

/// The new pods Ready and serving; with them when both hold.
async fn new_pods_ready(
    ctx: &Ctx<'_>,
    ops: &dyn KubeOps,
    old_pods: &BTreeSet<String>,
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
    let Some(prometheus) = &ctx.target.prometheus else {
        return Ok((
            Verdict::Fail(format!(
                "new pods Ready: {}; cannot show that they take traffic without the [prometheus] section",
                names.join(", ")
            )),
            None,
        ));
    };
    // Traffic proof: the new pods' Tomcat request counters grow (Prometheus labels them by pod IP).
    let query = format!(
        "sum by (instance) (rate(tomcat_requestcount_total{{job=\"{}\"}}[1m])) > 0",
        prometheus.job
    );
    let ips: Vec<String> = new_pods.iter().filter_map(|p| p.ip.clone()).collect();
    poll(
        Duration::from_secs(ctx.target.bounds.scale_out_s),
        Duration::from_secs(5),
        || async {
            match serving_instances(ctx, &prometheus.url, &query).await {
                Ok(instances) => {
                    let idle: Vec<&String> = ips
                        .iter()
                        .filter(|ip| !instances.iter().any(|i| i.starts_with(&format!("{ip}:"))))
                        .collect();
                    if idle.is_empty() && !ips.is_empty() {
                        Polled::Done(())
                    } else {
                        Polled::Pending(format!(
                            "instances with requests: [{}]; new pod IPs: [{}]",
                            instances.join(", "),
                            ips.join(", ")
                        ))
                    }
                }
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        },
    )
    .await?;
    let verdict = Verdict::Pass(format!(
        "new pods Ready and serving requests: {}",
        names.join(", ")
    ));
    Ok((verdict, Some(new_pods)))
}

async fn serving_instances(ctx: &Ctx<'_>, prometheus: &str, query: &str) -> Result<Vec<String>> {
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
        .filter_map(|(labels, _)| labels.get("instance").cloned())
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
    /// Requests that got no answer about the session (timeouts, 5xx under load): reported,
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
            Err(err) => probe.errors.push(format!("at {at} s: {err:#}")),
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    probe
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

        // Requests without an answer (under load) are reported, not counted as misses.
        let mut slow = probe(10, &[]);
        slow.errors = vec!["at 5 s: timed out".into(), "at 9 s: 503".into()];
        let verdict = session_decision(SessionMode::Sticky, "conformance", &slow, None);
        assert!(matches!(verdict, Verdict::Pass(_)), "{verdict:?}");
        assert!(message(&verdict).starts_with("8 of 8 requests"));
        assert!(message(&verdict).contains("2 more got no answer under load, last: at 9 s: 503"));
        let mut silent = probe(2, &[]);
        silent.errors = vec!["at 0 s: refused".into(), "at 1 s: refused".into()];
        let verdict = session_decision(SessionMode::Sticky, "conformance", &silent, None);
        assert!(matches!(verdict, Verdict::Fail(_)), "{verdict:?}");
        assert!(message(&verdict).contains("at 1 s: refused"));
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
