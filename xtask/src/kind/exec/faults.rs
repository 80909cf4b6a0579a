//! `--faults` on the node backend: the node faults of the catalogue
//! (`camunda_conformance_suites::faults::NODE`, and the shared ones marked for the node) put
//! into the real cluster one at a time, as a person would break it: an object of the deployed
//! stack edited in place (the Deployment's pod template, the Service's selector, the HPA, the
//! ServiceMonitor, the Ingress, a Secret, an addon's replica count), or a Service added. Each
//! fault waits until the cluster shows the change (a pod's state, Prometheus's targets, the
//! HPA's conditions), runs the suites of the checks it must fail, then restores every object it
//! edited, deletes what it added, converges the stack again (`deploy`, as `--reuse` does) and
//! runs the same suites strictly: the stack healed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance::cluster::{deploy, wait};
use camunda_conformance_suites::faults::{self, FaultInfo};
use camunda_conformance_suites::{Backend as TargetBackend, Bounds, SessionMode, Target};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

use super::{ClusterBackend, Runner};
use crate::fault_matrix::{self, MatrixRow};
use crate::kind::plan::Step;
use crate::kind::Backend;

/// A fault's suites never need the default bounds; the scale-out keeps its own.
const FAULT_BOUNDS: Bounds = Bounds {
    prometheus_s: 20,
    settle_s: 20,
    job_s: 30,
    scale_out_s: 300,
    scale_in_s: 600,
};
/// The label a fault puts on one pod and into the Service's selector.
const FAULT_LABEL: &str = "camunda-conformance.io/fault";
/// How long a fault may take to show in the cluster.
const SETTLE_BOUND: Duration = Duration::from_secs(300);
/// The resource metrics API that metrics-server serves.
const METRICS_API_SERVICE: &str = "v1beta1.metrics.k8s.io";

