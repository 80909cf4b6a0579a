//! `cargo xtask test-control-plane`: the kind/existing code paths against a real API server and
//! real controllers (the kwok control plane, cached binaries), where unit tests only have
//! recorded objects. Run by `.ci/run` after the binaries are built; each test asserts what the
//! real server did and fails with what it saw.
//!
//! Why a command and not `#[ignore]` tests: the control plane is one set of processes for all
//! tests (starting it costs seconds, building it minutes), the tests depend on each other's
//! order (diagnostics and the watch retry need a cluster without CRDs), and Ctrl-C must stop it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use camunda_conformance::cluster::deploy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::build;
use super::control_plane::{self, ControlPlane, CONTEXT};
use super::pins;
use crate::artifacts::workspace_root;
use crate::kind::cli::Cmd;
use crate::kind::{diag, render};
use camunda_conformance::cluster::apply::{self as cluster, Applier, Conflicts, FIELD_MANAGER};
use camunda_conformance::cluster::wait;

const AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";

pub fn run() -> Result<bool> {
    let private = super::prepare_private_dir()?;
    let logs = tempfile::Builder::new()
        .prefix("camunda-conformance-control-plane-tests-")
        .tempdir()
        .context("creating the test logs folder")?;
    let binaries = build::ensure()?;
    let plane = ControlPlane::start(&binaries, &private, logs.path(), false)?;
    println!("control plane up (logs {})", logs.path().display());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(tests(logs.path(), &plane));
    drop(plane);
    match outcome {
        Ok(0) => Ok(true),
        Ok(failed) => {
            println!(
                "{failed} control-plane test(s) FAILED; component logs kept in {}",
                logs.keep().display()
            );
            Ok(false)
        }
        Err(err) => {
            println!("component logs kept in {}", logs.keep().display());
            Err(err)
        }
    }
}

/// Runs every test in order; returns how many failed.
async fn tests(work: &Path, plane: &ControlPlane) -> Result<usize> {
    let client = camunda_conformance::cluster::connect(Some(CONTEXT)).await?;
    let mut applier = Applier::new(client.clone(), Conflicts::Force);
    let mut failed = 0;
    let mut report = |name: &str, started: Instant, result: Result<String>| match result {
        Ok(seen) => println!(
            "test {name} ... ok ({:.1}s): {seen}",
            started.elapsed().as_secs_f64()
        ),
        Err(err) => {
            failed += 1;
            println!(
                "test {name} ... FAILED ({:.1}s): {err:#}",
                started.elapsed().as_secs_f64()
            );
        }
    };

    let started = Instant::now();
    let result = diagnostics_survive_a_missing_crd(work);
    report("diagnostics_survive_a_missing_crd", started, result);

    let started = Instant::now();
    let result = a_watch_error_is_retried_until_the_deadline(&client).await;
    report(
        "a_watch_error_is_retried_until_the_deadline",
        started,
        result,
    );

    // The rest needs the stack's CRDs, the simulated node and cert-manager's namespace.
    let mut crds = Vec::new();
    for files in pins::CRDS {
        crds.extend(control_plane::module_docs(files)?);
    }
    applier.apply(&crds).await?;
    applier
        .apply(&control_plane::cluster_objects(
            plane.metrics_server_port,
            &plane.ca,
        )?)
        .await?;

    let started = Instant::now();
    let result =
        every_overlay_applies_without_warning_and_twice_changes_nothing(&mut applier).await;
    report(
        "every_overlay_applies_without_warning_and_twice_changes_nothing",
        started,
        result,
    );

    let started = Instant::now();
    let result =
        switching_session_modes_removes_the_other_modes_fields(&mut applier, &client).await;
    report(
        "switching_session_modes_removes_the_other_modes_fields",
        started,
        result,
    );

    let started = Instant::now();
    let result = the_hpa_target_is_awaited_at_min_replicas(&mut applier, &client).await;
    report("the_hpa_target_is_awaited_at_min_replicas", started, result);

    let started = Instant::now();
    let result = deploy_refuses_a_conflict_unless_forced(&client).await;
    report("deploy_refuses_a_conflict_unless_forced", started, result);

    let started = Instant::now();
    let result = deploy_names_a_missing_out_of_band_secret_and_applies_nothing(&client).await;
    report(
        "deploy_names_a_missing_out_of_band_secret_and_applies_nothing",
        started,
        result,
    );

    let started = Instant::now();
    let result = deploy_awaits_an_external_secret_and_never_creates_it(&client).await;
    report(
        "deploy_awaits_an_external_secret_and_never_creates_it",
        started,
        result,
    );

    let started = Instant::now();
    let result = deploy_cli_rolls_out_the_e2e_overlay_and_leaves_nothing_on_disk(&client).await;
    report(
        "deploy_cli_rolls_out_the_e2e_overlay_and_leaves_nothing_on_disk",
        started,
        result,
    );

    let started = Instant::now();
    let result =
        tokio::task::block_in_place(validate_api_server_reports_what_only_the_server_knows);
    report(
        "validate_api_server_reports_what_only_the_server_knows",
        started,
        result,
    );
    Ok(failed)
}

