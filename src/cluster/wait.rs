//! Bounded waits with progress, and the conditions they wait for.
//!
//! The conditions are pure functions of API objects, tested on recorded objects under
//! `fixtures/kube/`. Each returns what it saw, so that a timeout can say what was there last.
//! kube's `await_condition` has no timeout of its own and `is_deployment_completed` ignores
//! `observedGeneration` and the ready counts; the Deployment condition here checks both.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a condition saw: done or not, a failure that no waiting will fix, and a short summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: bool,
    pub failed: Option<String>,
    pub seen: String,
}

impl Progress {
    pub fn pending(seen: impl Into<String>) -> Self {
        Self {
            done: false,
            failed: None,
            seen: seen.into(),
        }
    }
    pub fn done(seen: impl Into<String>) -> Self {
        Self {
            done: true,
            failed: None,
            seen: seen.into(),
        }
    }
    fn failed(why: impl Into<String>) -> Self {
        let why = why.into();
        Self {
            done: false,
            failed: Some(why.clone()),
            seen: why,
        }
    }
}

/// Rolled out: the controller has seen the current spec (observedGeneration), every replica runs
/// the new template (updated), is ready and available, and no old replica is left.
pub fn deployment_rolled_out(d: &Deployment) -> Progress {
    let generation = d.metadata.generation.unwrap_or(0);
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &d.status else {
        return Progress::pending("no status yet");
    };
    let observed = status.observed_generation.unwrap_or(0);
    let seen = format!(
        "generation {generation} observed {observed}; replicas {}/{wanted}, updated {}, ready {}, available {}",
        status.replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
    );
    let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if deadline_exceeded && observed >= generation {
        return Progress::failed(format!("progress deadline exceeded ({seen})"));
    }
    let done = observed >= generation
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.ready_replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
        && status.replicas.unwrap_or(0) == wanted;
    Progress {
        done,
        failed: None,
        seen,
    }
}

/// [`deployment_rolled_out`] at `min_replicas` or more: the HPA has set the count it owns.
pub fn deployment_scaled_and_rolled_out(d: &Deployment, min_replicas: i32) -> Progress {
    let progress = deployment_rolled_out(d);
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if progress.done && replicas < min_replicas {
        return Progress::pending(format!(
            "{}; the HPA has not raised it to its minReplicas {min_replicas} yet",
            progress.seen
        ));
    }
    progress
}

/// Ready: current spec observed, every replica ready and on the update revision.
pub fn statefulset_ready(s: &StatefulSet) -> Progress {
    let generation = s.metadata.generation.unwrap_or(0);
    let wanted = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &s.status else {
        return Progress::pending("no status yet");
    };
    let observed = status.observed_generation.unwrap_or(0);
    let same_revision =
        status.update_revision.is_none() || status.current_revision == status.update_revision;
    let seen = format!(
        "generation {generation} observed {observed}; ready {}/{wanted}, updated {}, revision {}",
        status.ready_replicas.unwrap_or(0),
        status.updated_replicas.unwrap_or(0),
        if same_revision { "current" } else { "updating" },
    );
    let done = observed >= generation
        && status.ready_replicas.unwrap_or(0) == wanted
        && status.updated_replicas.unwrap_or(0) == wanted
        && same_revision;
    Progress {
        done,
        failed: None,
        seen,
    }
}

/// A `status.conditions` entry of `type` with status True, for the current generation where the
/// condition records one (cert-manager's Certificate and ClusterIssuer do).
pub fn condition_true(object: &Value, type_: &str) -> Progress {
    let generation = object["metadata"]["generation"].as_i64();
    let Some(conditions) = object["status"]["conditions"].as_array() else {
        return Progress::pending("no conditions yet");
    };
    let Some(condition) = conditions.iter().find(|c| c["type"] == type_) else {
        return Progress::pending(format!("no {type_} condition yet"));
    };
    let seen = format!(
        "{type_}={} ({}: {})",
        condition["status"].as_str().unwrap_or("?"),
        condition["reason"].as_str().unwrap_or("-"),
        condition["message"].as_str().unwrap_or("-"),
    );
    let current = match (generation, condition["observedGeneration"].as_i64()) {
        (Some(generation), Some(observed)) => observed >= generation,
        _ => true,
    };
    if condition["status"] == "True" && current {
        Progress::done(seen)
    } else {
        Progress::pending(seen)
    }
}

pub fn crd_established(crd: &CustomResourceDefinition) -> Progress {
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    if established {
        Progress::done("Established")
    } else {
        Progress::pending("not Established yet")
    }
}

