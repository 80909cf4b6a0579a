//! cluster: the replica entries are distinct JVMs (read-only), the replicas share one engine
//! database (a BPMN deployed through replica A starts through replica B and shows in history
//! through the ingress) and the job executor runs async jobs. The database checks write to
//! it, hence disruptive; the deployment is removed afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict, NOT_ALLOWED};
use crate::http::{excerpt, poll, Polled};
use crate::metrics::{self, Counters};
use crate::scaling::kubectl::Kubectl;
use crate::target::Replica;
use crate::Suite;

const fn check(id: &'static str, description: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Cluster,
        description,
        disruptive: true,
    }
}

const DISTINCT_REPLICAS: CheckInfo = CheckInfo {
    id: "cluster.distinct-replicas",
    suite: Suite::Cluster,
    description:
        "the replica entries are different JVMs and each metrics_url counts its http_url's requests",
    disruptive: false,
};

const ALL_REPLICAS_READY: CheckInfo = CheckInfo {
    id: "cluster.all-replicas-ready",
    suite: Suite::Cluster,
    description: "Kubernetes: as many pods are Ready as the Deployment and its HPA ask for; a pod that is not names its last state",
    disruptive: false,
};

const DEPLOY: CheckInfo = check(
    "cluster.deploy",
    "a BPMN process deploys through the REST API of one replica",
);
const START_ELSEWHERE: CheckInfo = check(
    "cluster.start-other-replica",
    "the process deployed through one replica starts through every other, and every replica reads every instance's history (one shared database)",
);
const HISTORY: CheckInfo = check(
    "cluster.history-through-ingress",
    "the started instance is in the history through the ingress",
);
const JOB_EXECUTOR: CheckInfo = check(
    "cluster.job-executor",
    "the job executor runs the instance's async job to completion",
);
const CLEANUP: CheckInfo = check(
    "cluster.cleanup",
    "the test deployment and its instances are deleted through the ingress",
);

pub(crate) const CHECKS: &[CheckInfo] = &[
    ALL_REPLICAS_READY,
    DISTINCT_REPLICAS,
    DEPLOY,
    START_ELSEWHERE,
    HISTORY,
    JOB_EXECUTOR,
    CLEANUP,
];

/// GETs sent straight to each replica by [`DISTINCT_REPLICAS`]; another replica's counter
/// may grow by less than `OTHERS_BELOW` meanwhile (probes, scrapes of other traffic).
const DIRECT_REQUESTS: u32 = 20;
const OTHERS_BELOW: f64 = 10.0;

const BPMN: &str = include_str!("../fixtures/conformance-cluster.bpmn");
const BPMN_FILE: &str = "camunda-conformance-cluster.bpmn";
const DEPLOYMENT_NAME: &str = "camunda-conformance cluster check";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Deployment {
    id: String,
    #[serde(default)]
    deployed_process_definitions: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoricInstance {
    process_definition_id: String,
    state: String,
}

/// engine-rest at one origin, with the suite's credentials.
struct Rest<'c> {
    label: String,
    client: &'c Client,
    base: String,
    username: &'c str,
    password: &'c str,
}

impl Rest<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(self.username, Some(self.password))
    }

    /// Sends and expects `want`; returns the body.
    async fn call(&self, request: RequestBuilder, what: &str, want: StatusCode) -> Result<String> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{}: {what}", self.label))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status != want {
            bail!(
                "{}: {what}: expected {}, got {}{}",
                self.label,
                want.as_u16(),
                status.as_u16(),
                excerpt(&body)
            );
        }
        Ok(body)
    }
}

