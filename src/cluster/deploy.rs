//! `camunda-conformance deploy`: the `existing` backend's deploy step for a platform team's own
//! overlay. Validate (errors stop it), render in memory, check the Secrets the workloads need,
//! server-side apply without taking over other managers' fields, wait for the Secrets operators
//! create and for the rollout. Nothing is written to disk and no Secret is ever invented: a
//! generated password nobody knows is worse than a clear error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use kube::{Api, Client};
use serde_json::Value;

use super::apply::{describe, Applier, Conflicts, FIELD_MANAGER};
use super::wait::{self, Progress, Workload};
use crate::report::{self, Format, Sink};
use crate::validate::bundle::{self, provided_secret_of};
use crate::validate::{self, input, ValidateReport};

#[derive(clap::Args)]
pub struct DeployArgs {
    /// The kustomize overlay (or plain manifests) to deploy.
    #[arg(value_name = "OVERLAY")]
    pub overlay: PathBuf,
    /// The kubeconfig context to deploy to.
    #[arg(long, value_name = "CONTEXT")]
    pub kube_context: String,
    /// Take over fields another field manager owns (refused by default, naming the owner).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Bound on waiting for operator-made Secrets and the rollout, e.g. `600s`, `10m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `Ok(false)` (exit 1): validate found errors, or the cluster refused or did not roll out.
/// `Err` (exit 2): the overlay could not be read or rendered.
pub fn command(args: &DeployArgs) -> Result<bool> {
    let started = Instant::now();
    // Each object is schema-checked as it is read; the rendered documents are kept for the apply.
    let (mut entries, mut docs) = (Vec::new(), Vec::new());
    let summary = input::load(&args.overlay, &input::Options::default(), &mut |raw| {
        entries.push(bundle::Entry::checked(&raw));
        docs.push(raw.value);
    })?;
    let render_ms = started.elapsed().as_millis();
    let checked = Instant::now();
    let shown = args.overlay.display().to_string();
    let findings = validate::check_entries(entries)
        .into_iter()
        .map(|finding| validate::Finding {
            input: Some(shown.clone()),
            ..finding
        })
        .collect();
    let validated = ValidateReport {
        findings,
        inputs: vec![summary],
        render_ms,
        check_ms: checked.elapsed().as_millis(),
    };
    Sink::new(Format::Human, None).write_validate(&validated, false)?;
    if !report::validate_passed(&validated, false) {
        eprintln!("not deploying {shown}: validate found errors (above)");
        return Ok(false);
    }
    let plan = Plan::new(docs).with_context(|| format!("reading {shown}"))?;
    let conflicts = if args.force_conflicts {
        Conflicts::Force
    } else {
        Conflicts::Refuse
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(async {
        let client = super::connect(Some(&args.kube_context)).await?;
        deploy(&client, &plan, conflicts, args.timeout).await
    });
    match outcome {
        Ok(()) => {
            println!(
                "deployed {shown} to context {} in {:.1}s",
                args.kube_context,
                started.elapsed().as_secs_f64()
            );
            Ok(true)
        }
        Err(err) => {
            eprintln!(
                "error: deploying {shown} to context {}: {err:#}",
                args.kube_context
            );
            Ok(false)
        }
    }
}

/// `600`, `600s`, `10m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: a number with s, m or h, e.g. 10m"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (s, m or h)")),
    };
    if seconds == 0 {
        return Err("the timeout must be above zero".into());
    }
    Ok(Duration::from_secs(seconds))
}

/// A Secret the workloads reference, where, and what provides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretUse {
    pub namespace: String,
    pub name: String,
    /// The keys referenced by name (env `secretKeyRef`, volume `items`); never values.
    pub keys: BTreeSet<String>,
    /// `Deployment camunda/camunda env DB_PASSWORD`, ...
    pub users: Vec<String>,
    /// What in the bundle creates it: `Secret`, or the operator's object
    /// (`ExternalSecret camunda/camunda-db`); `None`: it must exist in the cluster already.
    pub provider: Option<String>,
}

