//! The HPA and pod decisions of the scaling suite, as pure functions over autoscaling/v2
//! HorizontalPodAutoscaler objects and pod lists as the API server returns them. Each decision
//! is a [`Polled`]: done, or not yet with what was seen (the message a timeout shows).

use std::collections::BTreeSet;

use serde_json::Value;

use super::PodState;
use crate::http::Polled;

/// The scale-down stabilization window when the HPA sets none (Kubernetes' default).
const DEFAULT_SCALE_DOWN_WINDOW_S: u64 = 300;
/// Kubernetes' default scale-down policy: up to 100 % of the pods per 15 s period.
const DEFAULT_SCALE_DOWN_POLICY: ScalePolicy = ScalePolicy {
    percent: true,
    value: 100,
    period_s: 15,
};
/// The HPA controller's default sync period: a decision takes up to one period to show.
const HPA_SYNC_S: u64 = 15;

/// An autoscaling/v2 HPA, reduced to what the suite decides on and reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HpaStatus {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub current_replicas: u32,
    pub desired_replicas: u32,
    /// Metrics with a current value, e.g. `cpu 37% (target 50%)`.
    pub current_metrics: Vec<String>,
    /// Metrics of the spec without a current value (one that never resolves leaves the HPA
    /// deciding on the others only).
    pub unresolved_metrics: Vec<String>,
    pub conditions: Vec<HpaCondition>,
    /// `spec.behavior.scaleDown.stabilizationWindowSeconds`, defaulted as the controller does.
    pub scale_down_window_s: u64,
    /// `spec.behavior.scaleDown.policies`, defaulted as the API server does.
    pub scale_down_policies: Vec<ScalePolicy>,
    /// `spec.behavior.scaleDown.selectPolicy` is `Min` (default `Max`).
    pub scale_down_select_min: bool,
    /// The target of the `cpu` Resource metric in percent of the request, if there is one.
    pub cpu_target_utilization: Option<u32>,
    /// `spec.scaleTargetRef` as `Kind/name`.
    pub scale_target: String,
}

/// One HPA scaling policy: at most `value` pods (or percent of them) per `period_s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalePolicy {
    pub percent: bool,
    pub value: u32,
    pub period_s: u64,
}

impl ScalePolicy {
    /// Pods this policy lets the controller remove per period when `current` run (at least one).
    fn pods_per_period(&self, current: u32) -> u32 {
        let pods = if self.percent {
            (u64::from(current) * u64::from(self.value)).div_ceil(100)
        } else {
            u64::from(self.value)
        };
        u32::try_from(pods).unwrap_or(u32::MAX).max(1)
    }
}

/// One of `status.conditions`: AbleToScale, ScalingActive, ScalingLimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HpaCondition {
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl HpaCondition {
    fn describe(&self) -> String {
        format!(
            "{}={} ({}): {}",
            self.kind, self.status, self.reason, self.message
        )
    }
}