async fn historic(rest: &Rest<'_>, instance: &str) -> Result<HistoricInstance> {
    let path = format!("/history/process-instance/{instance}");
    let body = rest
        .call(
            rest.request(reqwest::Method::GET, &path),
            &format!("GET {path}"),
            StatusCode::OK,
        )
        .await?;
    parse(&body, &path)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<T> {
    serde_json::from_str(body)
        .with_context(|| format!("{what}: unexpected answer{}", excerpt(body)))
}

/// The single process definition id of a deployment answer.
fn definition_id(deployment: &Deployment) -> Result<String> {
    let ids: Vec<&String> = deployment
        .deployed_process_definitions
        .iter()
        .flat_map(|map| map.keys())
        .collect();
    match ids.as_slice() {
        [id] => Ok((*id).clone()),
        other => bail!(
            "expected one deployed process definition, got {}",
            other.len()
        ),
    }
}

/// For each replica in turn: requests straight to its http_url, attributed by every
/// replica's request counter.
async fn distinct_replicas(ctx: &Ctx<'_>) -> Outcome {
    let replicas = &ctx.target.replicas;
    if replicas.len() < 2 {
        return Ok(Verdict::Skip(format!(
            "needs at least two replicas (the target lists {})",
            replicas.len()
        )));
    }
    if let Some(reason) = metrics::lacking_metrics(replicas) {
        return Ok(Verdict::Skip(reason));
    }
    let all: Vec<&Replica> = replicas.iter().collect();
    let mut rounds = Vec::new();
    for replica in replicas {
        let before = metrics::request_counters(ctx, &all).await?;
        let url = format!(
            "{}{}/engine",
            replica.http_url.trim_end_matches('/'),
            ctx.target.ingress.rest_path
        );
        let via = format!("directly on {}", replica.name);
        metrics::send_gets(&ctx.http.direct, &url, DIRECT_REQUESTS, &via, None).await?;
        let grown = metrics::growth_after(ctx, &all, &before, f64::from(DIRECT_REQUESTS)).await?;
        rounds.push((replica.name.clone(), grown));
    }
    Ok(judge_distinct(&rounds))
}

/// Each round: the replica that was sent the requests, and how every counter grew (in entry
/// order). Its own must have grown by all of them, every other by less than `OTHERS_BELOW`.
fn judge_distinct(rounds: &[(String, Counters)]) -> Verdict {
    let want = f64::from(DIRECT_REQUESTS);
    let mut problems = Vec::new();
    // A pair sharing a JVM shows in both of its rounds: name it once.
    let mut pairs = BTreeSet::new();
    for (sent_to, grown) in rounds {
        let own = grown
            .iter()
            .find(|(name, _)| name == sent_to)
            .map_or(0.0, |(_, d)| *d);
        let others: Vec<&(String, f64)> = grown
            .iter()
            .filter(|(name, d)| name != sent_to && *d >= OTHERS_BELOW)
            .collect();
        if own < want {
            let counted_by: Vec<String> =
                others.iter().map(|(n, d)| format!("{n} (+{d})")).collect();
            problems.push(format!(
                "{sent_to}'s metrics_url does not count the requests to its http_url: +{own} after {DIRECT_REQUESTS}{}",
                if counted_by.is_empty() {
                    String::new()
                } else {
                    format!(", counted by {}", counted_by.join(", "))
                }
            ));
            continue;
        }
        for (other, d) in others {
            let mut pair = [sent_to.as_str(), other.as_str()];
            pair.sort_by_key(|name| grown.iter().position(|(n, _)| n == name));
            if pairs.insert(pair) {
                let both = if own == *d {
                    format!("both counters grew by {own}")
                } else {
                    format!("the counters grew by {own} and {d}")
                };
                problems.push(format!(
                    "{} and {} answer from the same JVM: {both}",
                    pair[0], pair[1]
                ));
            }
        }
    }
    let seen: Vec<String> = rounds
        .iter()
        .map(|(sent_to, grown)| {
            format!(
                "{DIRECT_REQUESTS} to {sent_to}: {}",
                metrics::describe_growth(grown)
            )
        })
        .collect();
    if problems.is_empty() {
        Verdict::Pass(format!(
            "every replica is its own JVM and counts its own requests ({})",
            seen.join("; ")
        ))
    } else {
        Verdict::Fail(format!(
            "expected each replica's counter to grow by {DIRECT_REQUESTS} for the requests sent to it and every other by less than {OTHERS_BELOW}; {} (seen: {})",
            problems.join("; "),
            seen.join("; ")
        ))
    }
}

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    rec.check(&ALL_REPLICAS_READY, async {
        let Some(kube) = &ctx.target.kubernetes else {
            return Ok(Verdict::Skip(
                "needs Kubernetes: the target has no [kubernetes] section".into(),
            ));
        };
        let (deployment, hpa, pods) = Kubectl::new(kube).replica_objects().await?;
        Ok(judge_replicas_ready(&deployment, hpa.as_ref(), &pods))
    })
    .await;
    rec.check(&DISTINCT_REPLICAS, distinct_replicas(ctx)).await;
    let replicas = &ctx.target.replicas;
    if replicas.len() < 2 {
        rec.skip_rest(
            Suite::Cluster,
            &format!(
                "needs at least two replicas (the target lists {})",
                replicas.len()
            ),
        );
        return;
    }
    if !ctx.target.disruptive.allowed {
        rec.skip_rest(Suite::Cluster, NOT_ALLOWED);
        return;
    }
    let password = match ctx.password() {
        Ok(secret) => secret.expose(),
        Err(err) => {
            rec.fail_rest(Suite::Cluster, &format!("{err:#}"));
            return;
        }
    };
    let rest_path = &ctx.target.ingress.rest_path;
    let at = |label: &str, client, origin: &str| Rest {
        label: label.to_string(),
        client,
        base: format!("{}{rest_path}", origin.trim_end_matches('/')),
        username: ctx.username(),
        password,
    };
    // Every replica takes part: a third replica on a database of its own is as broken as a
    // second one.
    let every: Vec<Rest> = replicas
        .iter()
        .map(|r| at(&r.name, &ctx.http.direct, &r.http_url))
        .collect();
    let (a, others) = (&every[0], &every[1..]);
    let ingress = at("ingress", &ctx.http.ingress, &ctx.target.ingress.base_url);

    let mut deployed: Option<(String, String)> = None;
    rec.check(&DEPLOY, async {
        let form = reqwest::multipart::Form::new()
            .text("deployment-name", DEPLOYMENT_NAME)
            .text("deployment-source", "camunda-conformance")
            .text("enable-duplicate-filtering", "false")
            .part(
                BPMN_FILE,
                reqwest::multipart::Part::text(BPMN)
                    .file_name(BPMN_FILE)
                    .mime_str("application/xml")?,
            );
        let request = a
            .request(reqwest::Method::POST, "/deployment/create")
            .multipart(form);
        let body = a
            .call(request, "POST /deployment/create", StatusCode::OK)
            .await?;
        let deployment: Deployment = parse(&body, "POST /deployment/create")?;
        let definition = definition_id(&deployment)?;
        let message = format!(
            "deployment {} with definition {definition} through {}",
            deployment.id, a.label
        );
        deployed = Some((deployment.id, definition));
        Ok(Verdict::Pass(message))
    })
    .await;
    let Some((deployment_id, definition)) = deployed else {
        rec.fail_rest(
            Suite::Cluster,
            &format!("not checked: the deployment failed (see {})", DEPLOY.id),
        );
        return;
    };

    // (replica that started it, instance id)
    let mut started: Vec<(usize, String)> = Vec::new();
    rec.check(&START_ELSEWHERE, async {
        let mut problems = Vec::new();
        for (offset, rest) in others.iter().enumerate() {
            match start(rest, &definition).await? {
                Ok(instance) => started.push((offset + 1, instance)),
                Err(problem) => problems.push(problem),
            }
        }
        // Every replica, the deploying one too, must read every instance's history.
        for rest in &every {
            for (by, instance) in &started {
                if let Err(problem) = read_history(rest, instance, &definition).await? {
                    problems.push(format!("{problem} (started through {})", every[*by].label));
                }
            }
        }
        let names: Vec<&str> = every.iter().map(|r| r.label.as_str()).collect();
        Ok(judge_shared(&definition, &started, &names, &problems))
    })
    .await;

    let Some((by, instance)) = started.first().cloned() else {
        let reason = format!(
            "not checked: no instance was started (see {})",
            START_ELSEWHERE.id
        );
        rec.fail(&HISTORY, &reason);
        rec.fail(&JOB_EXECUTOR, &reason);
        rec.check(&CLEANUP, cleanup(&ingress, &deployment_id)).await;
        return;
    };
    rec.check(&HISTORY, async {
        let mut seen = Vec::new();
        for (_, instance) in &started {
            let historic = historic(&ingress, instance).await?;
            if historic.process_definition_id != definition {
                return Ok(Verdict::Fail(format!(
                    "expected instance {instance} of definition {definition}, history says {}",
                    historic.process_definition_id
                )));
            }
            seen.push(format!("{instance} ({})", historic.state));
        }
        Ok(Verdict::Pass(format!(
            "instances {} are in the history through the ingress",
            seen.join(", ")
        )))
    })
    .await;
    // Through the replica that started it, so that an ingress fault does not pass for a job
    // executor failure.
    let b = &every[by];
    rec.check(&JOB_EXECUTOR, async {
        let bound = Duration::from_secs(ctx.target.bounds.job_s);
        // So that a last look that failed still says where the instance was.
        let state = std::sync::Mutex::new(String::from("unknown"));
        let waited = poll(bound, Duration::from_millis(500), || async {
            let answer = historic(b, &instance).await;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            match answer {
                Ok(h) if h.state == "COMPLETED" => Polled::Done(()),
                Ok(h) => {
                    state.clone_from(&h.state);
                    Polled::Pending(format!("instance {instance} in state {}", h.state))
                }
                Err(err) => Polled::Pending(format!(
                    "{err:#} (instance {instance} last seen in state {state})"
                )),
            }
        })
        .await;
        Ok(match waited {
            Ok(()) => Verdict::Pass(format!(
                "instance {instance} completed through its async job (history through {})",
                b.label
            )),
            Err(err) => Verdict::Fail(format!(
                "expected the job executor to run the async service task and complete instance {instance} (history through {}): {err:#}",
                b.label
            )),
        })
    })
    .await;

    rec.check(&CLEANUP, cleanup(&ingress, &deployment_id)).await;
}