impl SecretUse {
    pub fn describe(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }

    /// Shipped as a Secret object: applied with the rest, nothing to check or await.
    pub fn shipped(&self) -> bool {
        self.provider.as_deref() == Some("Secret")
    }
}

/// A workload whose rollout `deploy` awaits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub workload: Workload,
    pub namespace: String,
    pub name: String,
    /// The `minReplicas` of the HPA that owns the Deployment's count.
    pub min_replicas: Option<i32>,
}

/// The rendered objects and what deploying them means.
#[derive(Clone, Debug)]
pub struct Plan {
    pub docs: Vec<Value>,
    pub secrets: Vec<SecretUse>,
    pub rollouts: Vec<Rollout>,
}

fn namespace_of(doc: &Value) -> &str {
    doc["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

/// The pod template of a workload kind.
fn pod_spec(doc: &Value) -> Option<&Value> {
    let spec = &doc["spec"];
    let found = match doc["kind"].as_str()? {
        "Pod" => spec,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &spec["template"]["spec"]
        }
        "CronJob" => &spec["jobTemplate"]["spec"]["template"]["spec"],
        _ => return None,
    };
    found.is_object().then_some(found)
}

impl Plan {
    pub fn new(docs: Vec<Value>) -> Result<Self> {
        let secrets = secret_uses(&docs)?;
        let mut rollouts = Vec::new();
        for doc in &docs {
            let Some(workload) = doc["kind"].as_str().and_then(Workload::from_kind) else {
                continue;
            };
            let (namespace, name) = (namespace_of(doc), name_of(doc));
            let min_replicas = docs
                .iter()
                .filter(|h| h["kind"] == "HorizontalPodAutoscaler" && namespace_of(h) == namespace)
                .find(|h| {
                    let target = &h["spec"]["scaleTargetRef"];
                    workload == Workload::Deployment
                        && target["kind"] == "Deployment"
                        && target["name"] == name
                })
                .map(|h| {
                    h["spec"]["minReplicas"]
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .unwrap_or(1)
                });
            rollouts.push(Rollout {
                workload,
                namespace: namespace.to_string(),
                name: name.to_string(),
                min_replicas,
            });
        }
        Ok(Self {
            docs,
            secrets,
            rollouts,
        })
    }
}

/// Every Secret the bundle's workloads reference (optional references left out), with what in
/// the bundle provides it.
fn secret_uses(docs: &[Value]) -> Result<Vec<SecretUse>> {
    let mut providers: BTreeMap<(String, String), String> = BTreeMap::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if let Some(secret) = provided_secret_of(kind, name_of(doc), doc) {
            let by = if kind == "Secret" {
                "Secret".to_string()
            } else {
                describe(doc)
            };
            providers
                .entry((namespace_of(doc).to_string(), secret.to_string()))
                .or_insert(by);
        }
    }
    let mut uses: BTreeMap<(String, String), SecretUse> = BTreeMap::new();
    for doc in docs {
        let Some(spec) = pod_spec(doc) else {
            continue;
        };
        let pod: PodSpec = serde_json::from_value(spec.clone())
            .with_context(|| format!("reading the pod template of {}", describe(doc)))?;
        let namespace = namespace_of(doc).to_string();
        let mut note = |name: &str, keys: Vec<String>, user: String| {
            let key = (namespace.clone(), name.to_string());
            let entry = uses.entry(key.clone()).or_insert_with(|| SecretUse {
                namespace: namespace.clone(),
                name: name.to_string(),
                keys: BTreeSet::new(),
                users: Vec::new(),
                provider: providers.get(&key).cloned(),
            });
            entry.keys.extend(keys);
            entry.users.push(format!("{} {user}", describe(doc)));
        };
        let containers = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten());
        for container in containers {
            for env in container.env.iter().flatten() {
                let reference = env
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref());
                if let Some(r) = reference.filter(|r| r.optional != Some(true)) {
                    note(&r.name, vec![r.key.clone()], format!("env {}", env.name));
                }
            }
            for from in container.env_from.iter().flatten() {
                if let Some(r) = from
                    .secret_ref
                    .as_ref()
                    .filter(|r| r.optional != Some(true))
                {
                    note(
                        &r.name,
                        Vec::new(),
                        format!("container {} envFrom", container.name),
                    );
                }
            }
        }
        for volume in pod.volumes.iter().flatten() {
            let item_keys = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| {
                items
                    .iter()
                    .flatten()
                    .map(|i| i.key.clone())
                    .collect::<Vec<_>>()
            };
            if let Some(s) = volume.secret.as_ref().filter(|s| s.optional != Some(true)) {
                if let Some(name) = &s.secret_name {
                    note(name, item_keys(&s.items), format!("volume {}", volume.name));
                }
            }
            let projected = volume
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten());
            for s in projected.filter_map(|s| s.secret.as_ref()) {
                if s.optional != Some(true) {
                    note(
                        &s.name,
                        item_keys(&s.items),
                        format!("volume {}", volume.name),
                    );
                }
            }
        }
    }
    Ok(uses.into_values().collect())
}