impl HpaStatus {
    /// Reads an autoscaling/v2 HorizontalPodAutoscaler object. Missing fields read as the API's
    /// defaults (minReplicas 1) or zero, so a fresh HPA without status is still a value.
    pub fn from_api(hpa: &Value) -> Self {
        let number = |v: &Value| u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
        let targets: Vec<(String, String)> = hpa["spec"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| metric_parts(m, "target"))
            .collect();
        let current: Vec<(String, String)> = hpa["status"]["currentMetrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| metric_parts(m, "current"))
            .collect();
        let unresolved_metrics = targets
            .iter()
            .filter(|(name, _)| !current.iter().any(|(n, _)| n == name))
            .map(|(name, _)| name.clone())
            .collect();
        let current_metrics = current
            .into_iter()
            .map(|(name, current)| {
                let target = targets
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| format!(" (target {t})"))
                    .unwrap_or_default();
                format!("{name} {current}{target}")
            })
            .collect();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let conditions = hpa["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| HpaCondition {
                kind: text(&c["type"]),
                status: text(&c["status"]),
                reason: text(&c["reason"]),
                message: text(&c["message"]),
            })
            .collect();
        let min = &hpa["spec"]["minReplicas"];
        let scale_down = &hpa["spec"]["behavior"]["scaleDown"];
        let mut scale_down_policies: Vec<ScalePolicy> = scale_down["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(ScalePolicy {
                    percent: p["type"].as_str()? == "Percent",
                    value: u32::try_from(p["value"].as_u64()?).ok()?,
                    period_s: p["periodSeconds"].as_u64()?,
                })
            })
            .collect();
        if scale_down_policies.is_empty() {
            scale_down_policies.push(DEFAULT_SCALE_DOWN_POLICY);
        }
        let cpu_target_utilization = hpa["spec"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
            .and_then(|m| m["resource"]["target"]["averageUtilization"].as_u64())
            .and_then(|u| u32::try_from(u).ok());
        HpaStatus {
            min_replicas: if min.is_null() { 1 } else { number(min) },
            max_replicas: number(&hpa["spec"]["maxReplicas"]),
            current_replicas: number(&hpa["status"]["currentReplicas"]),
            desired_replicas: number(&hpa["status"]["desiredReplicas"]),
            current_metrics,
            unresolved_metrics,
            conditions,
            scale_down_window_s: scale_down["stabilizationWindowSeconds"]
                .as_u64()
                .unwrap_or(DEFAULT_SCALE_DOWN_WINDOW_S),
            scale_down_policies,
            scale_down_select_min: scale_down["selectPolicy"] == "Min",
            cpu_target_utilization,
            scale_target: format!(
                "{}/{}",
                hpa["spec"]["scaleTargetRef"]["kind"]
                    .as_str()
                    .unwrap_or("?"),
                hpa["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or("?")
            ),
        }
    }

    pub fn condition(&self, kind: &str) -> Option<&HpaCondition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    fn condition_is(&self, kind: &str, status: &str) -> Option<&HpaCondition> {
        self.condition(kind).filter(|c| c.status == status)
    }

    pub fn summary(&self) -> String {
        let conditions: Vec<String> = self
            .conditions
            .iter()
            .map(|c| format!("{}={} ({})", c.kind, c.status, c.reason))
            .collect();
        format!(
            "replicas {} (desired {}, min {}, max {}); metrics [{}]; conditions [{}]",
            self.current_replicas,
            self.desired_replicas,
            self.min_replicas,
            self.max_replicas,
            self.current_metrics.join(", "),
            conditions.join(", ")
        )
    }

    /// Why the HPA cannot act right now, if a condition says so.
    fn blocked(&self) -> Option<String> {
        if let Some(c) = self.condition_is("ScalingActive", "False") {
            return Some(format!("metrics unavailable: {}", c.describe()));
        }
        self.condition_is("AbleToScale", "False")
            .map(|c| format!("the HPA cannot scale: {}", c.describe()))
    }
}

/// (metric name, value) of a v2 metric spec or status entry; `field` is `target` or
/// `current`. Entries without a value (`<unknown>` in kubectl, `{"type": ""}` in the status
/// when the metric could not be fetched) give `None`.
fn metric_parts(metric: &Value, field: &str) -> Option<(String, String)> {
    let key = match metric["type"].as_str()? {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return None,
    };
    let body = &metric[key];
    let name = body["name"]
        .as_str()
        .or_else(|| body["metric"]["name"].as_str())?
        .to_string();
    let values = &body[field];
    let value = if let Some(u) = values["averageUtilization"].as_u64() {
        format!("{u}%")
    } else if let Some(v) = values["averageValue"].as_str() {
        v.to_string()
    } else {
        values["value"].as_str()?.to_string()
    };
    Some((name, value))
}

/// The HPA reports a current value for its metrics (the metrics pipeline works end to end).
pub fn metrics_present(hpa: &HpaStatus, deployment: &str) -> Polled<String> {
    let target = format!("Deployment/{deployment}");
    if hpa.scale_target != target {
        return Polled::Pending(format!(
            "the HPA scales {}, not the target's {target}; {}",
            hpa.scale_target,
            hpa.summary()
        ));
    }
    if hpa.current_metrics.is_empty() {
        return Polled::Pending(match hpa.blocked() {
            Some(reason) => format!("{reason}; {}", hpa.summary()),
            None => format!("no current metric values yet; {}", hpa.summary()),
        });
    }
    if !hpa.unresolved_metrics.is_empty() {
        return Polled::Pending(format!(
            "no current value for {} of the HPA's metrics: {}; {}",
            hpa.unresolved_metrics.len(),
            hpa.unresolved_metrics.join(", "),
            hpa.summary()
        ));
    }
    // Values left in the status from before do not make a working HPA: one that cannot read
    // its target's scale or its metrics now says so in its conditions.
    if let Some(reason) = hpa.blocked() {
        return Polled::Pending(format!("{reason}; {}", hpa.summary()));
    }
    Polled::Done(hpa.current_metrics.join(", "))
}

