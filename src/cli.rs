//! The command line: argument parsing, dispatch and the exit-code contract
//! (0 nothing at error severity, 1 findings or failed checks, 2 unreadable input or usage error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::report::{self, Format, Sink};
use crate::{run, validate};

#[derive(Parser)]
#[command(
    name = "camunda-conformance",
    version,
    about = "Prove that a Camunda 7 deployment on Kubernetes really works"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate kustomize overlays or plain manifests offline (no cluster needed).
    Validate(ValidateArgs),
    /// Run the live suites against a deployment: a target file, or discovered from a cluster.
    Run(RunArgs),
    /// Validate an overlay and server-side apply it to a kubeconfig context, then await its
    /// rollout. Takes over no other manager's fields unless told, creates no Secret, writes
    /// nothing to disk.
    Deploy(crate::cluster::deploy::DeployArgs),
    /// List the rules of `validate` with their ids and severities.
    Rules,
    /// List the checks of `run` with their ids and suites.
    Checks,
}

#[derive(Args)]
struct OutputArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct ValidateArgs {
    /// Kustomize directories, Helm charts (a directory with Chart.yaml, rendered with `helm
    /// template`), manifest files or directories of manifests.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// A values file for the Helm charts among PATH (repeatable; later files win).
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    values: Vec<PathBuf>,
    /// A value for the Helm charts among PATH, as `helm --set` takes it (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
    /// `--api-server[=VERSION]`: also dry-run the objects server-side against a local
    /// kube-apiserver of that version
    /// (default: the pinned one) with the stack's CRDs: admission defaults, CEL rules, immutable
    /// fields, namespaces. Built from the Go module proxy and cached (first build 15-25 min).
    #[arg(long, value_name = "VERSION", num_args = 0..=1, require_equals = true, default_missing_value = camunda_conformance_controlplane::pins::KUBERNETES)]
    api_server: Option<String>,
    /// Also report (rule `front-door`) every annotation and setting this front door ignores or
    /// reads differently: what the move loses (stickiness, the cookie's name, a redirect, an
    /// auth gate).
    #[arg(long, value_enum, value_name = "FRONT_DOOR")]
    front_door: Option<validate::rules::FrontDoor>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["target", "kube_context"])))]
struct RunArgs {
    /// The target description (TOML) of the deployment under test.
    #[arg(long, value_name = "FILE")]
    target: Option<PathBuf>,
    #[command(flatten)]
    discover: run::DiscoverArgs,
    /// Only these suites (comma separated): metrics, auth, tls, sessions, cluster, scaling.
    #[arg(long, value_delimiter = ',', value_name = "SUITE")]
    suite: Vec<String>,
    /// Also write report.json, junit.xml and report.txt into this folder.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// A skipped check fails unless the target lists it in `[[allowed_skips]]` with a reason.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Validate(args) => validate_command(args),
        Command::Run(args) if args.output.format == Format::Sarif => Err(anyhow::anyhow!(
            "--format sarif is for validate findings; run reports checks as human, json or junit"
        )),
        Command::Run(args) => run::command(
            args.target.as_deref(),
            &args.discover,
            &args.suite,
            args.report_dir.as_deref(),
            args.strict,
            Sink::new(args.output.format, args.output.output),
        ),
        Command::Deploy(args) => crate::cluster::deploy::command(&args),
        Command::Rules => listing(&report::rules_text()),
        Command::Checks => listing(&report::checks_text()),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn listing(text: &str) -> anyhow::Result<bool> {
    report::write_stdout(text)?;
    Ok(true)
}

/// `Ok(false)` when a finding fails the run (an error, or a warning under `--strict`).
fn validate_command(args: ValidateArgs) -> anyhow::Result<bool> {
    let options = validate::input::Options {
        values: args.values,
        set: args.set,
    };
    let mut validated = validate::validate_for(&args.paths, &options, args.front_door)?;
    if let Some(version) = &args.api_server {
        validated.findings.extend(validate::api_server::dry_run(
            &args.paths,
            &options,
            version,
        )?);
    }
    let sink = Sink::new(args.output.format, args.output.output);
    sink.write_validate(&validated, args.strict)?;
    Ok(report::validate_passed(&validated, args.strict))
}
