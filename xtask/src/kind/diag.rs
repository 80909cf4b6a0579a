//! Diagnostics after a failure, into `<artifacts>/diagnostics/`: pod logs (also of the previous
//! container), events, `describe` of the workloads, the HPA's status and Prometheus's targets.
//! Best effort: a command that fails leaves its error in the file instead of stopping the rest.
//! Rendered manifests are written before the apply (see `write_manifests`), redacted like every
//! diagnostics file (`redact.rs`): secrets never go into the artifacts.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::cli::{kubectl, Cmd};

/// The namespaces whose pods and events explain a failed run.
pub fn namespaces(camunda: &str) -> Vec<String> {
    let mut all: Vec<String> = [
        camunda,
        "ingress-nginx",
        "cert-manager",
        "monitoring",
        "kube-system",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.dedup();
    all
}

/// What a command printed, or why it failed, for a diagnostics file.
fn outcome(cmd: &Cmd) -> String {
    match cmd.capture() {
        Ok(out) if out.success => out.stdout,
        Ok(out) => format!("# `{cmd}` failed\n{}{}", out.stdout, out.stderr),
        Err(err) => format!("# {err:#}\n"),
    }
}

/// The resource types listed per namespace: one `get` each, so that a type the cluster does
/// not serve (a CRD not installed) costs only its own section.
pub const LISTED: [&str; 6] = [
    "all",
    "ingress",
    "hpa",
    "pdb",
    "certificates",
    "servicemonitors",
];

fn save(dir: &Path, name: &str, cmd: &Cmd) {
    write(dir, name, outcome(cmd));
}

/// Every diagnostics file goes through here, redacted (`describe` prints env values).
fn write(dir: &Path, name: &str, text: String) {
    let path = dir.join(name);
    if let Err(err) = std::fs::write(&path, super::redact::redact_text(&text)) {
        eprintln!("warning: writing {}: {err}", path.display());
    }
}

fn get(context: &str, namespace: &str, what: &str, output: &str) -> Cmd {
    kubectl::raw([
        "--context",
        context,
        "--namespace",
        namespace,
        "get",
        what,
        "--output",
        output,
    ])
}

/// Collects everything; returns the folder.
pub fn collect(
    artifacts: &Path,
    context: &str,
    camunda_namespace: &str,
    hpa: &str,
    prometheus_url: Option<&str>,
) -> Result<std::path::PathBuf> {
    let dir = artifacts.join("diagnostics");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("collecting diagnostics into {}", dir.display());
    save(&dir, "events.txt", &kubectl::events(context));
    for namespace in namespaces(camunda_namespace) {
        let ns_dir = dir.join(&namespace);
        std::fs::create_dir_all(&ns_dir)
            .with_context(|| format!("creating {}", ns_dir.display()))?;
        let listed: String = LISTED
            .iter()
            .map(|what| {
                let cmd = get(context, &namespace, what, "wide");
                format!("## {what}: {cmd}\n{}\n", outcome(&cmd))
            })
            .collect();
        write(&ns_dir, "get.txt", listed);
        save(
            &ns_dir,
            "describe.txt",
            &kubectl::raw([
                "--context",
                context,
                "--namespace",
                &namespace,
                "describe",
                "deployments,statefulsets,pods,services,ingresses,hpa",
            ]),
        );
        let pods = get(context, &namespace, "pods", "json").output().ok();
        for pod in pods.as_deref().map(pod_names).unwrap_or_default() {
            save(
                &ns_dir,
                &format!("{pod}.log"),
                &kubectl::logs(context, &namespace, &pod, false),
            );
            let previous = kubectl::logs(context, &namespace, &pod, true);
            // Only pods that restarted have a previous container; skip the noise of the others.
            if let Ok(out) = previous.capture() {
                if out.success && !out.stdout.is_empty() {
                    write(&ns_dir, &format!("{pod}.previous.log"), out.stdout);
                }
            }
        }
    }
    save(
        &dir,
        "hpa.yaml",
        &get(context, camunda_namespace, &format!("hpa/{hpa}"), "yaml"),
    );
    save(
        &dir,
        "certificates.yaml",
        &kubectl::raw([
            "--context",
            context,
            "get",
            "certificates,clusterissuers",
            "--all-namespaces",
            "--output",
            "yaml",
        ]),
    );
    if let Some(url) = prometheus_url {
        let targets = format!("{}/api/v1/targets", url.trim_end_matches('/'));
        let text = reqwest::blocking::get(&targets)
            .and_then(|r| r.text())
            .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
        write(&dir, "prometheus-targets.json", text);
    }
    Ok(dir)
}

fn pod_names(list_json: &str) -> Vec<String> {
    serde_json::from_str::<Value>(list_json)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// The manifests as applied, secrets removed (`redact`: Secret values, env and ConfigMap
/// entries named like secrets, keys, URL passwords; the names stay, so one can see what was set).
pub fn redact(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .map(|doc| {
            let mut doc = doc.clone();
            super::redact::redact_doc(&mut doc);
            doc
        })
        .collect()
}

/// Multi-document YAML of the docs, Secrets redacted, for reading (`--plan`).
pub fn to_yaml(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in redact(docs) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&doc).context("serialising a manifest")?);
    }
    Ok(out)
}

/// The same as files that kubectl can apply: each document as JSON (valid YAML). serde_yaml
/// writes the string "no" bare, which kubectl's YAML 1.1 reads as `false` (found applying
/// redis's `--appendonly no` to a real API server).
pub fn to_documents(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in redact(docs) {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(&doc).context("serialising a manifest")?);
        out.push('\n');
    }
    Ok(out)
}

pub fn write_manifests(path: &Path, docs: &[Value]) -> Result<()> {
    std::fs::write(path, to_documents(docs)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_everything_else_kept() {
        let docs = vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "camunda"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"log-level": "info", "admin-password": "hunter3"}}),
        ];
        let yaml = to_yaml(&docs).unwrap();
        assert!(!yaml.contains("aHVudGVyMg=="), "{yaml}");
        assert!(yaml.contains("password: <redacted>"), "{yaml}");
        assert!(yaml.contains("user: <redacted>"), "{yaml}");
        assert!(
            yaml.contains("log-level: info"),
            "a ConfigMap is not a Secret: {yaml}"
        );
        assert!(
            !yaml.contains("hunter3"),
            "a ConfigMap key named like a password is: {yaml}"
        );
        let files = to_documents(&docs).unwrap();
        assert!(!files.contains("aHVudGVyMg=="), "{files}");
        assert!(files.contains("\"password\": \"<redacted>\""), "{files}");
        // Files read back as the same documents, strings YAML 1.1 takes for booleans included.
        let args = vec![json!({"kind": "Deployment", "args": ["--appendonly", "no", "on"]})];
        let text = to_documents(&args).unwrap();
        assert_eq!(
            camunda_conformance::cluster::apply::parse_documents(&text).unwrap(),
            args
        );
        assert!(text.contains("\"no\""), "{text}");
    }

    #[test]
    fn pod_names_come_from_a_pod_list() {
        let list = std::fs::read_to_string(
            crate::artifacts::workspace_root().join("fixtures/kube/pods.json"),
        )
        .unwrap();
        assert_eq!(pod_names(&list).len(), 4);
        assert!(pod_names("not json").is_empty());
    }
}