/// `camunda-conformance validate --api-server` (its own kube-apiserver from the same cache):
/// the server's refusal and the missing namespace are findings; the shipped e2e overlay
/// passes with the namespace its addon creates named as a warning.
fn validate_api_server_reports_what_only_the_server_knows() -> Result<String> {
    let cli = crate::conformance::build_cli()?;
    let fixture = workspace_root().join("fixtures/validate/api-server/server-side-only.yaml");
    let run = |paths: &[&Path]| -> Result<(Option<i32>, Value)> {
        let mut cmd = Cmd::new(
            cli.display().to_string(),
            ["validate", "--api-server", "--format", "json"],
        );
        cmd.args
            .extend(paths.iter().map(|p| p.display().to_string()));
        let out = cmd.timeout(Duration::from_secs(600)).capture()?;
        let code = if out.success { Some(0) } else { Some(1) };
        let report: Value = serde_json::from_str(&out.stdout)
            .with_context(|| format!("validate printed no JSON: {}", out.stderr.trim()))?;
        Ok((code, report))
    };
    let api_findings = |report: &Value| -> Vec<(String, String, String)> {
        report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["rule"] == "api-server")
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (text("severity"), text("resource"), text("message"))
            })
            .collect()
    };
    let (code, report) = run(&[&fixture])?;
    let found = api_findings(&report);
    ensure!(
        code == Some(1),
        "expected exit 1 for the fixture, got {code:?}: {found:?}"
    );
    ensure!(
        found.iter().any(|(sev, res, msg)| sev == "error"
            && res == "HorizontalPodAutoscaler/camunda"
            && msg.contains("spec.minReplicas")),
        "no api-server error for minReplicas 0: {found:?}"
    );
    ensure!(
        found.iter().any(|(sev, res, msg)| sev == "warning"
            && res == "ConfigMap/settings"
            && msg.contains("namespaces \"elsewhere\" not found")),
        "no api-server warning for the missing namespace: {found:?}"
    );
    let (code, report) = run(&[&overlay("e2e")])?;
    let e2e = api_findings(&report);
    ensure!(code == Some(0), "the e2e overlay should pass: {e2e:?}");
    ensure!(
        e2e.iter()
            .all(|(sev, _, msg)| sev == "warning" && msg.contains("\"cert-manager\" not found")),
        "the e2e overlay: {e2e:?}"
    );
    Ok(format!(
        "fixture: {} server findings; e2e overlay: {} warning(s) (cert-manager's namespace)",
        found.len(),
        e2e.len()
    ))
}

fn overlay(name: &str) -> std::path::PathBuf {
    workspace_root().join("manifests/overlays").join(name)
}