/// Starts an instance of the definition through one replica: `Ok(Err(..))` when the replica
/// answers but does not know the definition.
async fn start(rest: &Rest<'_>, definition: &str) -> Result<std::result::Result<String, String>> {
    let path = format!("/process-definition/{definition}/start");
    let response = rest
        .request(reqwest::Method::POST, &path)
        .json(&json!({ "businessKey": "camunda-conformance" }))
        .send()
        .await
        .with_context(|| format!("{}: POST {path}", rest.label))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status != StatusCode::OK {
        return Ok(Err(format!(
            "{} does not know definition {definition}: POST {path} answered {}{}",
            rest.label,
            status.as_u16(),
            excerpt(&body)
        )));
    }
    let instance: Instance = parse(&body, &path)?;
    Ok(Ok(instance.id))
}

/// Reads an instance's history through one replica: `Ok(Err(..))` when the replica answers
/// without it.
async fn read_history(
    rest: &Rest<'_>,
    instance: &str,
    definition: &str,
) -> Result<std::result::Result<(), String>> {
    let path = format!("/history/process-instance/{instance}");
    let response = rest
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .with_context(|| format!("{}: GET {path}", rest.label))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status != StatusCode::OK {
        return Ok(Err(format!(
            "{} has no history of instance {instance}: GET {path} answered {}{}",
            rest.label,
            status.as_u16(),
            excerpt(&body)
        )));
    }
    let historic: HistoricInstance = parse(&body, &path)?;
    Ok(if historic.process_definition_id == definition {
        Ok(())
    } else {
        Err(format!(
            "{} has instance {instance} of definition {}, not {definition}",
            rest.label, historic.process_definition_id
        ))
    })
}

