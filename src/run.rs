//! `camunda-conformance run`: load or discover the target, run the suites with live progress,
//! report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use camunda_conformance_suites::{Backend, CheckResult, Credentials, Status, Suite, Target};
use clap::Args;

use crate::cluster::discover::{self, Request};
use crate::report::{CheckReport, Format, LiveProgress, Sink};

/// The environment variable a printed target names for the password (never the value).
pub const PASSWORD_ENV: &str = "CAMUNDA_CONFORMANCE_PASSWORD";

/// `run --kube-context`: discover the target from a namespace instead of a file.
#[derive(Args)]
pub struct DiscoverArgs {
    /// Discover the target in this kubeconfig context (instead of --target).
    #[arg(long, value_name = "CONTEXT", requires = "namespace")]
    kube_context: Option<String>,
    /// The namespace of the Camunda deployment.
    #[arg(long, value_name = "NS", requires = "kube_context")]
    namespace: Option<String>,
    /// The CA (PEM) the ingress certificate must verify against; default: the system's roots.
    /// Never taken from the cluster (a self-signed certificate verifies against itself).
    #[arg(long, value_name = "FILE", requires = "kube_context")]
    ca: Option<PathBuf>,
    /// The Secret (and key, default `password`) holding the password of the user the suites
    /// log in as; default: the Deployment's CAMUNDA_BPM_ADMIN_USER_PASSWORD secretKeyRef.
    #[arg(long, value_name = "NAME[:KEY]", requires = "kube_context")]
    credentials_secret: Option<String>,
    /// The user to log in as; default: the Deployment's CAMUNDA_BPM_ADMIN_USER_ID.
    #[arg(long, value_name = "USER", requires = "kube_context")]
    username: Option<String>,
    /// Prometheus's Service; when it does not exist the Prometheus checks skip.
    #[arg(long, value_name = "NS/SERVICE", default_value = discover::DEFAULT_PROMETHEUS)]
    prometheus: String,
    /// Write the discovered target description (TOML; the password by reference to
    /// CAMUNDA_CONFORMANCE_PASSWORD) to FILE, or `-` for standard output, instead of running.
    #[arg(long, value_name = "FILE|-", requires = "kube_context")]
    print_target: Option<PathBuf>,
    /// Let checks that write data, stop pods or load the stack run (default: read-only).
    #[arg(long, requires = "kube_context")]
    allow_disruptive: bool,
}

impl DiscoverArgs {
    fn request(&self, namespace: &str) -> Result<Request> {
        // A printed target is kept and used from elsewhere: its CA path must not be relative.
        let ca_file = self
            .ca
            .as_ref()
            .map(|ca| std::fs::canonicalize(ca).with_context(|| format!("--ca {}", ca.display())))
            .transpose()?;
        Ok(Request {
            context: self.kube_context.clone(),
            namespace: namespace.to_string(),
            ca_file,
            credentials_secret: self.credentials_secret.clone(),
            username: self.username.clone(),
            prometheus: self.prometheus.clone(),
            forward: self.print_target.is_none(),
            disruptive: self.allow_disruptive,
            backend: Backend::Existing,
            ingress_addresses: None,
        })
    }
}

/// `Ok(false)` when a check failed; `Err` when the target could not be read or discovered (exit 2).
pub fn command(
    target_file: Option<&Path>,
    discover_args: &DiscoverArgs,
    suite_names: &[String],
    report_dir: Option<&Path>,
    strict: bool,
    sink: Sink,
) -> Result<bool> {
    let suites = select_suites(suite_names)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // The forwards live until the suites are done; dropped (closed) on every path.
        let (target, _forwards) = match (target_file, &discover_args.namespace) {
            (Some(file), _) => (Target::load(file)?, None),
            (None, Some(namespace)) => {
                let request = discover_args.request(namespace)?;
                let client = crate::cluster::connect(request.context.as_deref()).await?;
                let found = discover::discover(&client, &request)
                    .await
                    .with_context(|| format!("discovering the target in namespace {namespace}"))?;
                for note in &found.notes {
                    eprintln!("note: {note}");
                }
                if let Some(out) = &discover_args.print_target {
                    print_target(found.target, out)?;
                    return Ok(true);
                }
                (found.target, Some(found.forwards))
            }
            (None, None) => anyhow::bail!("give --target FILE or --kube-context C --namespace N"),
        };
        run_suites(&target, &suites, report_dir, strict, &sink).await
    })
}