/// One `get` per resource type: the type whose CRD is missing fails alone.
fn diagnostics_survive_a_missing_crd(work: &Path) -> Result<String> {
    let dir = diag::collect(work, CONTEXT, "camunda", "camunda", None)?;
    let listed = std::fs::read_to_string(dir.join("camunda/get.txt"))?;
    let section = |what: &str| -> Result<&str> {
        let start = listed
            .find(&format!("## {what}:"))
            .ok_or_else(|| anyhow!("get.txt has no section for {what}:\n{listed}"))?;
        let rest = &listed[start..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
        Ok(&rest[..end])
    };
    let certificates = section("certificates")?;
    ensure!(
        certificates.contains("failed"),
        "listing certificates without their CRD should fail: {certificates}"
    );
    for served in ["all", "hpa", "pdb"] {
        let text = section(served)?;
        ensure!(!text.contains("failed"), "{served} was not listed: {text}");
    }
    Ok(format!(
        "certificates failed alone ({}), the other types were listed",
        certificates.lines().nth(2).unwrap_or_default().trim()
    ))
}

/// A watch on a kind the server does not serve yet errors; the wait starts it again until the
/// kind and the object exist, within its deadline.
async fn a_watch_error_is_retried_until_the_deadline(client: &kube::Client) -> Result<String> {
    let gvk = GroupVersionKind::gvk("external-secrets.io", "v1", "SecretStore");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "secretstores");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let store = json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": "watch-retry", "namespace": "default"},
        "spec": {"provider": {"fake": {"data": []}}},
    });
    let delay = Duration::from_secs(4);
    let create = {
        let client = client.clone();
        async move {
            tokio::time::sleep(delay).await;
            let source = pins::CRDS
                .iter()
                .find(|c| c.module.ends_with("/external-secrets"))
                .ok_or_else(|| anyhow!("no external-secrets CRDs pinned"))?;
            let crds = control_plane::module_docs(&pins::ModuleFiles {
                files: &["external-secrets.io_secretstores.yaml"],
                ..*source
            })?;
            let mut applier = Applier::new(client, Conflicts::Force);
            applier.apply(&crds).await?;
            applier.apply(&[store]).await
        }
    };
    let started = Instant::now();
    let (waited, created) = tokio::join!(
        wait::watch_until(
            api,
            "watch-retry",
            "SecretStore default/watch-retry (its CRD installed after the watch started)",
            Duration::from_secs(60),
            |_: &DynamicObject| wait::Progress::done("exists"),
        ),
        create
    );
    created.context("installing the CRD and the object")?;
    waited?;
    ensure!(
        started.elapsed() >= delay,
        "the wait ended before the object could exist"
    );
    Ok(format!(
        "the watch failed while the kind was not served and succeeded after {:.1}s",
        started.elapsed().as_secs_f64()
    ))
}

/// What server-side apply left: generation and our manager's Apply time, per object.
async fn applied_state(applier: &mut Applier, docs: &[Value]) -> Result<BTreeMap<String, String>> {
    let mut state = BTreeMap::new();
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let live = applier.api_for(doc).await?.get(name).await?;
        let applied = live
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| {
                m.manager.as_deref() == Some(FIELD_MANAGER)
                    && m.operation.as_deref() == Some("Apply")
            })
            .map(|m| format!("{:?}", m.time))
            .collect::<Vec<_>>()
            .join(",");
        state.insert(
            cluster::describe(doc),
            format!(
                "generation {:?}, applied {applied}",
                live.metadata.generation
            ),
        );
    }
    Ok(state)
}

async fn every_overlay_applies_without_warning_and_twice_changes_nothing(
    applier: &mut Applier,
) -> Result<String> {
    let root = workspace_root().join("manifests/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    ensure!(!names.is_empty(), "no overlays under {}", root.display());
    for name in &names {
        let docs = render(&overlay(name))?;
        // kubectl shows the API server's warnings (deprecations, unknown fields) on stderr.
        let out = Cmd::new(
            "kubectl",
            [
                "--context",
                CONTEXT,
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                FIELD_MANAGER,
                "--kustomize",
                &overlay(name).display().to_string(),
            ],
        )
        .capture()?;
        ensure!(
            out.success,
            "overlay {name}: apply failed: {}",
            out.stderr.trim()
        );
        ensure!(
            !out.stderr.to_lowercase().contains("warning"),
            "overlay {name}: the API server warned: {}",
            out.stderr.trim()
        );
        applier
            .apply(&docs)
            .await
            .with_context(|| format!("overlay {name}"))?;
        let first = applied_state(applier, &docs).await?;
        applier
            .apply(&docs)
            .await
            .with_context(|| format!("overlay {name}, again"))?;
        let second = applied_state(applier, &docs).await?;
        let changed: Vec<String> = first
            .iter()
            .filter(|(k, v)| second.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: {v} -> {}",
                    second.get(k).map_or("gone", String::as_str)
                )
            })
            .collect();
        ensure!(
            changed.is_empty(),
            "overlay {name}: applying again changed {changed:?}"
        );
    }
    Ok(format!(
        "{} overlays ({}), no warning, idempotent",
        names.len(),
        names.join(", ")
    ))
}

fn session_store(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == "SESSION_STORE")?
        .value
        .clone()
}

async fn switching_session_modes_removes_the_other_modes_fields(
    applier: &mut Applier,
    client: &kube::Client,
) -> Result<String> {
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "camunda");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "camunda");
    let mut seen = Vec::new();
    for (name, sticky, store) in [
        ("e2e", true, "none"),
        ("e2e-shared", false, "redis"),
        ("e2e", true, "none"),
    ] {
        applier.apply(&render(&overlay(name))?).await?;
        let ingress = ingresses.get("camunda").await?;
        let affinity = ingress
            .metadata
            .annotations
            .unwrap_or_default()
            .get(AFFINITY)
            .cloned();
        if affinity.is_some() != sticky {
            bail!("after applying {name}: Ingress annotation {AFFINITY} is {affinity:?}");
        }
        let found = session_store(&deployments.get("camunda").await?);
        if found.as_deref() != Some(store) {
            bail!("after applying {name}: SESSION_STORE is {found:?}, expected {store}");
        }
        seen.push(format!(
            "{name}: affinity {}, SESSION_STORE {store}",
            affinity.as_deref().unwrap_or("none")
        ));
    }
    Ok(seen.join("; "))
}