/// Before the load: the replica count to scale out from, or why a scale-out cannot be shown.
pub fn before_load(hpa: &HpaStatus) -> Result<u32, String> {
    if hpa.max_replicas <= hpa.min_replicas {
        return Err(format!(
            "the HPA cannot scale out: maxReplicas {} is not above minReplicas {}",
            hpa.max_replicas, hpa.min_replicas
        ));
    }
    if hpa.current_replicas >= hpa.max_replicas {
        return Err(format!(
            "the HPA is already at its maximum before the load: {}",
            hpa.summary()
        ));
    }
    Ok(hpa.current_replicas)
}

/// Under load: done when the deployment runs more replicas than `initial`. The message says
/// when the scale-out stopped at maxReplicas although the HPA wanted more.
pub fn scaled_out(hpa: &HpaStatus, initial: u32) -> Polled<String> {
    if hpa.current_replicas > initial {
        let limited = hpa
            .condition_is("ScalingLimited", "True")
            .filter(|c| c.reason == "TooManyReplicas")
            .map(|_| {
                format!(
                    "; limited by maxReplicas {}: the HPA wanted more (ScalingLimited=True, TooManyReplicas)",
                    hpa.max_replicas
                )
            })
            .unwrap_or_default();
        return Polled::Done(format!(
            "scaled out from {initial} to {} replicas{limited}; {}",
            hpa.current_replicas,
            hpa.summary()
        ));
    }
    let why = if let Some(reason) = hpa.blocked() {
        reason
    } else if hpa.desired_replicas > hpa.current_replicas {
        format!(
            "the HPA wants {} replicas, the deployment has not scaled yet",
            hpa.desired_replicas
        )
    } else {
        "the load does not yet raise the metrics enough".to_string()
    };
    Polled::Pending(format!("{why}; {}", hpa.summary()))
}

/// How long after a load ends the HPA still sees it: the kubelet's CPU rate window and
/// metrics-server's 15 s resolution, then one controller sync.
pub const METRICS_LAG_S: u64 = 60;

/// The seconds the HPA's behavior needs to go from `from` replicas down to `to`: the
/// scale-down stabilization window, then one policy period per step (the policies decide how
/// many pods a step removes), plus one controller sync for the decision to show.
pub fn scale_down_s(hpa: &HpaStatus, from: u32, to: u32) -> u64 {
    let mut current = from;
    let mut needed = hpa.scale_down_window_s + HPA_SYNC_S;
    while current > to {
        let per_period = hpa
            .scale_down_policies
            .iter()
            .map(|p| (p.pods_per_period(current), p.period_s.max(HPA_SYNC_S)));
        let (pods, period) = if hpa.scale_down_select_min {
            per_period.min_by_key(|(pods, _)| *pods)
        } else {
            per_period.max_by_key(|(pods, _)| *pods)
        }
        .unwrap_or((current, HPA_SYNC_S));
        current = current.saturating_sub(pods).max(to);
        if current > to {
            needed += period;
        }
    }
    needed
}

/// Whether `bound_s` can possibly see the scale-in from the current replicas back to the
/// settled count, as the HPA's behavior allows it.
pub fn scale_in_fits(hpa: &HpaStatus, initial: u32, bound_s: u64) -> Result<(), String> {
    let settled = initial.max(hpa.min_replicas);
    let needed = scale_down_s(hpa, hpa.current_replicas, settled);
    if bound_s < needed {
        return Err(format!(
            "the scale-in bound ({bound_s} s) is shorter than what the HPA's behavior needs from {} to {settled} replicas ({needed} s: scale-down stabilization window {} s, its policies, one controller sync of {HPA_SYNC_S} s): raise bounds.scale_in_s to at least {needed} or shorten spec.behavior.scaleDown",
            hpa.current_replicas, hpa.scale_down_window_s
        ));
    }
    Ok(())
}

