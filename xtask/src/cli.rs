//! The command line, parsed here and nowhere else: each subcommand's flags become the plain
//! settings of the layer that runs it ([`RunSettings`] for `e2e`), and nothing below `main`
//! imports this module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::{BackendChoice, Route, RunSettings, SessionMode};
use crate::bench_e2e::BenchE2eArgs;
use crate::flavour::Flavour;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "camunda-conformance automation")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Bring up a Camunda stack, run every live suite, report, tear down.
    E2e(E2eArgs),
    /// Print performance figures.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    /// Download every addon manifest the kind backend pins and print its sha256 beside the pin.
    PinAddons,
    /// Test the kind/existing code paths against the kwok backend's real control plane.
    TestControlPlane,
    /// The secrets canary on the Kubernetes path: the kind plan, then `e2e --backend kwok --keep`;
    /// no secret of the run in their output or artifacts (stop the control plane with
    /// `cargo xtask e2e --backend kwok --down`).
    TestSecretsCanary,
    /// `cargo install` the CLI, then run it from a folder outside the repository: validate on a
    /// rendered overlay and on a Helm chart directory with values, then, against the control
    /// plane `e2e --backend kwok --keep` left, discovery and the scaling suite.
    TestInstalled {
        /// Only the validate steps (no control plane needed).
        #[arg(long)]
        validate_only: bool,
    },
    /// Interrupt the local end-to-end with SIGINT and SIGTERM in each phase; prove nothing is
    /// left and the next run is green. `--backend node`: the node end-to-end in each of its
    /// phases; nothing of the node left on the host.
    TestInterrupts {
        #[arg(long, value_enum, default_value_t = InterruptBackend::Local)]
        backend: InterruptBackend,
    },
    /// cargo-mutants (pinned) on the judging code (suites/src/check.rs, faults.rs, scrub.rs)
    /// with the suites crate's tests; exits 1 when a mutant is missed.
    Mutants,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InterruptBackend {
    Local,
    Node,
}

#[derive(Subcommand)]
pub enum BenchWhat {
    /// Time `validate` on the shipped overlays and on a generated 1,000-set bundle.
    Validate,
    /// The local loop against its goals: cold e2e to the report, `--reuse`, `--down`.
    E2e(BenchE2eArgs),
}

#[derive(Args, Clone, Debug)]
pub struct E2eArgs {
    /// Where the stack runs.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,
    /// How sessions survive across replicas.
    #[arg(long, value_enum, default_value_t = SessionMode::Sticky)]
    pub sessions: SessionMode,
    /// The Camunda 7 line: CE 7.24 or a maintained fork, built from its own artifacts.
    #[arg(long, value_enum, default_value_t = Flavour::Ce)]
    pub flavour: Flavour,
    /// Number of Camunda replicas.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub replicas: u16,
    /// Keep the stack (processes or cluster) running after the run.
    #[arg(long)]
    pub keep: bool,
    /// Reuse a stack kept by an earlier `--keep` run instead of starting one.
    #[arg(long)]
    pub reuse: bool,
    /// Only these suites (comma separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub suite: Vec<String>,
    /// Artifacts folder (default: target/e2e/<timestamp>-<backend>-<sessions>).
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// After the suites pass, break the stack on purpose and prove the right check fails.
    #[arg(long)]
    pub faults: bool,
    /// kind/existing: print every command and manifest the run would use, running nothing.
    #[arg(long)]
    pub plan: bool,
    /// Stop what a `--keep` run left (kind: delete the cluster) and exit.
    #[arg(long)]
    pub down: bool,
    /// node: the route in front of Camunda.
    #[arg(long, value_enum, default_value_t = Route::Ingress)]
    pub route: Route,
    /// kind/existing: the kustomize overlay to validate, deploy and test.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// existing: the kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// existing: the CA (PEM) the ingress certificate must verify against; default: the
    /// system's roots (never the Ingress's own TLS Secret).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// existing: only test what is deployed.
    #[arg(long)]
    pub no_deploy: bool,
    /// kind: host ports for the ingress (HTTP, HTTPS) when 80/443 are taken.
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
}

impl From<E2eArgs> for RunSettings {
    fn from(args: E2eArgs) -> Self {
        RunSettings {
            backend: args.backend,
            sessions: args.sessions,
            flavour: args.flavour,
            replicas: args.replicas,
            keep: args.keep,
            reuse: args.reuse,
            suites: args.suite,
            artifacts: args.artifacts,
            faults: args.faults,
            plan: args.plan,
            down: args.down,
            route: args.route,
            overlay: args.overlay,
            context: args.context,
            ca: args.ca,
            no_deploy: args.no_deploy,
            http_port: args.http_port,
            https_port: args.https_port,
        }
    }
}

/// The settings an `e2e` command line gives (tests of the layers below use it to speak in
/// command lines, as users do).
#[cfg(test)]
pub fn e2e_settings(line: &str) -> RunSettings {
    let argv = std::iter::once("xtask").chain(line.split_whitespace());
    match Cli::try_parse_from(argv)
        .expect("test command lines parse")
        .command
    {
        Command::E2e(args) => args.into(),
        _ => panic!("not an e2e command line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_flavour_is_a_usage_error() {
        let argv = ["xtask", "e2e", "--flavour", "zeebe"];
        let err = Cli::try_parse_from(argv).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("zeebe") && text.contains("operaton"),
            "{text}"
        );
    }
}