/// The aggregated API (metrics.k8s.io) answers through its Service.
pub fn api_service_available(api: &APIService) -> Progress {
    let condition = api
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Available"));
    match condition {
        Some(c) if c.status == "True" => Progress::done("Available"),
        Some(c) => Progress::pending(format!(
            "Available={} ({}: {})",
            c.status,
            c.reason.as_deref().unwrap_or("-"),
            c.message.as_deref().unwrap_or("-")
        )),
        None => Progress::pending("no Available condition yet"),
    }
}

/// Prometheus `/api/v1/targets`: at least `expected` active targets of `job`, every one `up`.
pub fn prometheus_targets_up(targets: &Value, job: &str, expected: usize) -> Progress {
    let active: Vec<&Value> = targets["data"]["activeTargets"]
        .as_array()
        .map(|all| all.iter().filter(|t| t["labels"]["job"] == job).collect())
        .unwrap_or_default();
    let up = active.iter().filter(|t| t["health"] == "up").count();
    let errors: Vec<String> = active
        .iter()
        .filter(|t| t["health"] != "up")
        .map(|t| {
            format!(
                "{} {}: {}",
                t["labels"]["instance"].as_str().unwrap_or("?"),
                t["health"].as_str().unwrap_or("?"),
                t["lastError"].as_str().unwrap_or("")
            )
        })
        .collect();
    let mut seen = format!(
        "job {job}: {up} of {} targets up, {expected} expected",
        active.len()
    );
    if !errors.is_empty() {
        seen.push_str(&format!(" ({})", errors.join("; ")));
    }
    Progress {
        done: active.len() >= expected && up == active.len(),
        failed: None,
        seen,
    }
}

/// The workloads whose rollout is awaited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Deployment,
    StatefulSet,
}

impl Workload {
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(Self::Deployment),
            "StatefulSet" => Some(Self::StatefulSet),
            _ => None,
        }
    }
}

/// Waits for a workload's rollout: a Deployment with `min_replicas` (an HPA's target, whose
/// count the HPA owns) counts only once scaled to at least that.
pub async fn rollout(
    client: &Client,
    workload: Workload,
    namespace: &str,
    name: &str,
    min_replicas: Option<i32>,
    what: &str,
    timeout: Duration,
) -> Result<()> {
    match (workload, min_replicas) {
        (Workload::Deployment, Some(min)) => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            watch_until(api, name, what, timeout, move |d: &Deployment| {
                deployment_scaled_and_rolled_out(d, min)
            })
            .await
        }
        (Workload::Deployment, None) => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            watch_until(api, name, what, timeout, deployment_rolled_out).await
        }
        (Workload::StatefulSet, _) => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
            watch_until(api, name, what, timeout, statefulset_ready).await
        }
    }
}

/// How often a wait without news says it is still waiting.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Pause before a failed watch is started again.
const WATCH_RETRY: Duration = Duration::from_secs(2);

/// Shows what is awaited, the time spent of the bound, and what the condition saw.
fn report(what: &str, started: Instant, timeout: Duration, seen: &str) {
    println!(
        "  waiting for {what} ({}s of {}s): {seen}",
        started.elapsed().as_secs(),
        timeout.as_secs()
    );
}

fn timed_out(what: &str, timeout: Duration, seen: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "timed out after {}s waiting for {what}; last seen: {seen}",
        timeout.as_secs()
    )
}

/// What a wait printed last: it prints again on news or after [`HEARTBEAT`], and ends the
/// wait with what it saw once the bound is reached.
struct Shown<'a> {
    what: &'a str,
    started: Instant,
    timeout: Duration,
    text: String,
    at: Instant,
}

impl<'a> Shown<'a> {
    fn new(what: &'a str, timeout: Duration) -> Self {
        Self {
            what,
            started: Instant::now(),
            timeout,
            text: String::new(),
            at: Instant::now(),
        }
    }

    fn tick(&mut self, seen: String) -> Result<()> {
        if self.started.elapsed() >= self.timeout {
            return Err(timed_out(self.what, self.timeout, &seen));
        }
        if seen != self.text || self.at.elapsed() >= HEARTBEAT {
            report(self.what, self.started, self.timeout, &seen);
            self.text = seen;
            self.at = Instant::now();
        }
        Ok(())
    }
}

