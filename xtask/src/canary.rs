//! The secrets canary: a run's own passwords and private key, in every form a request or a file
//! carries them, must appear in none of its output lines and none of its artifacts.
//!
//! `cargo xtask test-secrets-canary` ([`kubernetes`]) runs it on the Kubernetes path: the kind
//! plan, then a kept kwok end-to-end, judged against the Secrets the run generated in the cluster
//! and the control plane's own keys.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use camunda_conformance_suites::scrub::secret_forms;
use k8s_openapi::ByteString;

/// One secret of a run, by name, with the strings that would give it away.
pub struct Secret {
    pub name: String,
    pub forms: Vec<String>,
}

impl Secret {
    /// A password, as is and in its encoded forms (with the user it logs in as).
    pub fn password(name: &str, username: &str, password: &str) -> Self {
        Self {
            name: name.to_string(),
            forms: secret_forms(username, password.trim_end()),
        }
    }

    /// A password kept in a Kubernetes Secret: also in the base64 form the Secret's `data` (and
    /// anything that dumps it) carries.
    pub fn kube_password(name: &str, username: &str, password: &str) -> Self {
        let mut secret = Self::password(name, username, password);
        let encoded = serde_json::to_value(ByteString(password.trim_end().as_bytes().to_vec()));
        if let Ok(serde_json::Value::String(encoded)) = encoded {
            secret.forms.push(encoded.trim_end_matches('=').to_string());
        }
        secret
    }