/// The description for review: the password only by reference.
fn print_target(mut target: Target, out: &Path) -> Result<()> {
    target.credentials = Credentials::from_env(target.credentials.username.clone(), PASSWORD_ENV);
    let text = target.to_toml()?;
    if out == Path::new("-") {
        std::io::stdout()
            .write_all(text.as_bytes())
            .context("writing the target to standard output")?;
    } else {
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    eprintln!("note: the description names the password by {PASSWORD_ENV}; replicas are described by their pod addresses (run --kube-context forwards them itself)");
    Ok(())
}

async fn run_suites(
    target: &Target,
    suites: &[Suite],
    report_dir: Option<&Path>,
    strict: bool,
    sink: &Sink,
) -> Result<bool> {
    let started = Instant::now();
    let mut progress = LiveProgress::new(sink);
    let mut results = camunda_conformance_suites::run(target, suites, strict, &mut |event| {
        progress.on_event(event)
    })
    .await;
    mark_simulated(&mut results, target.backend);
    progress.finish();
    let report = CheckReport {
        target: target.name.clone(),
        results,
        duration: started.elapsed(),
        strict,
    };

    if let Some(dir) = report_dir {
        write_report_dir(&report, dir)?;
    }
    sink.write_checks(&report)?;
    Ok(report.passed())
}

/// On kwok no container runs: the scaling suite's load is CPU the harness writes into the pods'
/// annotations, so its passes show the HPA reacting, not Camunda scaling under real load.
fn mark_simulated(results: &mut [CheckResult], backend: Backend) {
    if backend != Backend::Kwok {
        return;
    }
    for result in results {
        if result.suite == Suite::Scaling && result.status == Status::Pass {
            result.simulated = true;
        }
    }
}

fn select_suites(names: &[String]) -> Result<Vec<Suite>> {
    if names.is_empty() {
        return Ok(Suite::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            Suite::from_str(name).map_err(|_| {
                anyhow::anyhow!(
                    "unknown suite `{name}` in --suite; known: {}",
                    Suite::ALL.map(|s| s.to_string()).join(", ")
                )
            })
        })
        .collect()
}

/// The machine-readable reports CI publishes, beside whatever went to the terminal.
fn write_report_dir(report: &CheckReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the report folder {}", dir.display()))?;
    for (format, name) in [
        (Format::Json, "report.json"),
        (Format::Junit, "junit.xml"),
        (Format::Human, "report.txt"),
    ] {
        Sink::new(format, Some(dir.join(name))).write_checks(report)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_kwok_scaling_passes_are_simulated_and_nothing_else_is() {
        let result = |suite, status| CheckResult {
            id: format!("{suite}.x"),
            suite,
            status,
            duration_ms: 1,
            message: String::new(),
            not_run: false,
            simulated: false,
        };
        let all = || {
            vec![
                result(Suite::Scaling, Status::Pass),
                result(Suite::Scaling, Status::Fail),
                result(Suite::Scaling, Status::Skip),
                result(Suite::Auth, Status::Pass),
            ]
        };
        let mut kwok = all();
        mark_simulated(&mut kwok, Backend::Kwok);
        let simulated: Vec<bool> = kwok.iter().map(|r| r.simulated).collect();
        assert_eq!(simulated, [true, false, false, false]);
        for backend in [
            Backend::Node,
            Backend::Kind,
            Backend::Local,
            Backend::Existing,
        ] {
            let mut real = all();
            mark_simulated(&mut real, backend);
            assert!(real.iter().all(|r| !r.simulated), "{backend:?}");
        }
    }
}