/// Before the load: done when the HPA rests at minReplicas (current and desired), so that a
/// scale-out is the load's doing and not a leftover.
pub fn settled(hpa: &HpaStatus) -> Polled<u32> {
    if hpa.current_replicas == hpa.min_replicas && hpa.desired_replicas == hpa.min_replicas {
        return Polled::Done(hpa.current_replicas);
    }
    Polled::Pending(format!(
        "the HPA is not resting at minReplicas {} yet; {}",
        hpa.min_replicas,
        hpa.summary()
    ))
}

/// After the load: done when both the current and desired replica counts are back at the
/// count before the load (or minReplicas, whichever is higher).
pub fn scaled_in(hpa: &HpaStatus, initial: u32) -> Polled<String> {
    let settled = initial.max(hpa.min_replicas);
    if hpa.current_replicas <= settled && hpa.desired_replicas <= settled {
        return Polled::Done(format!(
            "scaled back in to {} replicas; {}",
            hpa.current_replicas,
            hpa.summary()
        ));
    }
    let why = match hpa.condition_is("AbleToScale", "True") {
        Some(c) if c.reason == "ScaleDownStabilized" => format!(
            "holding {} replicas inside the scale-down stabilization window ({} s)",
            hpa.current_replicas, hpa.scale_down_window_s
        ),
        _ => hpa
            .blocked()
            .unwrap_or_else(|| format!("waiting for {settled} replicas")),
    };
    Polled::Pending(format!("{why}; {}", hpa.summary()))
}

