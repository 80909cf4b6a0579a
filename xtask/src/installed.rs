//! `cargo xtask test-installed`: the CLI as a platform team gets it — `cargo install` into a
//! temp root — run from a temp folder outside this repository that holds only a rendered
//! overlay and a copy of a Helm chart: `validate` on each (the chart rendered by the `helm` on
//! PATH with a values file and `--set`, its findings on its templates), then `run
//! --kube-context` against the control plane that `cargo xtask e2e --backend kwok --keep` left
//! (discovery printed and checked against the overlay and the cluster, then the scaling suite).
//! `--validate-only` stops after the validate steps, with no control plane. Everything it makes
//! goes with its temp folder, also on error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use camunda_conformance_suites::Target;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use serde_json::Value;

use crate::artifacts::workspace_root;

/// A cold debug build of the CLI on two cores takes minutes; an hour means something hangs.
const INSTALL_BOUND: Duration = Duration::from_secs(3600);
const RENDER_BOUND: Duration = Duration::from_secs(120);
/// Discovery and the read-only scaling checks against a local control plane.
const RUN_BOUND: Duration = Duration::from_secs(600);
const OVERLAY: &str = "manifests/overlays/e2e";
/// The chart the team keeps in its repository (copied out of this one), and what `validate`
/// must say of it with its production values and autoscaling on.
const CHART: &str = "fixtures/validate/helm/camunda";