/// Every replica but the deploying one started an instance and every replica read every
/// instance's history, or the problems name the replicas that did not.
fn judge_shared(
    definition: &str,
    started: &[(usize, String)],
    names: &[&str],
    problems: &[String],
) -> Verdict {
    if problems.is_empty() {
        Verdict::Pass(format!(
            "definition {definition} deployed through {} started through {} and every instance's history read through each of {}",
            names[0],
            started
                .iter()
                .map(|(by, instance)| format!("{} ({instance})", names[*by]))
                .collect::<Vec<_>>()
                .join(", "),
            names.join(", ")
        ))
    } else {
        Verdict::Fail(format!(
            "expected one shared database behind every replica ({}): {}",
            names.join(", "),
            problems.join("; ")
        ))
    }
}

async fn cleanup(ingress: &Rest<'_>, deployment_id: &str) -> Outcome {
    let path = format!("/deployment/{deployment_id}?cascade=true");
    ingress
        .call(
            ingress.request(reqwest::Method::DELETE, &path),
            &format!("DELETE {path}"),
            StatusCode::NO_CONTENT,
        )
        .await?;
    Ok(Verdict::Pass(format!(
        "deployment {deployment_id} deleted with its instances"
    )))
}

/// Ready pods against the Deployment's `spec.replicas` and the HPA's current and desired
/// counts; every pod of the selector that is not Ready is named with its containers' states
/// (a crash loop shows as `waiting CrashLoopBackOff`, with the last exit code).
fn judge_replicas_ready(deployment: &Value, hpa: Option<&Value>, pods: &Value) -> Verdict {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let name = deployment["metadata"]["name"].as_str().unwrap_or("?");
    let want = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
    let live: Vec<&Value> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    let is_ready = |pod: &Value| {
        pod["status"]["phase"] == "Running"
            && pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let ready: Vec<&str> = live
        .iter()
        .filter(|p| is_ready(p))
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    let mut problems: Vec<String> = live
        .iter()
        .filter(|p| !is_ready(p))
        .map(|p| {
            format!(
                "{} not Ready (phase {}; {})",
                p["metadata"]["name"].as_str().unwrap_or("?"),
                p["status"]["phase"].as_str().unwrap_or("unknown"),
                container_states(p)
            )
        })
        .collect();
    let have = ready.len() as u64;
    if have < want {
        problems.push(format!(
            "{have} Ready of the {want} replicas of Deployment {name}"
        ));
    }
    let hpa_counts = hpa.map(|h| {
        (
            h["metadata"]["name"].as_str().unwrap_or("?").to_string(),
            count(&h["status"]["currentReplicas"]),
            count(&h["status"]["desiredReplicas"]),
        )
    });
    if let Some((hpa, current, desired)) = &hpa_counts {
        if have < *current.max(desired) {
            problems.push(format!(
                "HPA {hpa} counts {current} replicas and wants {desired}, {have} are Ready"
            ));
        }
    }
    let hpa_said = hpa_counts
        .map(|(hpa, current, desired)| format!("; HPA {hpa}: current {current}, desired {desired}"))
        .unwrap_or_default();
    if problems.is_empty() {
        let restarted: Vec<String> = live
            .iter()
            .filter(|p| restarts(p) > 0)
            .map(|p| {
                format!(
                    "{} ({})",
                    p["metadata"]["name"].as_str().unwrap_or("?"),
                    container_states(p)
                )
            })
            .collect();
        Verdict::Pass(format!(
            "{have} of {want} replicas of Deployment {name} Ready: {}{hpa_said}{}",
            ready.join(", "),
            if restarted.is_empty() {
                String::new()
            } else {
                format!("; restarted before: {}", restarted.join(", "))
            }
        ))
    } else {
        Verdict::Fail(format!(
            "expected every replica of Deployment {name} Ready ({want} asked for{hpa_said}); {}",
            problems.join("; ")
        ))
    }
}

fn restarts(pod: &Value) -> u64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["restartCount"].as_u64().unwrap_or(0))
        .sum()
}

