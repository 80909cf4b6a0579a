//! scaling (Kubernetes only): the metrics API answers, the HPA reports current metrics, load
//! through the ingress scales the deployment out within a bound, the new pods become Ready and
//! take traffic, and it scales back in after the load.
//!
//! The cluster is reached through [`KubeOps`]; [`kubectl::Kubectl`] implements it with kubectl
//! (the kind backend's tool) and parses the API objects itself.

mod kubectl;
mod load;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Polled};
use crate::prom;
use crate::target::Backend;
use crate::Suite;

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
const SCALE_IN: CheckInfo = check(
    "scaling.scale-in",
    "after the load the HPA scales back in within the bound",
    true,
);

pub(crate) const CHECKS: &[CheckInfo] = &[
    METRICS_API,
    HPA_METRICS,
    SCALE_OUT,
    NEW_PODS_READY,
    SCALE_IN,
];

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
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HpaStatus {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub current_replicas: u32,
    pub desired_replicas: u32,
    /// Metrics with a current value, e.g. `cpu 37% (target 50%)`.
    pub current_metrics: Vec<String>,
    /// `Type=Status (reason)` of each condition, for messages.
    pub conditions: Vec<String>,
}

impl HpaStatus {
    fn summary(&self) -> String {
        format!(
            "replicas {} (desired {}, min {}, max {}); metrics [{}]; conditions [{}]",
            self.current_replicas,
            self.desired_replicas,
            self.min_replicas,
            self.max_replicas,
            self.current_metrics.join(", "),
            self.conditions.join(", ")
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub ready: bool,
    pub ip: Option<String>,
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
        let hpa = poll(bound, Duration::from_secs(2), || async {
            match ops.hpa().await {
                Ok(hpa) if !hpa.current_metrics.is_empty() => Polled::Done(hpa),
                Ok(hpa) => Polled::Pending(hpa.summary()),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        Ok(Verdict::Pass(format!(
            "HPA {}: {}",
            kube.hpa,
            hpa.summary()
        )))
    })
    .await;

    if !ctx.target.disruptive.allowed {
        rec.skip_rest(Suite::Scaling, crate::check::NOT_ALLOWED);
        return;
    }
    let stop_load = AtomicBool::new(false);
    let (load_report, ()) = tokio::join!(load::generate(ctx, &stop_load), async {
        let scaled = scale_out_checks(ctx, ops, rec).await;
        stop_load.store(true, Ordering::Relaxed);
        if let Some(initial) = scaled {
            rec.check(&SCALE_IN, scale_in(ctx, ops, initial)).await;
        }
    });
    tracing::info!("scaling load: {load_report}");
    rec.fail_rest(
        Suite::Scaling,
        "not checked: the scale-out did not happen (see scaling.scale-out)",
    );
}

/// Scale-out and new-pods checks under load; the replica count before the load when the
/// deployment scaled out.
async fn scale_out_checks(ctx: &Ctx<'_>, ops: &dyn KubeOps, rec: &mut Recorder<'_>) -> Option<u32> {
    let mut before: Option<(u32, BTreeSet<String>)> = None;
    rec.check(&SCALE_OUT, async {
        let hpa = ops.hpa().await?;
        let pods: BTreeSet<String> = ops.pods().await?.into_iter().map(|p| p.name).collect();
        if hpa.current_replicas >= hpa.max_replicas {
            return Ok(Verdict::Fail(format!(
                "the HPA is already at its maximum before the load: {}",
                hpa.summary()
            )));
        }
        let initial = hpa.current_replicas;
        let bound = Duration::from_secs(ctx.target.bounds.scale_out_s);
        let scaled = poll(bound, Duration::from_secs(5), || async {
            match ops.hpa().await {
                Ok(now) if now.desired_replicas > initial => Polled::Done(now),
                Ok(now) => Polled::Pending(now.summary()),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        })
        .await?;
        before = Some((initial, pods));
        Ok(Verdict::Pass(format!(
            "scaled out from {initial} to {} desired replicas: {}",
            scaled.desired_replicas,
            scaled.summary()
        )))
    })
    .await;
    let (initial, old_pods) = before?;

    rec.check(&NEW_PODS_READY, new_pods_ready(ctx, ops, &old_pods))
        .await;
    Some(initial)
}

async fn new_pods_ready(ctx: &Ctx<'_>, ops: &dyn KubeOps, old_pods: &BTreeSet<String>) -> Outcome {
    let bound = Duration::from_secs(ctx.target.bounds.scale_out_s);
    let new_pods = poll(bound, Duration::from_secs(3), || async {
        match ops.pods().await {
            Ok(pods) => {
                let new: Vec<PodState> = pods
                    .into_iter()
                    .filter(|p| !old_pods.contains(&p.name))
                    .collect();
                if !new.is_empty() && new.iter().all(|p| p.ready) {
                    Polled::Done(new)
                } else {
                    Polled::Pending(format!(
                        "new pods: [{}]",
                        new.iter()
                            .map(|p| format!("{} ready={}", p.name, p.ready))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
            Err(err) => Polled::Pending(format!("{err:#}")),
        }
    })
    .await?;
    let names: Vec<&str> = new_pods.iter().map(|p| p.name.as_str()).collect();
    let Some(prometheus) = &ctx.target.prometheus else {
        return Ok(Verdict::Fail(format!(
            "new pods Ready: {}; cannot show that they take traffic without the [prometheus] section",
            names.join(", ")
        )));
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
    Ok(Verdict::Pass(format!(
        "new pods Ready and serving requests: {}",
        names.join(", ")
    )))
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

async fn scale_in(ctx: &Ctx<'_>, ops: &dyn KubeOps, initial: u32) -> Outcome {
    let bound = Duration::from_secs(ctx.target.bounds.scale_in_s);
    let hpa = poll(bound, Duration::from_secs(10), || async {
        match ops.hpa().await {
            Ok(hpa) if hpa.current_replicas <= initial.max(hpa.min_replicas) => Polled::Done(hpa),
            Ok(hpa) => Polled::Pending(hpa.summary()),
            Err(err) => Polled::Pending(format!("{err:#}")),
        }
    })
    .await?;
    Ok(Verdict::Pass(format!(
        "scaled back in to {} replicas",
        hpa.current_replicas
    )))
}