pub fn run(validate_only: bool) -> Result<bool> {
    let root = workspace_root();
    let kubeconfig = crate::kwok::kept_kubeconfig();
    ensure!(
        validate_only || kubeconfig.is_file(),
        "no kept kwok control plane ({} is missing): run `cargo xtask e2e --backend kwok --keep` first, or pass --validate-only",
        kubeconfig.display()
    );
    let tmp = tempfile::Builder::new()
        .prefix("camunda-conformance-installed-")
        .tempdir()
        .context("creating the temp folder")?;
    ensure!(
        !tmp.path().starts_with(&root),
        "the temp folder {} is inside the repository: set TMPDIR elsewhere",
        tmp.path().display()
    );

    // `cargo install --path .` is what users run. `--debug`: the same code without the release
    // profile's whole-program optimisation (~7 min more on 2 cores, which buys speed, not
    // behaviour); it reuses this repository's debug build.
    let install_root = tmp.path().join("install");
    let mut install = crate::conformance::cargo();
    install.current_dir(&root).args([
        "install", "--debug", "--path", ".", "--locked", "--quiet", "--root",
    ]);
    install
        .arg(&install_root)
        .arg("--target-dir")
        .arg(root.join("target"));
    println!(
        "$ cargo install --debug --path . --locked --root {}",
        install_root.display()
    );
    let status = crate::command::status(install, "cargo install --path .", INSTALL_BOUND)?;
    ensure!(status.success(), "cargo install --path . failed ({status})");
    let bin = install_root.join("bin/camunda-conformance");

    // The team's repository: nothing but their overlay, rendered.
    let team = tmp.path().join("team");
    std::fs::create_dir_all(team.join("overlay")).context("creating the team folder")?;
    let mut render = Command::new("kubectl");
    render.arg("kustomize").arg(root.join(OVERLAY));
    let rendered = crate::command::output(render, "kubectl kustomize", RENDER_BOUND)?;
    ensure!(
        rendered.status.success(),
        "kubectl kustomize {OVERLAY}: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    std::fs::write(team.join("overlay/all.yaml"), &rendered.stdout)
        .context("writing overlay/all.yaml")?;
    let expected = Expected::from_overlay(&rendered.stdout)?;

    let cli = |args: &[&str]| {
        let mut command = Command::new(&bin);
        command
            .current_dir(&team)
            .env("KUBECONFIG", &kubeconfig)
            .args(args);
        println!("$ camunda-conformance {}", args.join(" "));
        crate::command::output(
            command,
            &format!("camunda-conformance {}", args[0]),
            RUN_BOUND,
        )
    };

    let validate = cli(&["validate", "overlay/all.yaml"])?;
    ensure!(
        validate.status.success(),
        "validate overlay/all.yaml failed ({}):\n{}",
        validate.status,
        String::from_utf8_lossy(&validate.stdout)
    );
    println!("  validate: passed");
    validate_chart(&root, &team, &cli)?;
    if validate_only {
        tmp.close().context("removing the temp folder")?;
        return Ok(true);
    }

    let context = crate::kwok::control_plane::CONTEXT;
    let ns = expected.namespace.as_str();
    let discovery = ["run", "--kube-context", context, "--namespace", ns];
    let printed = cli(&[&discovery[..], &["--print-target", "-"]].concat())?;
    ensure!(
        printed.status.success(),
        "run --print-target failed ({}): {}",
        printed.status,
        String::from_utf8_lossy(&printed.stderr)
    );
    let target: Target = toml::from_str(&String::from_utf8_lossy(&printed.stdout))
        .context("parsing the printed target description")?;
    let ready = ready_pods(&kubeconfig, ns, &expected.deployment)?;
    expected.check(&target, ready)?;
    println!(
        "  discovered: host {}, {} replicas (one per Ready pod), metrics port {} path {}, HPA {}",
        expected.host, ready, expected.metrics_port, expected.metrics_path, expected.hpa
    );

    let report = tmp.path().join("report");
    let report_arg = report.display().to_string();
    let args = [
        &discovery[..],
        &[
            "--suite",
            "scaling",
            "--strict",
            "--report-dir",
            &report_arg,
        ],
    ]
    .concat();
    let scaling = cli(&args)?;
    println!("{}", String::from_utf8_lossy(&scaling.stdout).trim_end());
    ensure!(
        scaling.status.code() == Some(0),
        "run --suite scaling exited {}: {}",
        scaling.status,
        String::from_utf8_lossy(&scaling.stderr)
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("report.json")).context("reading report.json")?,
    )
    .context("parsing report.json")?;
    let passed = json["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "pass")
        .count();
    ensure!(passed > 0, "the scaling suite passed no check: {json}");
    println!("  scaling: exit 0, {passed} checks passed");
    tmp.close().context("removing the temp folder")?;
    Ok(true)
}

/// `validate` on a chart directory of the team's folder: rendered by the `helm` on PATH with a
/// values file and `--set`, the renderer and its version said, findings on the chart's own
/// template files (relative to the team's folder), exit 1 for its errors.
fn validate_chart(
    root: &Path,
    team: &Path,
    cli: &dyn Fn(&[&str]) -> Result<std::process::Output>,
) -> Result<()> {
    copy_dir(&root.join(CHART), &team.join("chart"))?;
    let validate = cli(&[
        "validate",
        "chart",
        "-f",
        "chart/values-prod.yaml",
        "--set",
        "autoscaling.enabled=true",
    ])?;
    let stdout = String::from_utf8_lossy(&validate.stdout);
    ensure!(
        validate.status.code() == Some(1),
        "validate chart exited {} (expected 1, for its errors):\n{stdout}{}",
        validate.status,
        String::from_utf8_lossy(&validate.stderr)
    );
    let rendered = format!(
        "chart: 4 objects, rendered by helm {}",
        camunda_conformance::validate::input::HELM_VERSION
    );
    ensure!(
        stdout.lines().any(|l| l.starts_with(&rendered)),
        "validate chart does not say `{rendered} …`:\n{stdout}"
    );
    let expected = [
        "Deployment/release-name-camunda-bpm (chart/templates/deployment.yaml:2)",
        "error   session-strategy           runs up to 5 replicas with in-memory sessions",
    ];
    for line in expected {
        ensure!(
            stdout.contains(line),
            "validate chart does not say `{line}`:\n{stdout}"
        );
    }
    println!("  validate chart: exit 1, rendered by helm, session-strategy on chart/templates/deployment.yaml");
    Ok(())
}

/// Copies a directory tree (a chart: plain files and folders).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| {
                format!("copying {} to {}", entry.path().display(), target.display())
            })?;
        }
    }
    Ok(())
}