/// The race the real controllers showed: the Deployment without `replicas` rolls out at 1/1
/// before the HPA raises it; the wait must not end there.
async fn the_hpa_target_is_awaited_at_min_replicas(
    applier: &mut Applier,
    client: &kube::Client,
) -> Result<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "camunda");
    // Start from the count the API server gives a Deployment without replicas.
    deployments
        .delete("camunda", &Default::default())
        .await
        .ok();
    let deleted = Instant::now();
    while deployments.get_opt("camunda").await?.is_some() {
        ensure!(
            deleted.elapsed() < Duration::from_secs(60),
            "Deployment camunda/camunda was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    applier.apply(&render(&overlay("e2e"))?).await?;
    wait::watch_until(
        deployments.clone(),
        "camunda",
        "Deployment camunda/camunda at the HPA's minReplicas 2, rolled out",
        Duration::from_secs(180),
        |d: &Deployment| wait::deployment_scaled_and_rolled_out(d, 2),
    )
    .await?;
    let replicas = deployments
        .get("camunda")
        .await?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    ensure!(replicas >= 2, "the wait ended at {replicas} replicas");
    Ok(format!(
        "rolled out at {replicas} replicas, not at the API server's 1"
    ))
}

/// The namespace of the deploy tests (apart from the stack's own `camunda`).
const DEPLOY_NS: &str = "deploy-tests";

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A Deployment of one replica whose env takes `PASSWORD` from Secret `secret`.
fn app_with_secret(name: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": DEPLOY_NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "app", "image": "registry.example/app:1",
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]
                }]}
            }
        }
    })
}

fn config_map(value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": DEPLOY_NS},
        "data": {"level": value}})
}

fn deploy_plan(docs: Vec<Value>) -> Result<deploy::Plan> {
    deploy::Plan::new(docs)
}

/// Another field manager owns `data.level`: deploy refuses, naming the object, the manager and
/// `--force-conflicts`, and changes nothing; with force it takes the field over.
async fn deploy_refuses_a_conflict_unless_forced(client: &kube::Client) -> Result<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), DEPLOY_NS);
    Applier::new(client.clone(), Conflicts::Force)
        .apply(&[namespace(DEPLOY_NS)])
        .await?;
    api.patch(
        "settings",
        &PatchParams::apply("platform-team"),
        &Patch::Apply(&config_map("info")),
    )
    .await
    .context("applying the ConfigMap as platform-team")?;
    let timeout = Duration::from_secs(30);
    let plan = deploy_plan(vec![config_map("debug")])?;
    let err = match deploy::deploy(client, &plan, Conflicts::Refuse, timeout).await {
        Ok(()) => bail!("deploy took over platform-team's field without --force-conflicts"),
        Err(err) => format!("{err:#}"),
    };
    for expected in [
        "ConfigMap deploy-tests/settings",
        "platform-team",
        "--force-conflicts",
        ".data.level",
    ] {
        ensure!(
            err.contains(expected),
            "the refusal does not name {expected:?}: {err}"
        );
    }
    let level = |cm: ConfigMap| cm.data.unwrap_or_default().get("level").cloned();
    ensure!(
        level(api.get("settings").await?).as_deref() == Some("info"),
        "the refused deploy changed the field"
    );
    deploy::deploy(client, &plan, Conflicts::Force, timeout).await?;
    ensure!(
        level(api.get("settings").await?).as_deref() == Some("debug"),
        "--force-conflicts did not take the field over"
    );
    Ok(format!("refused: {err}; forced: taken over"))
}