/// Watches one object until `check` says done, bounded by `timeout`, printing progress.
pub async fn watch_until<K, F>(
    api: Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: F,
) -> Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
    F: Fn(&K) -> Progress + Send + 'static,
{
    let started = Instant::now();
    let last = Arc::new(Mutex::new(Progress::pending(
        "the object does not exist yet",
    )));
    let check = Arc::new(check);
    let condition = || {
        let recorder = Arc::clone(&last);
        let check = Arc::clone(&check);
        move |object: Option<&K>| {
            let progress = object
                .map(|o| check(o))
                .unwrap_or_else(|| Progress::pending("the object does not exist yet"));
            // Failed stops the watch too; the caller turns it into an error below.
            let stop = progress.done || progress.failed.is_some();
            if let Ok(mut last) = recorder.lock() {
                *last = progress;
            }
            stop
        }
    };
    let snapshot = |last: &Arc<Mutex<Progress>>| {
        last.lock()
            .map(|p| p.clone())
            .unwrap_or_else(|_| Progress::pending("?"))
    };
    let mut shown = Shown::new(what, timeout);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    // The last watch failure, shown beside what the object looked like.
    let mut failure: Option<String> = None;
    let seen_now = |failure: &Option<String>| {
        let seen = snapshot(&last).seen;
        match failure {
            Some(err) => format!("{seen}; the last watch failed: {err}"),
            None => seen,
        }
    };
    // A watch that ends in an error (API server restarting, a kind not served yet, a dropped
    // connection) is started again until the deadline; the error is what a timeout reports.
    loop {
        let watch = await_condition(api.clone(), name, condition());
        tokio::pin!(watch);
        let watch_error = loop {
            tokio::select! {
                result = &mut watch => {
                    match result {
                        Err(err) => break err.to_string(),
                        Ok(_) => {
                            let progress = snapshot(&last);
                            if let Some(why) = progress.failed {
                                bail!("{what} failed: {why}");
                            }
                            println!("  {what}: done in {}s ({})", started.elapsed().as_secs(), progress.seen);
                            return Ok(());
                        }
                    }
                }
                _ = heartbeat.tick() => shown.tick(seen_now(&failure))?,
            }
        };
        failure = Some(watch_error);
        if started.elapsed() + WATCH_RETRY >= timeout {
            return Err(timed_out(what, timeout, &seen_now(&failure)));
        }
        shown.tick(seen_now(&failure))?;
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// Polls `probe` every `interval` until it reports done, bounded by `timeout`. A probe error
/// counts as "not yet" (the thing may still be starting) and is what a timeout reports.
pub async fn poll_until<F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress>>,
{
    let started = Instant::now();
    let mut shown = Shown::new(what, timeout);
    loop {
        let seen = match tokio::time::timeout(interval.max(Duration::from_secs(5)), probe()).await {
            Ok(Ok(progress)) if progress.done => {
                println!(
                    "  {what}: done in {}s ({})",
                    started.elapsed().as_secs(),
                    progress.seen
                );
                return Ok(());
            }
            Ok(Ok(Progress {
                failed: Some(why), ..
            })) => bail!("{what} failed: {why}"),
            Ok(Ok(progress)) => progress.seen,
            Ok(Err(err)) => format!("{err:#}"),
            Err(_) => "the probe did not answer in time".to_string(),
        };
        shown.tick(seen)?;
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::fixtures;

    #[test]
    fn the_hpa_target_is_rolled_out_only_at_min_replicas() {
        // What the real API server and controllers did: no `replicas` in the manifest, created
        // at 1, rolled out 1/1, and only then raised by the HPA.
        let mut at_one: Deployment = fixtures::load("deployment-rolled-out.json");
        at_one.spec.as_mut().unwrap().replicas = Some(1);
        let status = at_one.status.as_mut().unwrap();
        for count in [
            &mut status.replicas,
            &mut status.updated_replicas,
            &mut status.ready_replicas,
            &mut status.available_replicas,
        ] {
            *count = Some(1);
        }
        assert!(deployment_rolled_out(&at_one).done);
        let progress = deployment_scaled_and_rolled_out(&at_one, 2);
        assert!(!progress.done);
        assert!(
            progress
                .seen
                .ends_with("the HPA has not raised it to its minReplicas 2 yet"),
            "{}",
            progress.seen
        );
        let at_two: Deployment = fixtures::load("deployment-rolled-out.json");
        assert!(deployment_scaled_and_rolled_out(&at_two, 2).done);
    }

    #[test]
    fn deployment_is_rolled_out_only_at_its_observed_generation_with_every_replica_ready() {
        let done: Deployment = fixtures::load("deployment-rolled-out.json");
        assert!(
            deployment_rolled_out(&done).done,
            "{}",
            deployment_rolled_out(&done).seen
        );

        // The Progressing condition already says NewReplicaSetAvailable (kube's is_deployment_completed
        // would pass), but the controller has not seen generation 3 yet.
        let stale: Deployment = fixtures::load("deployment-stale-generation.json");
        let progress = deployment_rolled_out(&stale);
        assert!(!progress.done);
        assert!(
            progress.seen.contains("generation 3 observed 2"),
            "{}",
            progress.seen
        );

        let mut half_ready = done.clone();
        half_ready.status.as_mut().unwrap().ready_replicas = Some(1);
        let progress = deployment_rolled_out(&half_ready);
        assert!(!progress.done);
        assert!(progress.seen.contains("ready 1"), "{}", progress.seen);

        let mut old_pod_left = done.clone();
        old_pod_left.status.as_mut().unwrap().replicas = Some(3);
        assert!(!deployment_rolled_out(&old_pod_left).done);
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_fails_instead_of_waiting() {
        let stuck: Deployment = fixtures::load("deployment-deadline-exceeded.json");
        let progress = deployment_rolled_out(&stuck);
        assert!(!progress.done);
        assert!(
            progress
                .failed
                .as_deref()
                .unwrap()
                .contains("progress deadline"),
            "{progress:?}"
        );
    }

    #[test]
    fn statefulset_needs_every_replica_ready_on_the_update_revision() {
        let ready: StatefulSet = fixtures::load("statefulset-ready.json");
        assert!(
            statefulset_ready(&ready).done,
            "{}",
            statefulset_ready(&ready).seen
        );
        let mut updating = ready.clone();
        updating.status.as_mut().unwrap().update_revision = Some("postgres-7d9c".into());
        assert!(!statefulset_ready(&updating).done);
    }

    #[test]
    fn certificate_ready_condition_is_read_at_the_current_generation() {
        let ready: Value = fixtures::load("certificate-ready.json");
        assert!(condition_true(&ready, "Ready").done);
        let issuing: Value = fixtures::load("certificate-issuing.json");
        let progress = condition_true(&issuing, "Ready");
        assert!(!progress.done);
        assert!(
            progress.seen.contains("DoesNotExist") || progress.seen.contains("Ready=False"),
            "{}",
            progress.seen
        );
        let mut stale = ready.clone();
        stale["metadata"]["generation"] = serde_json::json!(5);
        assert!(
            !condition_true(&stale, "Ready").done,
            "an old generation's Ready does not count"
        );
    }

    #[test]
    fn metrics_api_service_must_be_available() {
        let available: APIService = fixtures::load("apiservice-metrics-available.json");
        assert!(api_service_available(&available).done);
        let missing: APIService = fixtures::load("apiservice-metrics-missing-endpoints.json");
        let progress = api_service_available(&missing);
        assert!(!progress.done);
        assert!(
            progress.seen.contains("MissingEndpoints"),
            "{}",
            progress.seen
        );
    }

    #[test]
    fn prometheus_targets_must_all_be_up_and_complete() {
        let targets: Value = fixtures::load("prometheus-targets.json");
        let progress = prometheus_targets_up(&targets, "camunda", 2);
        assert!(!progress.done, "one of the two is down");
        assert!(
            progress.seen.contains("1 of 2 targets up"),
            "{}",
            progress.seen
        );
        assert!(
            progress.seen.contains("connection refused"),
            "{}",
            progress.seen
        );
        let mut healed = targets.clone();
        for t in healed["data"]["activeTargets"].as_array_mut().unwrap() {
            t["health"] = "up".into();
        }
        assert!(prometheus_targets_up(&healed, "camunda", 2).done);
        assert!(
            !prometheus_targets_up(&healed, "camunda", 3).done,
            "a missing replica is not up"
        );
        assert!(!prometheus_targets_up(&healed, "other", 1).done);
    }

    #[tokio::test]
    async fn poll_until_reports_what_it_saw_last_on_timeout() {
        let err = poll_until(
            "the thing",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || async { Ok(Progress::pending("still 1 of 2")) },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("timed out") && err.contains("the thing") && err.contains("still 1 of 2"),
            "{err}"
        );
        let mut calls = 0;
        poll_until(
            "counter",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                calls += 1;
                let n = calls;
                async move {
                    Ok(if n >= 3 {
                        Progress::done("3")
                    } else {
                        Progress::pending("<3")
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(calls, 3);
    }
}