/// What the cluster must show before the fault's suites run (or, after the undo, before the
/// heal run).
#[derive(Clone, Copy, Debug)]
enum Settle {
    Now,
    /// A controller that reads the object on a timer (Traefik's providers, kube-proxy, the HPA):
    /// the seconds and who.
    Seconds(u64, &'static str),
    /// A pod of the Deployment shows this container state (`waiting CrashLoopBackOff`), or
    /// `started` for a container whose startup probe passed but that is not Ready.
    Pod(&'static str),
    /// Prometheus has fewer up targets of the job than there are replicas.
    PrometheusTargetsGone,
    /// The HPA's condition of this type has this status.
    HpaCondition(&'static str, &'static str),
    /// The resource metrics API's APIService is (not) Available.
    MetricsApi {
        available: bool,
    },
    /// A Deployment (namespace, name) runs no pod.
    NoPods(&'static str, &'static str),
    /// The front door's certificate does (not) verify against the target's CA: Traefik read
    /// the TLS Secret.
    FrontDoorTrusted(bool),
}

/// What one fault changed, to undo, and how its suites run.
struct Injected {
    /// Every object edited, as it was before (restored in reverse order).
    edited: Vec<Value>,
    /// Objects created (deleted).
    added: Vec<Value>,
    settle: Settle,
    /// After the undo, besides the stack's rollouts.
    healed_when: Settle,
    /// The fault's suites may disturb the stack (their disruptive checks run).
    disruptive: bool,
    /// The suites run against the target the stack had before the fault: its pods did not
    /// change, and discovery would read the fault itself (a Service selecting no Deployment,
    /// a Secret without the password).
    keep_view: bool,
}

impl Injected {
    fn new(settle: Settle) -> Self {
        Injected {
            edited: Vec::new(),
            added: Vec::new(),
            settle,
            healed_when: Settle::Now,
            disruptive: false,
            keep_view: true,
        }
    }
}

impl ClusterBackend {
    /// Every node fault of the catalogue that applies to this stack's session mode; `Ok(false)`
    /// when one was not detected or the stack did not heal.
    pub(in crate::kind) fn node_faults(&mut self) -> Result<bool> {
        if self.runner.settings.backend != Backend::Node {
            bail!(
                "--faults: backend {:?} has no fault catalogue",
                self.runner.settings.backend
            );
        }
        // The suites before replaced pods (a stopped replica, the scale-in): look again.
        self.runtime.block_on(self.runner.connect())?;
        // The session mode the stack runs, as discovery read it from the route.
        let (file, _, _) = self
            .runner
            .target
            .as_ref()
            .ok_or_else(|| anyhow!("no target description was written"))?;
        let mode: SessionMode = Target::load(file)?.sessions.mode;
        let catalogue = node_catalogue(mode);
        let dir = self.runner.settings.work.join("faults");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // What the heal converges to: the overlay as deployed (`camunda-conformance deploy`).
        let (plan, timeout) = (
            self.runner.names.deploy_plan(),
            crate::kind::plan::STACK_ROLLOUT,
        );
        println!(
            "\nfaults: {} misconfigurations of the catalogue apply to this cluster; each must fail its checks, then the stack must heal",
            catalogue.len()
        );
        let started = Instant::now();
        let mut rows: Vec<MatrixRow> = Vec::new();
        for fault in catalogue {
            // Ctrl-C/SIGTERM: the handler is taking the node down; nothing left to inject into.
            if crate::local::supervisor::interrupted() {
                bail!("interrupted during the fault matrix");
            }
            let fault_started = Instant::now();
            let suites = fault_matrix::suites_of(fault, mode);
            fault_matrix::announce(fault, mode);
            let runner = &mut self.runner;
            let mut injected = Injected::new(Settle::Now);
            let probed = self.runtime.block_on(async {
                inject(runner, fault.id, &mut injected).await?;
                settle(runner, injected.settle).await?;
                if !injected.keep_view {
                    runner.connect().await?;
                }
                let target = runner.fault_target(&dir, fault.id, injected.disruptive)?;
                let out = dir.join(format!("{}.json", fault.id));
                let password = runner.password_text()?;
                tokio::task::block_in_place(|| {
                    fault_matrix::probe(
                        &runner.cli()?,
                        &target,
                        &suites,
                        &out,
                        false,
                        Some(&password),
                    )
                })
            });
            let touched = fault_matrix::touched(fault, mode, &probed);
            let healed = self.runtime.block_on(async {
                undo(runner, &injected).await?;
                let client = runner.client().await?;
                deploy::deploy(&client, &plan, runner.settings.conflicts(), timeout).await?;
                settle(runner, injected.healed_when).await?;
                runner.connect().await?;
                runner.prometheus_targets_up().await?;
                let target = runner.fault_target(&dir, "healed", injected.disruptive)?;
                let out = dir.join(format!("{}-healed.json", fault.id));
                let password = runner.password_text()?;
                let report = tokio::task::block_in_place(|| {
                    fault_matrix::probe(
                        &runner.cli()?,
                        &target,
                        &suites,
                        &out,
                        true,
                        Some(&password),
                    )
                })?;
                fault_matrix::heal_problems(&report, &touched)
            });
            rows.extend(fault_matrix::judge(
                fault,
                mode,
                &probed,
                &healed,
                fault_started,
            ));
        }
        fault_matrix::report(&rows, &self.runner.settings.work, started.elapsed())
    }
}

/// The faults the node injects into a stack of this session mode: those that involve the mode
/// or the route in every matrix, the others once, in the sticky one.
fn node_catalogue(mode: SessionMode) -> Vec<&'static FaultInfo> {
    faults::all()
        .filter(|f| f.applies_to(mode) && f.injected_on(TargetBackend::Node))
        .filter(|f| !(f.once_per_node && mode == SessionMode::Shared))
        .collect()
}

impl Runner {
    /// The target `connect` wrote, with the faults' bounds, disruptive or read-only.
    fn fault_target(&self, dir: &std::path::Path, name: &str, disruptive: bool) -> Result<PathBuf> {
        let (file, _, _) = self
            .target
            .as_ref()
            .ok_or_else(|| anyhow!("no target description was written"))?;
        let mut target = Target::load(file)?;
        target.bounds = FAULT_BOUNDS;
        if !disruptive {
            target.disruptive.allowed = false;
            target
                .allowed_skips
                .extend(camunda_conformance_suites::read_only_skips());
        }
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, target.to_toml()?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    fn password_text(&self) -> Result<String> {
        Ok(self
            .password
            .as_ref()
            .ok_or_else(|| anyhow!("no password was read from the cluster"))?
            .expose()
            .to_string())
    }

    async fn prometheus_targets_up(&mut self) -> Result<()> {
        let step = Step::PrometheusTargetsUp {
            timeout: Duration::from_secs(180),
        };
        self.step(&step).await.map(|_| ())
    }

    /// The live object (apiVersion, kind, namespace, name) as JSON.
    async fn live(&mut self, reference: &Value) -> Result<(Api<DynamicObject>, Value)> {
        let api = self.applier().await?.api_for(reference).await?;
        let name = reference["metadata"]["name"].as_str().unwrap_or_default();
        let what = camunda_conformance::cluster::apply::describe(reference);
        let object = api
            .get(name)
            .await
            .with_context(|| format!("reading {what}"))?;
        Ok((api, serde_json::to_value(object)?))
    }

    /// Edits a live object in place (a PUT, as `kubectl edit` does); returns it as it was.
    async fn edit(
        &mut self,
        reference: Value,
        change: impl FnOnce(&mut Value) -> Result<()>,
    ) -> Result<Value> {
        let (api, before) = self.live(&reference).await?;
        let mut after = before.clone();
        change(&mut after)?;
        put(&api, &after).await?;
        Ok(before)
    }

    /// Puts back what `edit` changed: the labels, annotations, spec and data of the object as
    /// it was, over whatever controllers did to it since.
    async fn restore(&mut self, before: &Value) -> Result<()> {
        let (api, mut now) = self.live(before).await?;
        for field in ["labels", "annotations"] {
            now["metadata"][field] = before["metadata"][field].clone();
        }
        for field in ["spec", "data"] {
            if !before[field].is_null() {
                now[field] = before[field].clone();
            }
        }
        put(&api, &now).await
    }

    /// The TLS Secret the front door serves: the Ingress's `spec.tls[0].secretName`, or the
    /// first certificate a TLS listener of the Gateway references.
    async fn serving_secret(&mut self) -> Result<String> {
        let (kind, name) = self.names.route.clone();
        let ns = self.names.namespace.clone();
        let route = match kind {
            "Ingress" => reference("networking.k8s.io/v1", "Ingress", &ns, &name),
            _ => reference("gateway.networking.k8s.io/v1", "Gateway", &ns, &name),
        };
        let (_, live) = self.live(&route).await?;
        let secret = match kind {
            "Ingress" => live["spec"]["tls"][0]["secretName"].as_str(),
            _ => live["spec"]["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|l| l["tls"]["certificateRefs"][0]["name"].as_str()),
        };
        secret
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{kind} {ns}/{name} names no TLS Secret"))
    }

    /// The pods of the stack's Deployment.
    async fn deployment_pods(&mut self) -> Result<Vec<Pod>> {
        let client = self.client().await?;
        pods_of(&client, &self.names.namespace, &self.names.deployment).await
    }
}

async fn put(api: &Api<DynamicObject>, object: &Value) -> Result<()> {
    let what = camunda_conformance::cluster::apply::describe(object);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let typed: DynamicObject = serde_json::from_value(object.clone())?;
    api.replace(name, &PostParams::default(), &typed)
        .await
        .with_context(|| format!("updating {what}"))?;
    Ok(())
}

fn reference(api_version: &str, kind: &str, namespace: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace, "name": name}})
}

