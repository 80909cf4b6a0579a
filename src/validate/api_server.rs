//! `validate --api-server [VERSION]`: the bundle dry-run server-side against a local
//! kube-apiserver of that version (built from the Go module proxy and cached, like the kwok
//! backend's) with the stack's CRDs installed. The real server applies what no offline check
//! knows: admission defaults, CEL rules and schemas of CRDs, immutable fields, namespaces that
//! must exist. Findings carry rule id `api-server`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camunda_conformance_controlplane::apiserver::{kubectl, Standalone};
use camunda_conformance_controlplane::{build, pins};

use super::input::{self, RawObject};
use super::{Finding, Severity};

pub const RULE: &str = "api-server";
const FIELD_MANAGER: &str = "camunda-conformance";

/// Server-side dry-run findings of the objects of `paths`.
pub fn dry_run(paths: &[PathBuf], options: &input::Options, version: &str) -> Result<Vec<Finding>> {
    let mut objects = Vec::new();
    for path in paths {
        input::load(path, options, &mut |object| objects.push(object))?;
    }
    eprintln!("api-server: Kubernetes {version} (etcd {}, from the Go module proxy; a first build takes 15-25 minutes on 2 cores, later runs use the cache)", pins::ETCD);
    let binaries = build::ensure_kubernetes(version)?;
    let started = Instant::now();
    let mut server = Standalone::start(&binaries)?;
    eprintln!(
        "api-server: kube-apiserver {version} up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let outcome = check(&server.kubeconfig, &objects);
    if outcome.is_err() {
        eprintln!(
            "api-server: component logs kept in {}",
            server.keep_logs().display()
        );
    }
    outcome
}

fn check(kubeconfig: &Path, objects: &[RawObject]) -> Result<Vec<Finding>> {
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    install_crds(kubeconfig)?;
    // The bundle's own namespaces exist for real: a dry-run creates nothing, and every
    // namespaced object of the bundle would otherwise miss its namespace.
    let own: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.kind == "Namespace")
        .map(|o| o.name.as_str())
        .collect();
    let mut findings = Vec::new();
    for object in objects.iter().filter(|o| o.kind == "Namespace") {
        findings.extend(apply(kubeconfig, scratch.path(), object, false)?);
    }
    for object in objects.iter().filter(|o| o.kind != "Namespace") {
        findings.extend(apply(kubeconfig, scratch.path(), object, true)?);
    }
    for finding in &mut findings {
        if let Some(ns) = &finding.namespace {
            if !own.contains(ns.as_str()) && finding.message.contains("not found") {
                finding.severity = Severity::Warning;
                finding.message.push_str(
                    " (the bundle does not create this namespace: an addon or another bundle must)",
                );
            }
        }
    }
    Ok(findings)
}

fn install_crds(kubeconfig: &Path) -> Result<()> {
    for source in pins::CRDS {
        let dir = build::module_dir(source.module, source.version)?.join(source.dir);
        let files: Vec<PathBuf> = if source.files.is_empty() {
            let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("listing {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            all.sort();
            all
        } else {
            source.files.iter().map(|f| dir.join(f)).collect()
        };
        for file in files {
            let shown = file.display().to_string();
            kubectl(
                kubeconfig,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager",
                    FIELD_MANAGER,
                    "--filename",
                    &shown,
                ],
            )
            .output()
            .with_context(|| format!("installing the CRDs of {shown}"))?;
        }
    }
    kubectl(
        kubeconfig,
        &[
            "wait",
            "--for",
            "condition=Established",
            "crd",
            "--all",
            "--timeout",
            "60s",
        ],
    )
    .timeout(Duration::from_secs(90))
    .output()
    .context("waiting for the CRDs to be Established")?;
    Ok(())
}

/// Applies one object server-side (dry-run unless it is a namespace of the bundle); its errors
/// and the server's warnings become findings. Messages name no values: the server echoes
/// field paths and reasons, and Secret data never reaches a message.
fn apply(
    kubeconfig: &Path,
    scratch: &Path,
    object: &RawObject,
    dry_run: bool,
) -> Result<Vec<Finding>> {
    let file = scratch.join("object.json");
    std::fs::write(&file, serde_json::to_vec(&object.value)?)
        .with_context(|| format!("writing {}", file.display()))?;
    let shown = file.display().to_string();
    let mut args = vec!["apply", "--server-side", "--field-manager", FIELD_MANAGER];
    if dry_run {
        args.push("--dry-run=server");
    }
    args.extend(["--filename", &shown]);
    let out = kubectl(kubeconfig, &args).capture()?;
    let mut findings = Vec::new();
    let finding = |severity, message: String| Finding {
        rule: RULE,
        severity,
        resource: format!("{}/{}", object.kind, object.name),
        namespace: object.namespace.clone(),
        file: object.file.clone(),
        line: object.line,
        message,
        input: None,
    };
    let mut errors = Vec::new();
    for line in out.stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix("Warning:") {
            Some(warning) => findings.push(finding(
                Severity::Warning,
                format!("the API server warns: {}", redact_values(warning.trim())),
            )),
            None => errors.push(line),
        }
    }
    if !out.success {
        if errors.is_empty() {
            bail!("kubectl apply of {} failed without saying why", object.name);
        }
        // One error may span lines (a list of invalid fields): one finding.
        findings.push(finding(Severity::Error, server_error(&errors.join(" "))));
    }
    Ok(findings)
}

/// The server quotes invalid string values; they may be secrets (an env value, a Secret's
/// data), so they are replaced. Numbers and field paths stay.
fn redact_values(message: &str) -> String {
    const MARK: &str = "Invalid value: \"";
    let mut out = String::new();
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len()]);
        rest = &rest[at + MARK.len()..];
        match rest.find('"') {
            Some(end) => {
                out.push_str("***");
                rest = &rest[end..];
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// `Error from server (Invalid): error when creating "x.json": Deployment.apps "camunda" is
/// invalid: spec.template...` → the part after the file name.
fn server_error(line: &str) -> String {
    let message = line
        .split_once("\": ")
        .filter(|(head, _)| head.contains("error when"))
        .map_or(line, |(_, rest)| rest);
    format!("the API server refuses it: {}", redact_values(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_invalid_values_are_never_shown() {
        assert_eq!(
            redact_values("env[0].value: Invalid value: \"hunter2\": too long; spec.minReplicas: Invalid value: 0: must be >= 1"),
            "env[0].value: Invalid value: \"***\": too long; spec.minReplicas: Invalid value: 0: must be >= 1"
        );
    }

    #[test]
    fn server_errors_lose_the_scratch_file_name() {
        assert_eq!(
            server_error("Error from server (Invalid): error when creating \"/tmp/x/object.json\": Certificate.cert-manager.io \"c\" is invalid: spec.secretName: Required value"),
            "the API server refuses it: Certificate.cert-manager.io \"c\" is invalid: spec.secretName: Required value"
        );
        assert_eq!(
            server_error("Error from server (NotFound): namespaces \"cert-manager\" not found"),
            "the API server refuses it: Error from server (NotFound): namespaces \"cert-manager\" not found"
        );
    }
}