/// What the overlay says discovery must find.
struct Expected {
    namespace: String,
    deployment: String,
    host: String,
    hpa: String,
    metrics_port: u16,
    metrics_path: String,
}

impl Expected {
    fn from_overlay(yaml: &[u8]) -> Result<Self> {
        let docs =
            camunda_conformance::cluster::apply::parse_documents(&String::from_utf8_lossy(yaml))?;
        let of_kind = |kind: &str| {
            docs.iter()
                .find(|d| d["kind"] == kind)
                .ok_or_else(|| anyhow!("{OVERLAY} renders no {kind}"))
        };
        let hpa = of_kind("HorizontalPodAutoscaler")?;
        let deployment = hpa["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("the HPA has no scaleTargetRef.name"))?;
        let monitor = of_kind("ServiceMonitor")?;
        let deployment_doc = docs
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == deployment)
            .ok_or_else(|| anyhow!("{OVERLAY} renders no Deployment {deployment}"))?;
        let metrics_port = deployment_doc["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"] == "metrics")
            .and_then(|p| p["containerPort"].as_u64())
            .ok_or_else(|| anyhow!("Deployment {deployment} has no container port `metrics`"))?;
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("{OVERLAY}: no {what}"))
        };
        Ok(Self {
            namespace: text(&hpa["metadata"]["namespace"], "HPA namespace")?,
            deployment: deployment.to_string(),
            host: text(
                &of_kind("Ingress")?["spec"]["tls"][0]["hosts"][0],
                "Ingress TLS host",
            )?,
            hpa: text(&hpa["metadata"]["name"], "HPA name")?,
            metrics_port: u16::try_from(metrics_port).context("metrics port")?,
            metrics_path: monitor["spec"]["endpoints"][0]["path"]
                .as_str()
                .unwrap_or("/metrics")
                .to_string(),
        })
    }

    fn check(&self, target: &Target, ready: usize) -> Result<()> {
        ensure!(
            target.ingress.host.as_deref() == Some(self.host.as_str()),
            "host: expected {}, discovered {:?}",
            self.host,
            target.ingress.host
        );
        ensure!(
            target.replicas.len() == ready && ready > 0,
            "replicas: expected one per Ready pod ({ready}), discovered {}",
            target.replicas.len()
        );
        let suffix = format!(":{}{}", self.metrics_port, self.metrics_path);
        for replica in &target.replicas {
            let url = replica.metrics_url.as_deref().unwrap_or_default();
            ensure!(
                url.ends_with(&suffix),
                "replica {}: metrics_url {url} does not end in {suffix}",
                replica.name
            );
        }
        let kubernetes = target
            .kubernetes
            .as_ref()
            .ok_or_else(|| anyhow!("the printed target has no [kubernetes]"))?;
        ensure!(
            kubernetes.hpa == self.hpa && kubernetes.deployment == self.deployment,
            "HPA/Deployment: expected {}/{}, discovered {}/{}",
            self.hpa,
            self.deployment,
            kubernetes.hpa,
            kubernetes.deployment
        );
        ensure!(
            !target.disruptive.allowed,
            "the printed target allows disruptive checks without --allow-disruptive"
        );
        if target.credentials.password_file.is_some() || target.credentials.password_env.is_none() {
            bail!("the printed target must name the password by environment variable only");
        }
        Ok(())
    }
}

/// The Ready pods of the Deployment, counted here from the API (not through discovery).
fn ready_pods(kubeconfig: &Path, ns: &str, deployment: &str) -> Result<usize> {
    std::env::set_var("KUBECONFIG", kubeconfig);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client =
            camunda_conformance::cluster::connect(Some(crate::kwok::control_plane::CONTEXT))
                .await?;
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(client.clone(), ns);
        let labels = deployments
            .get(deployment)
            .await
            .with_context(|| format!("reading Deployment {ns}/{deployment}"))?
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default();
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let pods = Api::<Pod>::namespaced(client, ns)
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .with_context(|| format!("listing the pods of {ns}/{deployment}"))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count())
    })
}