/// The first container of a pod template (every workload of the stack has one).
fn container(template_owner: &mut Value) -> Result<&mut Value> {
    template_owner
        .pointer_mut("/spec/template/spec/containers/0")
        .ok_or_else(|| anyhow!("the Deployment has no container"))
}

/// Puts the fault into the cluster, recording each change as it is made (a fault that fails
/// half-way is undone as far as it got).
async fn inject(runner: &mut Runner, id: &str, injected: &mut Injected) -> Result<()> {
    let ns = runner.names.namespace.clone();
    let deployment = reference(
        "apps/v1",
        "Deployment",
        &ns,
        &runner.names.deployment.clone(),
    );
    let hpa = reference(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        &ns,
        &runner.names.hpa.clone(),
    );
    let service_monitor = reference("monitoring.coreos.com/v1", "ServiceMonitor", &ns, "camunda");
    match id {
        "crash-looping-replica" => {
            injected.settle = Settle::Pod("waiting CrashLoopBackOff");
            injected.edited.push(
                runner
                    .edit(deployment, |d| {
                        let c = container(d)?;
                        c["command"] = json!(["sh", "-c", "exit 1"]);
                        c.as_object_mut().map(|c| c.remove("args"));
                        Ok(())
                    })
                    .await?,
            );
        }
        "readiness-never-passes" => {
            injected.settle = Settle::Pod("started");
            injected.edited.push(
                runner
                    .edit(deployment, |d| {
                        container(d)?["readinessProbe"]["httpGet"]["path"] =
                            json!("/camunda-conformance-no-such-path");
                        Ok(())
                    })
                    .await?,
            );
        }
        "admin-secret-wrong-key" => {
            injected.settle = Settle::Pod("waiting CreateContainerConfigError");
            let secret = reference("v1", "Secret", &ns, "camunda-admin");
            injected.edited.push(
                runner
                    .edit(secret, |s| {
                        let password = s["data"]
                            .as_object_mut()
                            .and_then(|d| d.remove("password"))
                            .ok_or_else(|| anyhow!("Secret camunda-admin has no key password"))?;
                        s["data"]["admin-password"] = password;
                        Ok(())
                    })
                    .await?,
            );
            // A Secret change restarts nothing: a rollout (or a node loss) is when it bites.
            injected.edited.push(
                runner
                    .edit(deployment, |d| {
                        d["spec"]["template"]["metadata"]["annotations"][FAULT_LABEL] =
                            json!("admin-secret-wrong-key");
                        Ok(())
                    })
                    .await?,
            );
        }
        "servicemonitor-selects-nothing" => {
            injected.settle = Settle::PrometheusTargetsGone;
            injected.edited.push(
                runner
                    .edit(service_monitor, |m| {
                        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] =
                            json!("engine-old");
                        Ok(())
                    })
                    .await?,
            );
        }
        "servicemonitor-wrong-port" => {
            injected.settle = Settle::PrometheusTargetsGone;
            injected.edited.push(
                runner
                    .edit(service_monitor, |m| {
                        m["spec"]["endpoints"][0]["port"] = json!("jmx");
                        Ok(())
                    })
                    .await?,
            );
        }
        "affinity-annotation-removed" => {
            let (kind, name) = runner.names.route.clone();
            if kind != "Ingress" {
                bail!("affinity-annotation-removed needs the Ingress route (--route ingress)");
            }
            injected.settle = Settle::Seconds(10, "Traefik's ingress-nginx provider");
            injected.edited.push(
                runner
                    .edit(
                        reference("networking.k8s.io/v1", "Ingress", &ns, &name),
                        |i| {
                            i["metadata"]["annotations"]
                                .as_object_mut()
                                .and_then(|a| a.remove("nginx.ingress.kubernetes.io/affinity"))
                                .ok_or_else(|| anyhow!("the Ingress has no affinity annotation"))?;
                            Ok(())
                        },
                    )
                    .await?,
            );
        }
        "ready-pod-outside-service" => {
            injected.settle = Settle::Seconds(10, "the endpoints controller and Traefik");
            let pods = runner.deployment_pods().await?;
            let ready = camunda_conformance::cluster::discover::ready_pods(&pods);
            let (pod, _) = ready
                .first()
                .ok_or_else(|| anyhow!("no Ready pod to keep in the Service"))?;
            injected.edited.push(
                runner
                    .edit(reference("v1", "Pod", &ns, pod), |p| {
                        p["metadata"]["labels"][FAULT_LABEL] = json!("in-service");
                        Ok(())
                    })
                    .await?,
            );
            injected.edited.push(
                runner
                    .edit(reference("v1", "Service", &ns, "camunda"), |s| {
                        s["spec"]["selector"][FAULT_LABEL] = json!("in-service");
                        Ok(())
                    })
                    .await?,
            );
        }
        "metrics-nodeport" => {
            injected.settle = Settle::Seconds(5, "kube-proxy");
            injected.keep_view = false;
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"namespace": ns, "name": "camunda-metrics-nodeport"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app.kubernetes.io/name": "camunda", "app.kubernetes.io/component": "engine"},
                    "ports": [{"name": "metrics", "port": 9404, "targetPort": "metrics"}],
                },
            });
            runner.applier().await?.apply_one(&service).await?;
            injected.added.push(service);
        }
        "other-ca" => {
            injected.settle = Settle::FrontDoorTrusted(false);
            injected.healed_when = Settle::FrontDoorTrusted(true);
            let host = runner
                .names
                .host
                .clone()
                .ok_or_else(|| anyhow!("the route names no TLS host"))?;
            let (secret_ns, secret) = (ns.clone(), runner.serving_secret().await?);
            let other = crate::local::tls::Pki::generate(&host)?;
            injected.edited.push(
                runner
                    .edit(reference("v1", "Secret", &secret_ns, &secret), |s| {
                        let encode = |text: &str| json!(ByteString(text.as_bytes().to_vec()));
                        s["data"]["tls.crt"] = encode(&other.leaf_chain_pem());
                        s["data"]["tls.key"] = encode(other.leaf_key_pem());
                        s["data"]["ca.crt"] = encode(other.ca_pem());
                        Ok(())
                    })
                    .await?,
            );
        }
        "redis-gone" => {
            injected.settle = Settle::NoPods("redis", "redis");
            // Without a login every later sessions check fails, the disruptive one too: the
            // heal run must run it again (a read-only heal would only skip it).
            injected.disruptive = true;
            injected.edited.push(
                runner
                    .edit(reference("apps/v1", "Deployment", &ns, "redis"), |d| {
                        d["spec"]["replicas"] = json!(0);
                        Ok(())
                    })
                    .await?,
            );
        }
        "metrics-server-stopped" => {
            injected.settle = Settle::HpaCondition("ScalingActive", "False");
            injected.healed_when = Settle::MetricsApi { available: true };
            injected.edited.push(
                runner
                    .edit(
                        reference("apps/v1", "Deployment", "kube-system", "metrics-server"),
                        |d| {
                            d["spec"]["replicas"] = json!(0);
                            Ok(())
                        },
                    )
                    .await?,
            );
            settle(runner, Settle::MetricsApi { available: false }).await?;
        }
        "hpa-metric-unresolved" => {
            injected.settle = Settle::Seconds(35, "the HPA controller (every 15 s)");
            injected.edited.push(
                runner
                    .edit(hpa, |h| {
                        let metrics = h["spec"]["metrics"]
                            .as_array_mut()
                            .ok_or_else(|| anyhow!("the HPA has no metrics"))?;
                        metrics.push(json!({"type": "Pods", "pods": {
                            "metric": {"name": "camunda_jobs_due"},
                            "target": {"type": "AverageValue", "averageValue": "10"},
                        }}));
                        Ok(())
                    })
                    .await?,
            );
        }
        "hpa-targets-other-deployment" => {
            injected.settle = Settle::HpaCondition("AbleToScale", "False");
            injected.edited.push(
                runner
                    .edit(hpa, |h| {
                        h["spec"]["scaleTargetRef"]["name"] = json!("camunda-old");
                        Ok(())
                    })
                    .await?,
            );
        }
        "hpa-max-equals-min" => {
            injected.disruptive = true;
            injected.edited.push(
                runner
                    .edit(hpa, |h| {
                        h["spec"]["maxReplicas"] = h["spec"]["minReplicas"].clone();
                        Ok(())
                    })
                    .await?,
            );
        }
        other => bail!("fault {other} has no injection on the node backend"),
    }
    Ok(())
}