/// A Secret nothing in the bundle provides and the cluster lacks: named with its user, before
/// anything is applied.
async fn deploy_names_a_missing_out_of_band_secret_and_applies_nothing(
    client: &kube::Client,
) -> Result<String> {
    let plan = deploy_plan(vec![app_with_secret("needs-secret", "from-the-vault")])?;
    let err = match deploy::deploy(client, &plan, Conflicts::Refuse, Duration::from_secs(30)).await
    {
        Ok(()) => bail!("deploy went ahead without Secret from-the-vault"),
        Err(err) => format!("{err:#}"),
    };
    ensure!(
        err.contains("Secret deploy-tests/from-the-vault does not exist (referenced by Deployment deploy-tests/needs-secret env PASSWORD)"),
        "{err}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), DEPLOY_NS);
    ensure!(
        deployments.get_opt("needs-secret").await?.is_none(),
        "the Deployment was applied although its Secret is missing"
    );
    Ok(err)
}

/// An ExternalSecret provides the Secret: deploy waits for its operator (none runs here), times
/// out saying what it waited for, and never creates the Secret; once the test creates it (as the
/// operator would), the same deploy rolls out.
async fn deploy_awaits_an_external_secret_and_never_creates_it(
    client: &kube::Client,
) -> Result<String> {
    let external = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": DEPLOY_NS},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "platform-vault"},
            "target": {"name": "db-from-operator"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "camunda/database", "property": "password"}}]
        }
    });
    let plan = deploy_plan(vec![
        external,
        app_with_secret("external", "db-from-operator"),
    ])?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), DEPLOY_NS);
    let err = match deploy::deploy(client, &plan, Conflicts::Refuse, Duration::from_secs(6)).await {
        Ok(()) => bail!("deploy succeeded although no operator created the Secret"),
        Err(err) => format!("{err:#}"),
    };
    ensure!(
        err.contains(
            "waiting for Secret deploy-tests/db-from-operator from ExternalSecret deploy-tests/db"
        ) && err.contains("timed out")
            && err.contains("the object does not exist yet"),
        "{err}"
    );
    ensure!(
        secrets.get_opt("db-from-operator").await?.is_none(),
        "deploy created the Secret the ExternalSecret provides"
    );
    let operator = {
        let secrets = secrets.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let secret = json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db-from-operator", "namespace": DEPLOY_NS},
                "stringData": {"password": "created-by-the-test"}});
            secrets
                .patch(
                    "db-from-operator",
                    &PatchParams::apply("external-secrets"),
                    &Patch::Apply(&secret),
                )
                .await
                .context("creating the Secret as the operator would")
        }
    };
    let (deployed, created) = tokio::join!(
        deploy::deploy(client, &plan, Conflicts::Refuse, Duration::from_secs(120)),
        operator
    );
    created?;
    deployed.context("deploy once the operator's Secret exists")?;
    Ok(format!("without the operator: {err}; with it: rolled out"))
}

/// `camunda-conformance deploy` as a platform team runs it, on the shipped e2e overlay (its
/// Secrets created out of band first): exit 0, and nothing in its working directory or TMPDIR.
async fn deploy_cli_rolls_out_the_e2e_overlay_and_leaves_nothing_on_disk(
    client: &kube::Client,
) -> Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "camunda");
    for name in ["camunda-db", "camunda-admin"] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "camunda"},
            "stringData": {"username": "conformance", "password": "out-of-band-test"}});
        secrets
            .patch(
                name,
                &PatchParams::apply("platform-team"),
                &Patch::Apply(&secret),
            )
            .await
            .with_context(|| format!("creating Secret camunda/{name} out of band"))?;
    }
    let cli = tokio::task::block_in_place(crate::conformance::build_cli)?;
    let cwd = tempfile::tempdir().context("creating a working directory")?;
    let tmp = tempfile::tempdir().context("creating a TMPDIR")?;
    let overlay = overlay("e2e").display().to_string();
    let cmd = Cmd::new(
        cli.display().to_string(),
        [
            "deploy",
            "--kube-context",
            CONTEXT,
            "--timeout",
            "3m",
            &overlay,
        ],
    )
    .env("TMPDIR", tmp.path().display().to_string())
    .dir(cwd.path())
    .timeout(Duration::from_secs(240));
    let out = tokio::task::block_in_place(|| cmd.capture())?;
    ensure!(
        out.success,
        "deploy failed: {}\n{}",
        out.stderr.trim(),
        out.stdout.trim()
    );
    ensure!(
        out.stdout.contains("rolled out") && out.stdout.contains("deployed "),
        "{}",
        out.stdout
    );
    let left: Vec<_> = [cwd.path(), tmp.path()]
        .iter()
        .flat_map(|d| crate::artifacts::files_below(d).unwrap_or_default())
        .collect();
    ensure!(left.is_empty(), "deploy left files behind: {left:?}");
    let waits: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(": done in"))
        .map(str::trim)
        .collect();
    Ok(format!(
        "exit 0, nothing left in its working directory or TMPDIR; {}",
        waits.join("; ")
    ))
}