/// `container camunda waiting CrashLoopBackOff, restarted 5 times, last exit code 1 (Error)`.
fn container_states(pod: &Value) -> String {
    let states: Vec<String> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = c["state"].as_object().and_then(|s| s.iter().next());
            let now = match state {
                Some((kind, detail)) => match detail["reason"].as_str() {
                    Some(reason) => format!("{kind} {reason}"),
                    None => kind.clone(),
                },
                None => "no state".into(),
            };
            let mut text = format!("container {} {now}", c["name"].as_str().unwrap_or("?"));
            let restarts = c["restartCount"].as_u64().unwrap_or(0);
            if restarts > 0 {
                text.push_str(&format!(", restarted {restarts} times"));
            }
            let last = &c["lastState"]["terminated"];
            if let Some(code) = last["exitCode"].as_i64() {
                text.push_str(&format!(
                    ", last exit code {code} ({})",
                    last["reason"].as_str().unwrap_or("no reason")
                ));
            }
            text
        })
        .collect();
    if states.is_empty() {
        "no container started".into()
    } else {
        states.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn the_fixture_has_an_async_task_and_a_history_time_to_live() {
        assert!(BPMN.contains("camunda:asyncBefore=\"true\""));
        // Camunda 7.20+ refuses deployments without one.
        assert!(BPMN.contains("camunda:historyTimeToLive="));
    }

    #[test]
    fn deployment_answers_name_one_definition() {
        let body = r#"{"links":[],"id":"d-1","name":"x","deploymentTime":"2026-11-25T23:59:00.000+0000",
            "deployedProcessDefinitions":{"camunda-conformance-cluster:1:p-1":{"id":"camunda-conformance-cluster:1:p-1"}},
            "deployedCaseDefinitions":null}"#;
        let deployment: Deployment = parse(body, "deploy").unwrap();
        assert_eq!(
            definition_id(&deployment).unwrap(),
            "camunda-conformance-cluster:1:p-1"
        );
        let empty: Deployment = parse(
            r#"{"id":"d-2","deployedProcessDefinitions":null}"#,
            "deploy",
        )
        .unwrap();
        assert!(definition_id(&empty)
            .unwrap_err()
            .to_string()
            .contains("got 0"));
    }

    #[test]
    fn every_replica_must_share_the_database() {
        let names = ["camunda-0", "camunda-1", "camunda-outsider"];
        let started = [(1, "i-1".to_string()), (2, "i-2".to_string())];
        let verdict = judge_shared("d:1", &started, &names, &[]);
        let Verdict::Pass(m) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            m.contains("deployed through camunda-0 started through camunda-1 (i-1), camunda-outsider (i-2)"),
            "{m}"
        );
        // A third replica on a database of its own.
        let problems = [
            "camunda-outsider does not know definition d:1: POST /process-definition/d:1/start answered 404".to_string(),
        ];
        let verdict = judge_shared("d:1", &started[..1], &names, &problems);
        let Verdict::Fail(m) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            m.starts_with("expected one shared database behind every replica (camunda-0, camunda-1, camunda-outsider): camunda-outsider does not know definition"),
            "{m}"
        );
    }

    /// A Deployment of 3 replicas whose HPA counts 3, one pod crash-looping (in the shape
    /// `kubectl get -o json` gives).
    fn crash_looping() -> (Value, Value, Value) {
        let deployment = json!({"metadata": {"name": "camunda"}, "spec": {"replicas": 3}});
        let hpa = json!({"metadata": {"name": "camunda"}, "status": {"currentReplicas": 3, "desiredReplicas": 3}});
        let ready = |name: &str, restarts: u64| {
            json!({"metadata": {"name": name}, "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "camunda", "ready": true, "restartCount": restarts,
                    "state": {"running": {"startedAt": "2026-12-07T22:00:00Z"}}}]}})
        };
        let looping = json!({"metadata": {"name": "camunda-7d9f-zzz"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "camunda", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}});
        let terminating = json!({"metadata": {"name": "camunda-old", "deletionTimestamp": "2026-12-07T22:01:00Z"},
            "status": {"phase": "Running"}});
        let pods = json!({"items": [ready("camunda-7d9f-aaa", 0), ready("camunda-7d9f-bbb", 1), looping, terminating]});
        (deployment, hpa, pods)
    }

    #[test]
    fn a_crash_looping_replica_fails_with_its_last_state() {
        let (deployment, hpa, pods) = crash_looping();
        let verdict = judge_replicas_ready(&deployment, Some(&hpa), &pods);
        let Verdict::Fail(m) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            m,
            "expected every replica of Deployment camunda Ready (3 asked for; HPA camunda: current 3, desired 3); \
             camunda-7d9f-zzz not Ready (phase Running; container camunda waiting CrashLoopBackOff, restarted 5 times, last exit code 1 (Error)); \
             2 Ready of the 3 replicas of Deployment camunda; HPA camunda counts 3 replicas and wants 3, 2 are Ready"
        );
        // Without the crash-looping pod the Deployment asks for 2 and gets them; the HPA alone
        // still counts 3.
        let mut two = pods.clone();
        two["items"].as_array_mut().unwrap().remove(2);
        let deployment2 = json!({"metadata": {"name": "camunda"}, "spec": {"replicas": 2}});
        let Verdict::Fail(m) = judge_replicas_ready(&deployment2, Some(&hpa), &two) else {
            panic!("the HPA's count is compared too")
        };
        assert!(
            m.ends_with("HPA camunda counts 3 replicas and wants 3, 2 are Ready"),
            "{m}"
        );
        let verdict = judge_replicas_ready(&deployment2, None, &two);
        let Verdict::Pass(m) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            m,
            "2 of 2 replicas of Deployment camunda Ready: camunda-7d9f-aaa, camunda-7d9f-bbb; \
             restarted before: camunda-7d9f-bbb (container camunda running, restarted 1 times)"
        );
    }

    fn round(sent_to: &str, deltas: &[(&str, f64)]) -> (String, Counters) {
        (
            sent_to.to_string(),
            deltas.iter().map(|(n, d)| (n.to_string(), *d)).collect(),
        )
    }

    #[rstest]
    #[case::distinct(
        vec![round("camunda-0", &[("camunda-0", 21.0), ("camunda-1", 1.0)]),
             round("camunda-1", &[("camunda-0", 0.0), ("camunda-1", 20.0)])],
        None
    )]
    #[case::one_jvm_twice(
        vec![round("camunda-0", &[("camunda-0", 20.0), ("camunda-1", 20.0)]),
             round("camunda-1", &[("camunda-0", 20.0), ("camunda-1", 20.0)])],
        Some("camunda-0 and camunda-1 answer from the same JVM: both counters grew by 20 (seen")
    )]
    #[case::metrics_url_of_another(
        vec![round("camunda-0", &[("camunda-0", 20.0), ("camunda-1", 0.0)]),
             round("camunda-1", &[("camunda-0", 20.0), ("camunda-1", 0.0)])],
        Some("camunda-1's metrics_url does not count the requests to its http_url: +0 after 20, counted by camunda-0 (+20)")
    )]
    #[case::metrics_url_counts_nothing(
        vec![round("camunda-0", &[("camunda-0", 20.0), ("camunda-1", 0.0)]),
             round("camunda-1", &[("camunda-0", 0.0), ("camunda-1", 3.0)])],
        Some("camunda-1's metrics_url does not count the requests to its http_url: +3 after 20 (seen")
    )]
    fn replicas_must_be_distinct_jvms(
        #[case] rounds: Vec<(String, Counters)>,
        #[case] problem: Option<&str>,
    ) {
        match (judge_distinct(&rounds), problem) {
            (Verdict::Pass(m), None) => assert!(
                m.contains("20 to camunda-1: camunda-0 +0, camunda-1 +20"),
                "{m}"
            ),
            (Verdict::Fail(m), Some(problem)) => {
                assert!(m.contains(problem), "{m}");
                assert_eq!(
                    m.matches("same JVM").count(),
                    usize::from(problem.contains("same JVM")),
                    "{m}"
                );
            }
            (verdict, _) => panic!("unexpected {verdict:?}"),
        }
    }
}