/// Takes the fault out again: deletes what it added, restores what it edited (last first).
async fn undo(runner: &mut Runner, injected: &Injected) -> Result<()> {
    let mut failed = Vec::new();
    for object in &injected.added {
        let what = camunda_conformance::cluster::apply::describe(object);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let deleted = async {
            let api = runner.applier().await?.api_for(object).await?;
            api.delete(name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting {what}"))?;
            Ok::<_, anyhow::Error>(())
        };
        if let Err(err) = deleted.await {
            failed.push(format!("{err:#}"));
        }
    }
    for before in injected.edited.iter().rev() {
        if let Err(err) = runner.restore(before).await {
            failed.push(format!("{err:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("undoing the fault: {}", failed.join("; "));
    }
    Ok(())
}

/// Waits until the cluster shows `what`.
async fn settle(runner: &mut Runner, what: Settle) -> Result<()> {
    let bound = SETTLE_BOUND;
    let every = Duration::from_secs(3);
    match what {
        Settle::Now => Ok(()),
        Settle::Seconds(seconds, who) => {
            println!("  {seconds}s for {who} to read the change");
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            Ok(())
        }
        Settle::Pod(state) => {
            let what = format!("a pod of the Deployment with container state `{state}`");
            let client = runner.client().await?;
            let (ns, name) = (
                runner.names.namespace.clone(),
                runner.names.deployment.clone(),
            );
            wait::poll_until(&what, bound, every, || {
                let (client, ns, name) = (client.clone(), ns.clone(), name.clone());
                async move {
                    let pods = pods_of(&client, &ns, &name).await?;
                    let states: Vec<String> = pods.iter().map(pod_state).collect();
                    let done = states.iter().any(|s| s.contains(state));
                    Ok(wait::Progress {
                        done,
                        failed: None,
                        seen: states.join("; "),
                    })
                }
            })
            .await
        }
        Settle::PrometheusTargetsGone => {
            let (url, job, replicas) = match (&runner.prometheus_url, &runner.target) {
                (Some(url), Some((_, job, replicas))) => (url.clone(), job.clone(), *replicas),
                _ => bail!("no Prometheus to watch"),
            };
            let http = runner.http.clone();
            let what = format!("Prometheus to drop targets of job {job}");
            wait::poll_until(&what, bound, every, || {
                let (http, url, job) = (http.clone(), url.clone(), job.clone());
                async move {
                    let body: Value = http
                        .get(format!("{url}/api/v1/targets?state=active"))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    let up = wait::prometheus_targets_up(&body, &job, replicas);
                    Ok(wait::Progress {
                        done: !up.done,
                        failed: None,
                        seen: up.seen,
                    })
                }
            })
            .await
        }
        Settle::HpaCondition(type_, status) => {
            let hpa = reference(
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                &runner.names.namespace.clone(),
                &runner.names.hpa.clone(),
            );
            let api = runner.applier().await?.api_for(&hpa).await?;
            let name = runner.names.hpa.clone();
            let what = format!("HPA {name} condition {type_}={status}");
            wait::poll_until(&what, bound, every, || {
                let (api, name) = (api.clone(), name.clone());
                async move {
                    let hpa = serde_json::to_value(api.get(&name).await?)?;
                    let now = wait::condition_true(&hpa, type_);
                    let seen = hpa["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == type_)
                        .map(|c| {
                            format!(
                                "{type_}={} ({})",
                                c["status"].as_str().unwrap_or("?"),
                                c["reason"].as_str().unwrap_or("?")
                            )
                        })
                        .unwrap_or_else(|| now.seen.clone());
                    let done = hpa["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == type_ && c["status"] == status);
                    Ok(wait::Progress {
                        done,
                        failed: None,
                        seen,
                    })
                }
            })
            .await
        }
        Settle::MetricsApi { available } => {
            let service = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": METRICS_API_SERVICE}});
            let api = runner.applier().await?.api_for(&service).await?;
            let what = format!(
                "APIService {METRICS_API_SERVICE} {}",
                if available {
                    "Available"
                } else {
                    "not Available"
                }
            );
            wait::poll_until(&what, bound, every, || {
                let api = api.clone();
                async move {
                    let service = serde_json::to_value(api.get(METRICS_API_SERVICE).await?)?;
                    let now = wait::condition_true(&service, "Available");
                    Ok(wait::Progress {
                        done: now.done == available,
                        failed: None,
                        seen: now.seen,
                    })
                }
            })
            .await
        }
        Settle::FrontDoorTrusted(trusted) => {
            let (file, _, _) = runner
                .target
                .clone()
                .ok_or_else(|| anyhow!("no target description was written"))?;
            let target = Target::load(&file)?;
            let host = target.host();
            // A new connection (and TLS handshake) for every request: a kept-alive one would
            // go on showing the certificate it was opened with.
            let mut client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .tls_built_in_root_certs(false);
            if let Some(ca_file) = &target.ingress.ca_file {
                let pem = std::fs::read(ca_file)
                    .with_context(|| format!("reading {}", ca_file.display()))?;
                client = client.add_root_certificate(
                    reqwest::Certificate::from_pem(&pem).with_context(|| {
                        format!("{} is not a PEM certificate", ca_file.display())
                    })?,
                );
            }
            if let Some(addr) = target.ingress.connect_to {
                client = client.resolve(&host, addr);
            }
            let client = client.build().context("building the front door's client")?;
            let url = target.ingress_url(&format!("{}/engine", target.ingress.rest_path));
            let what = format!(
                "the front door's certificate {} the target CA",
                if trusted {
                    "verified by"
                } else {
                    "no longer verified by"
                }
            );
            wait::poll_until(&what, bound, Duration::from_secs(1), || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let answer = client.get(&url).send().await;
                    let seen = match &answer {
                        Ok(response) => format!("GET {url}: {}", response.status()),
                        Err(err) => format!("GET {url}: {err:#}"),
                    };
                    // Any answer means the TLS handshake passed; a refused certificate is an
                    // error before any answer.
                    Ok(wait::Progress {
                        done: answer.is_ok() == trusted,
                        failed: None,
                        seen,
                    })
                }
            })
            .await
        }
        Settle::NoPods(ns_deployment, label) => {
            let client = runner.client().await?;
            let ns = runner.names.namespace.clone();
            let what = format!("no pod of Deployment {ns}/{ns_deployment}");
            wait::poll_until(&what, bound, every, || {
                let (client, ns) = (client.clone(), ns.clone());
                async move {
                    let pods = Api::<Pod>::namespaced(client, &ns)
                        .list(
                            &ListParams::default()
                                .labels(&format!("app.kubernetes.io/name={label}")),
                        )
                        .await?
                        .items;
                    Ok(wait::Progress {
                        done: pods.is_empty(),
                        failed: None,
                        seen: format!("{} pods", pods.len()),
                    })
                }
            })
            .await
        }
    }
}

async fn pods_of(client: &kube::Client, ns: &str, deployment: &str) -> Result<Vec<Pod>> {
    let found = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .with_context(|| format!("reading Deployment {ns}/{deployment}"))?;
    let selector: Vec<String> = found
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .with_context(|| format!("listing the pods of Deployment {ns}/{deployment}"))?
        .items)
}

/// `name: waiting CrashLoopBackOff`, `name: running`, `name: started` (the startup probe
/// passed, not Ready).
fn pod_state(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let states: Vec<String> = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| {
            let state = c.state.as_ref();
            if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
                format!("waiting {}", waiting.reason.clone().unwrap_or_default())
            } else if state.and_then(|s| s.running.as_ref()).is_some() {
                if c.started == Some(true) && !c.ready {
                    "started".into()
                } else {
                    "running".into()
                }
            } else {
                "terminated".into()
            }
        })
        .collect();
    format!("{name}: {}", states.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fault the catalogue says the node injects has an arm in `inject` (an arm missing
    /// would only show as an error in a node run).
    #[test]
    fn every_node_fault_of_the_catalogue_has_an_injection() {
        let source = include_str!("faults.rs");
        for fault in faults::all().filter(|f| f.injected_on(TargetBackend::Node)) {
            assert!(
                source.contains(&format!("\"{}\" =>", fault.id)),
                "{} has no arm in inject",
                fault.id
            );
        }
    }

    #[test]
    fn the_shared_matrix_runs_what_involves_sessions_or_the_route_the_sticky_one_everything() {
        let ids = |mode| {
            node_catalogue(mode)
                .iter()
                .map(|f| f.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(SessionMode::Shared),
            ["other-ca", "ready-pod-outside-service", "redis-gone"]
        );
        let sticky = ids(SessionMode::Sticky);
        assert!(sticky.contains(&"hpa-max-equals-min") && sticky.contains(&"other-ca"));
        assert!(!sticky.contains(&"redis-gone"));
        assert_eq!(sticky.len(), 13);
    }

    #[test]
    fn a_pod_state_names_waiting_reasons_and_started_but_not_ready() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "camunda-1"},
            "status": {"containerStatuses": [
                {"name": "camunda", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "sidecar", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "started": true, "state": {"running": {}}},
            ]},
        }))
        .unwrap();
        assert_eq!(
            pod_state(&pod),
            "camunda-1: waiting CrashLoopBackOff, started"
        );
    }
}
