//! cluster: the replicas share one engine database (a BPMN deployed through replica A starts
//! through replica B and shows in history through the ingress) and the job executor runs
//! async jobs. Writes to the database, hence disruptive; the deployment is removed afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::check::{CheckInfo, Ctx, Recorder, Verdict, NOT_ALLOWED};
use crate::http::{excerpt, poll, Polled};
use crate::Suite;

const fn check(id: &'static str, description: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Cluster,
        description,
        disruptive: true,
    }
}

const DEPLOY: CheckInfo = check(
    "cluster.deploy",
    "a BPMN process deploys through the REST API of one replica",
);
const START_ELSEWHERE: CheckInfo = check(
    "cluster.start-other-replica",
    "the process deployed through one replica starts through another (one shared database)",
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

pub(crate) const CHECKS: &[CheckInfo] = &[DEPLOY, START_ELSEWHERE, HISTORY, JOB_EXECUTOR, CLEANUP];

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

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
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
    let a = at(&replicas[0].name, &ctx.http.direct, &replicas[0].http_url);
    let b = at(&replicas[1].name, &ctx.http.direct, &replicas[1].http_url);
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

    let mut started: Option<String> = None;
    rec.check(&START_ELSEWHERE, async {
        let path = format!("/process-definition/{definition}/start");
        let request = b
            .request(reqwest::Method::POST, &path)
            .json(&json!({ "businessKey": "camunda-conformance" }));
        let body = b
            .call(request, &format!("POST {path}"), StatusCode::OK)
            .await
            .with_context(|| {
                format!(
                    "{} does not see the definition deployed through {} (one shared database?)",
                    b.label, a.label
                )
            })?;
        let instance: Instance = parse(&body, &path)?;
        let message = format!("instance {} started through {}", instance.id, b.label);
        started = Some(instance.id);
        Ok(Verdict::Pass(message))
    })
    .await;

    match started {
        None => {
            let reason = format!(
                "not checked: no instance was started (see {})",
                START_ELSEWHERE.id
            );
            rec.fail(&HISTORY, &reason);
            rec.fail(&JOB_EXECUTOR, &reason);
        }
        Some(instance) => {
            let path = format!("/history/process-instance/{instance}");
            let look = || async {
                let body = ingress
                    .call(
                        ingress.request(reqwest::Method::GET, &path),
                        &format!("GET {path}"),
                        StatusCode::OK,
                    )
                    .await?;
                parse::<HistoricInstance>(&body, &path)
            };
            rec.check(&HISTORY, async {
                let historic = look().await?;
                Ok(if historic.process_definition_id == definition {
                    Verdict::Pass(format!(
                        "instance {instance} is in the history through the ingress (state {})",
                        historic.state
                    ))
                } else {
                    Verdict::Fail(format!(
                        "expected instance {instance} of definition {definition}, history says {}",
                        historic.process_definition_id
                    ))
                })
            })
            .await;
            rec.check(&JOB_EXECUTOR, async {
                let bound = Duration::from_secs(ctx.target.bounds.job_s);
                poll(bound, Duration::from_millis(500), || async {
                    match look().await {
                        Ok(h) if h.state == "COMPLETED" => Polled::Done(()),
                        Ok(h) => Polled::Pending(format!("instance {instance} in state {}", h.state)),
                        Err(err) => Polled::Pending(format!("{err:#}")),
                    }
                })
                .await
                .context("expected the job executor to run the async service task and complete the instance")?;
                Ok(Verdict::Pass(format!("instance {instance} completed through its async job")))
            })
            .await;
        }
    }

    rec.check(&CLEANUP, async {
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
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