/// The referenced keys a Secret lacks (names only: values are never read into messages).
fn missing_keys(secret: &Secret, keys: &BTreeSet<String>) -> Vec<String> {
    let has = |key: &String| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(key))
    };
    keys.iter().filter(|k| !has(k)).cloned().collect()
}

/// Secrets nothing in the bundle provides must exist with their keys before anything is
/// applied; every one missing is named, with who references it.
pub async fn check_out_of_band(client: &Client, secrets: &[SecretUse]) -> Result<()> {
    let mut problems = Vec::new();
    for need in secrets.iter().filter(|s| s.provider.is_none()) {
        let api: Api<Secret> = Api::namespaced(client.clone(), &need.namespace);
        let found = api
            .get_opt(&need.name)
            .await
            .with_context(|| format!("reading {}", need.describe()))?;
        let users = need.users.join(", ");
        match found {
            None => problems.push(format!(
                "{} does not exist (referenced by {users}) and nothing in the bundle creates it",
                need.describe()
            )),
            Some(secret) => {
                let missing = missing_keys(&secret, &need.keys);
                if missing.is_empty() {
                    println!(
                        "  {} exists (out of band) with the referenced keys",
                        need.describe()
                    );
                } else {
                    problems.push(format!(
                        "{} lacks key(s) {} (referenced by {users})",
                        need.describe(),
                        missing.join(", ")
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}; deploy never creates Secrets: create them in the cluster (by hand, CI, a vault operator) or ship an ExternalSecret or SealedSecret for them, then deploy again",
            problems.join("; ")
        );
    }
    Ok(())
}

/// Checks the out-of-band Secrets, applies every object, waits for the Secrets operators create
/// and for every workload's rollout, all within `timeout` from the first wait.
pub async fn deploy(
    client: &Client,
    plan: &Plan,
    conflicts: Conflicts,
    timeout: Duration,
) -> Result<()> {
    check_out_of_band(client, &plan.secrets).await?;
    println!(
        "applying {} objects (server-side, field manager {FIELD_MANAGER}, {})",
        plan.docs.len(),
        match conflicts {
            Conflicts::Refuse => "conflicts refused",
            Conflicts::Force => "conflicts forced (--force-conflicts)",
        }
    );
    Applier::new(client.clone(), conflicts)
        .apply(&plan.docs)
        .await?;
    let deadline = Instant::now() + timeout;
    // Whole seconds, rounded up: a wait reports its bound in seconds.
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    };
    for need in plan
        .secrets
        .iter()
        .filter(|s| s.provider.is_some() && !s.shipped())
    {
        let provider = need.provider.clone().unwrap_or_default();
        let what = format!(
            "{} from {provider} (its operator creates it)",
            need.describe()
        );
        let api: Api<Secret> = Api::namespaced(client.clone(), &need.namespace);
        let keys = need.keys.clone();
        wait::watch_until(api, &need.name, &what, left(), move |secret: &Secret| {
            let missing = missing_keys(secret, &keys);
            if missing.is_empty() {
                Progress::done("exists with the referenced keys")
            } else {
                Progress::pending(format!("exists without key(s) {}", missing.join(", ")))
            }
        })
        .await
        .map_err(|err| {
            anyhow!("{err:#} (is the operator of {provider} installed and its store reachable?)")
        })?;
    }
    for rollout in &plan.rollouts {
        let what = match rollout.min_replicas {
            Some(min) => format!(
                "{:?} {}/{} rolled out at the HPA's minReplicas {min} or more",
                rollout.workload, rollout.namespace, rollout.name
            ),
            None => format!(
                "{:?} {}/{} rolled out",
                rollout.workload, rollout.namespace, rollout.name
            ),
        };
        wait::rollout(
            client,
            rollout.workload,
            &rollout.namespace,
            &rollout.name,
            rollout.min_replicas,
            &what,
            left(),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Value> {
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "camunda", "namespace": "camunda"},
            "spec": {"selector": {}, "template": {"spec": {
                "containers": [{"name": "camunda", "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "camunda-db", "key": "password"}}},
                    {"name": "ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "camunda-admin", "key": "password"}}},
                    {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "maybe", "key": "x", "optional": true}}}
                ], "envFrom": [{"secretRef": {"name": "shipped"}}]}],
                "volumes": [{"name": "tls", "secret": {"secretName": "camunda-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]
            }}}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgres", "namespace": "camunda"},
            "spec": {"selector": {}, "serviceName": "pg", "template": {"spec": {"containers": [{"name": "pg", "env": [
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "camunda-db", "key": "password"}}}
            ]}]}}}}),
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "camunda", "namespace": "camunda"},
                "spec": {"minReplicas": 2, "maxReplicas": 4, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "camunda"}}}),
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "metadata": {"name": "db", "namespace": "camunda"},
                "spec": {"target": {"name": "camunda-db"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shipped", "namespace": "camunda"}}),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "tls", "namespace": "camunda"},
                "spec": {"secretName": "camunda-tls"}}),
        ]
    }

    #[test]
    fn every_referenced_secret_is_found_with_its_users_and_provider() {
        let plan = Plan::new(docs()).unwrap();
        let seen: Vec<(String, Vec<String>, Option<String>, usize)> = plan
            .secrets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.keys.iter().cloned().collect(),
                    s.provider.clone(),
                    s.users.len(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("camunda-admin".into(), vec!["password".into()], None, 1),
                (
                    "camunda-db".into(),
                    vec!["password".into()],
                    Some("ExternalSecret camunda/db".into()),
                    2
                ),
                (
                    "camunda-tls".into(),
                    vec!["ca.crt".into()],
                    Some("Certificate camunda/tls".into()),
                    1
                ),
                ("shipped".into(), vec![], Some("Secret".into()), 1),
            ]
        );
        let admin = &plan.secrets[0];
        assert_eq!(
            admin.users,
            ["Deployment camunda/camunda env ADMIN_PASSWORD"]
        );
        assert!(plan.secrets[3].shipped());
    }

    #[test]
    fn the_hpa_target_rolls_out_at_min_replicas_and_the_rest_as_they_are() {
        let plan = Plan::new(docs()).unwrap();
        assert_eq!(
            plan.rollouts,
            [
                Rollout {
                    workload: Workload::Deployment,
                    namespace: "camunda".into(),
                    name: "camunda".into(),
                    min_replicas: Some(2)
                },
                Rollout {
                    workload: Workload::StatefulSet,
                    namespace: "camunda".into(),
                    name: "postgres".into(),
                    min_replicas: None
                },
            ]
        );
    }

    #[test]
    fn a_malformed_pod_template_names_its_workload() {
        let bad = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"},
            "spec": {"template": {"spec": {"containers": "nope"}}}}),
        ];
        let err = format!("{:#}", Plan::new(bad).err().unwrap());
        assert!(err.contains("Deployment n/x"), "{err}");
    }

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m").is_err());
    }
}