/// The pods that were not there before the load, once there is at least one and all of
/// them are Ready.
pub fn new_pods_ready(old: &BTreeSet<String>, pods: &[PodState]) -> Polled<Vec<PodState>> {
    let new: Vec<PodState> = pods
        .iter()
        .filter(|p| !old.contains(&p.name))
        .cloned()
        .collect();
    if !new.is_empty() && new.iter().all(|p| p.ready) {
        return Polled::Done(new);
    }
    let shown: Vec<String> = new
        .iter()
        .map(|p| format!("{} ready={}", p.name, p.ready))
        .collect();
    Polled::Pending(format!("new pods: [{}]", shown.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded object from `fixtures/kube/scaling/`.
    fn fixture(name: &str) -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/kube/scaling/");
        let text = std::fs::read_to_string(format!("{path}{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn hpa(name: &str) -> HpaStatus {
        HpaStatus::from_api(&fixture(name))
    }

    fn done<T: std::fmt::Debug>(polled: Polled<T>) -> T {
        match polled {
            Polled::Done(value) => value,
            Polled::Pending(seen) => panic!("expected done, pending: {seen}"),
        }
    }

    fn pending<T: std::fmt::Debug>(polled: Polled<T>) -> String {
        match polled {
            Polled::Done(value) => panic!("expected pending, done: {value:?}"),
            Polled::Pending(seen) => seen,
        }
    }

    #[test]
    fn reads_spec_status_and_conditions() {
        let idle = hpa("hpa-idle.json");
        assert_eq!(
            (
                idle.min_replicas,
                idle.max_replicas,
                idle.current_replicas,
                idle.desired_replicas
            ),
            (2, 4, 2, 2)
        );
        assert_eq!(idle.current_metrics, ["cpu 4% (target 70%)"]);
        assert_eq!(idle.scale_down_window_s, 30);
        assert_eq!(
            idle.scale_down_policies,
            [ScalePolicy {
                percent: false,
                value: 1,
                period_s: 15
            }]
        );
        assert_eq!(idle.cpu_target_utilization, Some(70));
        assert_eq!(done(settled(&idle)), 2);
        let mut busy = idle.clone();
        busy.desired_replicas = 3;
        assert!(pending(settled(&busy)).starts_with("the HPA is not resting at minReplicas 2"));
        let limited = idle.condition("ScalingLimited").unwrap();
        assert_eq!(
            (limited.status.as_str(), limited.reason.as_str()),
            ("True", "TooFewReplicas")
        );
        assert!(idle
            .summary()
            .contains("AbleToScale=True (ReadyForNewScale)"));

        // Without behavior and minReplicas the controller's defaults apply.
        let mut bare = fixture("hpa-idle.json");
        bare["spec"].as_object_mut().unwrap().remove("behavior");
        bare["spec"].as_object_mut().unwrap().remove("minReplicas");
        let bare = HpaStatus::from_api(&bare);
        assert_eq!((bare.scale_down_window_s, bare.min_replicas), (300, 1));
        assert_eq!(bare.scale_down_policies, [DEFAULT_SCALE_DOWN_POLICY]);
    }

    #[test]
    fn metrics_missing_unavailable_and_present() {
        // Before the controller's first sync: no status at all.
        let new = hpa("hpa-new.json");
        assert!(new.current_metrics.is_empty());
        assert!(
            pending(metrics_present(&new, "camunda")).starts_with("no current metric values yet")
        );

        // metrics-server not serving: an empty metric entry and ScalingActive False.
        let unavailable = hpa("hpa-metrics-unavailable.json");
        assert!(unavailable.current_metrics.is_empty());
        let seen = pending(metrics_present(&unavailable, "camunda"));
        assert!(
            seen.starts_with("metrics unavailable: ScalingActive=False (FailedGetResourceMetric)"),
            "{seen}"
        );
        assert!(seen.contains("pods.metrics.k8s.io"), "{seen}");
        // The same HPA cannot be scaled out either, and says why.
        assert!(pending(scaled_out(&unavailable, 2)).contains("FailedGetResourceMetric"));

        assert_eq!(
            done(metrics_present(&hpa("hpa-idle.json"), "camunda")),
            "cpu 4% (target 70%)"
        );

        // A second metric that never resolves (no custom-metrics adapter serves it): the
        // status lists the cpu value only, the HPA decides on cpu alone.
        let mut two = fixture("hpa-idle.json");
        two["spec"]["metrics"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "type": "Pods",
                "pods": {
                    "metric": {"name": "http_requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "10"}
                }
            }));
        let two = HpaStatus::from_api(&two);
        assert_eq!(two.unresolved_metrics, ["http_requests_per_second"]);
        let seen = pending(metrics_present(&two, "camunda"));
        assert!(
            seen.starts_with(
                "no current value for 1 of the HPA's metrics: http_requests_per_second; "
            ),
            "{seen}"
        );

        // An HPA scaling another Deployment: its own values may look fine.
        assert!(
            pending(metrics_present(&hpa("hpa-idle.json"), "camunda-new")).starts_with(
                "the HPA scales Deployment/camunda, not the target's Deployment/camunda-new"
            )
        );
        // Metrics left in the status while the HPA cannot read its target's scale.
        let mut stale = fixture("hpa-idle.json");
        stale["status"]["conditions"] = serde_json::json!([{"type": "AbleToScale", "status": "False", "reason": "FailedGetScale", "message": "deployments/scale.apps \"camunda-old\" not found"}]);
        let seen = pending(metrics_present(&HpaStatus::from_api(&stale), "camunda"));
        assert!(
            seen.starts_with("the HPA cannot scale: AbleToScale=False (FailedGetScale)"),
            "{seen}"
        );
    }

    #[test]
    fn scale_out_reached_limited_and_blocked() {
        let idle = hpa("hpa-idle.json");
        let initial = before_load(&idle).unwrap();
        assert_eq!(initial, 2);
        assert!(pending(scaled_out(&idle, initial)).starts_with("the load does not yet"));

        let out = done(scaled_out(&hpa("hpa-scaled-out.json"), initial));
        assert!(out.starts_with("scaled out from 2 to 3 replicas;"), "{out}");
        assert!(!out.contains("limited by maxReplicas"), "{out}");

        let limited = hpa("hpa-scale-out-limited.json");
        let out = done(scaled_out(&limited, initial));
        assert!(
            out.starts_with(
                "scaled out from 2 to 4 replicas; limited by maxReplicas 4: the HPA wanted more"
            ),
            "{out}"
        );
        // Already at the maximum: a scale-out cannot be shown.
        assert!(before_load(&limited)
            .unwrap_err()
            .contains("already at its maximum"));

        // AbleToScale False: the HPA wants more but cannot write the scale.
        let seen = pending(scaled_out(&hpa("hpa-unable-to-scale.json"), initial));
        assert!(
            seen.starts_with("the HPA cannot scale: AbleToScale=False (FailedUpdateScale)"),
            "{seen}"
        );

        // Desired above current while the deployment catches up.
        let mut catching_up = idle.clone();
        catching_up.desired_replicas = 4;
        assert!(pending(scaled_out(&catching_up, 2)).starts_with("the HPA wants 4 replicas"));

        let mut fixed = idle;
        fixed.max_replicas = 2;
        assert!(before_load(&fixed)
            .unwrap_err()
            .contains("not above minReplicas"));
    }

    #[test]
    fn scale_in_waits_for_the_stabilization_window() {
        let stabilized = hpa("hpa-scale-down-stabilized.json");
        let seen = pending(scaled_in(&stabilized, 2));
        assert!(
            seen.starts_with(
                "holding 4 replicas inside the scale-down stabilization window (30 s)"
            ),
            "{seen}"
        );
        // Scaled out but not yet stabilizing: still pending.
        assert!(pending(scaled_in(&hpa("hpa-scale-out-limited.json"), 2))
            .starts_with("waiting for 2 replicas"));

        let back = done(scaled_in(&hpa("hpa-scaled-in.json"), 2));
        assert!(back.starts_with("scaled back in to 2 replicas"), "{back}");
        // Below minReplicas is never expected: minReplicas counts.
        assert!(matches!(
            scaled_in(&hpa("hpa-scaled-in.json"), 1),
            Polled::Done(_)
        ));

        // 30 s window + one sync, then one pod per 15 s period from 4 to 2: 4→3 and 3→2.
        assert_eq!(scale_down_s(&stabilized, 4, 2), 30 + 15 + 15);
        assert_eq!(scale_in_fits(&stabilized, 2, 60), Ok(()));
        let err = scale_in_fits(&stabilized, 2, 59).unwrap_err();
        assert!(err.contains("at least 60"), "{err}");
        let mut default_window = stabilized.clone();
        default_window.scale_down_window_s = DEFAULT_SCALE_DOWN_WINDOW_S;
        assert!(scale_in_fits(&default_window, 2, 300).is_err());
        assert!(scale_in_fits(&default_window, 2, 600).is_ok());
        // Two pods per period: 8→6→4→2 takes two periods after the first step.
        let mut faster = stabilized.clone();
        faster.scale_down_policies = vec![ScalePolicy {
            percent: false,
            value: 2,
            period_s: 60,
        }];
        assert_eq!(scale_down_s(&faster, 8, 2), 30 + 15 + 60 + 60);
        // The default policy (100 % per 15 s) removes everything in one step.
        faster.scale_down_policies = vec![DEFAULT_SCALE_DOWN_POLICY];
        assert_eq!(scale_down_s(&faster, 8, 2), 30 + 15);
        // selectPolicy Min picks the slower of two policies.
        faster.scale_down_policies = vec![
            ScalePolicy {
                percent: false,
                value: 1,
                period_s: 15,
            },
            ScalePolicy {
                percent: true,
                value: 50,
                period_s: 15,
            },
        ];
        assert_eq!(scale_down_s(&faster, 4, 2), 30 + 15);
        faster.scale_down_select_min = true;
        assert_eq!(scale_down_s(&faster, 4, 2), 30 + 15 + 15);
    }

    #[test]
    fn new_pods_become_ready() {
        let pods = super::super::kubectl::pod_states(&fixture("pods-scaling-out.json"));
        assert_eq!(pods.len(), 4);
        let old: BTreeSet<String> = ["camunda-6c9f7d8b5d-4xq7m", "camunda-6c9f7d8b5d-9kz2p"]
            .into_iter()
            .map(String::from)
            .collect();
        let seen = pending(new_pods_ready(&old, &pods));
        assert_eq!(
            seen,
            "new pods: [camunda-6c9f7d8b5d-h7w4c ready=true, camunda-6c9f7d8b5d-tq8bn ready=false]"
        );
        let mut all_ready = pods.clone();
        all_ready[3].ready = true;
        let new = done(new_pods_ready(&old, &all_ready));
        let names: Vec<&str> = new.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["camunda-6c9f7d8b5d-h7w4c", "camunda-6c9f7d8b5d-tq8bn"]
        );
        assert_eq!(new[0].ip.as_deref(), Some("10.244.0.23"));
        assert_eq!(new[0].http_port, 8080);
        // No new pod at all is not done.
        let only_old: Vec<PodState> = pods[..2].to_vec();
        assert_eq!(pending(new_pods_ready(&old, &only_old)), "new pods: []");
    }
}