    /// A PEM private key: any full line of its base64 body gives it away.
    pub fn pem_key(name: &str, pem: &str) -> Self {
        Self {
            name: name.to_string(),
            forms: pem
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----") && l.len() >= 40)
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Where a secret shows: `<secret> in <place>`, one entry per secret and place.
pub fn leaks(secrets: &[Secret], output: &[String], artifacts: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let shows =
        |text: &str, secret: &Secret| secret.forms.iter().any(|f| text.contains(f.as_str()));
    for secret in secrets {
        if let Some(line) = output.iter().position(|l| shows(l, secret)) {
            found.push(format!(
                "{} in the run's output (line {})",
                secret.name,
                line + 1
            ));
        }
    }
    for file in crate::artifacts::files_below(artifacts)? {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            if shows(&text, secret) {
                found.push(format!("{} in {}", secret.name, file.display()));
            }
        }
    }
    Ok(found)
}

/// How long the kwok end-to-end may take (its own waits are bounded; this is a last resort).
const KWOK_RUN: Duration = Duration::from_secs(40 * 60);
const PLAN_RUN: Duration = Duration::from_secs(120);

/// `cargo xtask test-secrets-canary`: `e2e --backend kind --plan`, then `e2e --backend kwok
/// --keep`; neither's output nor the kwok run's artifacts may hold a secret of the kept
/// cluster. The control plane stays up for `--backend existing` (stop it with `--down`).
pub fn kubernetes() -> Result<bool> {
    let root = crate::artifacts::workspace_root();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let dir = root.join(format!("target/e2e/{stamp}-secrets-canary"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let run = |args: &[&str], log: &str, bound: Duration| -> Result<Vec<String>> {
        let mut child =
            crate::selfrun::SelfRun::start(args, &[] as &[(&str, OsString)], &dir.join(log))?;
        println!(
            "canary: {} (output in {})",
            child.what,
            dir.join(log).display()
        );
        let status = child.wait_exit(bound)?;
        if !status.success() {
            bail!(
                "{} failed ({status}); it printed last: {}",
                child.what,
                child.last_lines(5)
            );
        }
        Ok(child.seen.clone())
    };
    let plan = run(
        &["e2e", "--backend", "kind", "--plan"],
        "plan.log",
        PLAN_RUN,
    )?;
    let artifacts = dir.join("artifacts");
    let artifacts_arg = artifacts.display().to_string();
    let e2e = run(
        &[
            "e2e",
            "--backend",
            "kwok",
            "--keep",
            "--artifacts",
            &artifacts_arg,
        ],
        "kwok.log",
        KWOK_RUN,
    )?;
    let secrets = kept_kwok_secrets()?;
    let forms: usize = secrets.iter().map(|s| s.forms.len()).sum();
    let empty = tempfile::tempdir().context("creating an empty folder")?;
    let mut found = leaks(&secrets, &plan, empty.path())?
        .into_iter()
        .map(|l| l.replace("the run's output", "the kind plan"))
        .collect::<Vec<_>>();
    found.extend(leaks(&secrets, &e2e, &artifacts)?);
    if !found.is_empty() {
        println!("canary: secrets leaked: {}", found.join("; "));
        return Ok(false);
    }
    println!(
        "canary: none of {} secrets ({forms} forms) in the kind plan ({} lines), the kwok run's output ({} lines) or its {} artifact files",
        secrets.len(),
        plan.len(),
        e2e.len(),
        crate::artifacts::files_below(&artifacts)?.len()
    );
    Ok(true)
}

/// The kept kwok cluster's secrets: every generated Secret of the e2e overlay (passwords, with
/// their user), the TLS key the cert-manager stand-in issued, and the control plane's own keys.
fn kept_kwok_secrets() -> Result<Vec<Secret>> {
    use crate::kwok::control_plane::{Kept, CONTEXT};
    let kept = Kept::read(&crate::kwok::kept_state_file())?
        .context("the kwok run kept no control plane")?;
    let mut secrets = Vec::new();
    for file in crate::artifacts::files_below(&kept.private_dir)? {
        if file.extension().is_some_and(|e| e == "key") {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            secrets.push(Secret::pem_key(
                &format!("control-plane key {}", file.display()),
                &pem,
            ));
        }
    }
    let overlay = crate::artifacts::workspace_root().join("manifests/overlays/e2e");
    let names = crate::kind::Names::from_docs(crate::kind::render(&overlay)?)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let options = kube::config::KubeConfigOptions {
            context: Some(CONTEXT.to_string()),
            ..Default::default()
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(&kept.kubeconfig)
            .with_context(|| format!("reading {}", kept.kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .context("the kept control plane's kubeconfig")?;
        let client = kube::Client::try_from(config)?;
        let value = |secret: &k8s_openapi::api::core::v1::Secret, key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        let mut tls = names.certificates.clone();
        tls.retain(|(ns, _)| *ns == names.namespace);
        for need in &names.unprovided_secrets() {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(client.clone(), &need.namespace);
            let secret = api
                .get(&need.name)
                .await
                .with_context(|| format!("reading {}", need.describe()))?;
            let username = value(&secret, "username").unwrap_or_default();
            for key in need.keys.iter().filter(|k| !k.contains("user")) {
                let password = value(&secret, key)
                    .with_context(|| format!("{} has no key {key}", need.describe()))?;
                secrets.push(Secret::kube_password(
                    &format!("{} key {key}", need.describe()),
                    &username,
                    &password,
                ));
            }
        }
        for (namespace, name) in tls {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(client.clone(), &namespace);
            let secret = api
                .get(&name)
                .await
                .with_context(|| format!("reading Secret {namespace}/{name}"))?;
            let key = value(&secret, "tls.key")
                .with_context(|| format!("Secret {namespace}/{name} has no tls.key"))?;
            secrets.push(Secret::pem_key(
                &format!("tls.key of Secret {namespace}/{name}"),
                &key,
            ));
        }
        anyhow::Ok(())
    })?;
    if secrets.iter().all(|s| s.forms.is_empty()) {
        bail!("found no secret to look for: the canary would pass on anything");
    }
    Ok(secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a Kubernetes run's folder could leak: a Secret dumped by `get -o yaml` (base64 of
    /// the value) or a describe that printed it.
    #[test]
    fn a_secret_planted_in_kubernetes_artifacts_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("diagnostics/camunda")).unwrap();
        std::fs::write(
            dir.path().join("manifests.yaml"),
            "kind: Secret\ndata: {password: <redacted>}\n",
        )
        .unwrap();
        let secret = Secret::kube_password(
            "Secret camunda/camunda-db key password",
            "conformance",
            "9f2c4e",
        );
        std::fs::write(
            dir.path().join("diagnostics/camunda/get.txt"),
            "data:\n  password: OWYyYzRl\n",
        )
        .unwrap();
        let found = leaks(
            std::slice::from_ref(&secret),
            &["applying 12 objects".into()],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            found,
            [format!(
                "Secret camunda/camunda-db key password in {}",
                dir.path().join("diagnostics/camunda/get.txt").display()
            )]
        );
        let plan = ["    | password: 9f2c4e".to_string()];
        let empty = tempfile::tempdir().unwrap();
        let found = leaks(&[secret], &plan, empty.path()).unwrap();
        assert_eq!(
            found,
            ["Secret camunda/camunda-db key password in the run's output (line 1)"]
        );
    }

    #[test]
    fn every_form_in_output_or_files_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        // Basic credentials of admin:Pa55word, as a log line would carry them.
        std::fs::write(
            dir.path().join("logs/nginx.log"),
            "GET / Authorization: Basic YWRtaW46UGE1NXdvcmQ=\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("report.txt"), "all fine\n").unwrap();
        let key_line = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0123456789abcdef";
        let secrets = [
            Secret::password("the admin password", "admin", "Pa55word\n"),
            Secret::pem_key(
                "the TLS key",
                &format!("-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----\n"),
            ),
        ];
        let output = vec![
            "stack up".to_string(),
            format!("debug: {key_line}"),
            "login with Pa55word%21".to_string(),
        ];
        let found = leaks(&secrets, &output, dir.path()).unwrap();
        assert_eq!(
            found,
            [
                "the admin password in the run's output (line 3)".to_string(),
                "the TLS key in the run's output (line 2)".to_string(),
                format!(
                    "the admin password in {}",
                    dir.path().join("logs/nginx.log").display()
                ),
            ]
        );
        assert!(leaks(&secrets, &["clean".into()], &dir.path().join("logs"))
            .unwrap()
            .iter()
            .all(|l| l.contains("nginx.log")));
    }
}
