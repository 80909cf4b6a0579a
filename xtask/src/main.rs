//! `cargo xtask`: the project's automation in plain Rust (no shell scripts).
//!
//! `e2e` brings up a Camunda stack on a backend, runs every live suite through
//! `camunda-conformance run`, writes the reports and tears the stack down.

mod artifacts;
mod backend;
mod bench_e2e;
mod bench_validate;
mod canary;
mod command;
mod conformance;
mod flavour;
mod installed;
mod interrupts;
mod kind;
mod kwok;
mod local;
mod node;
mod selfrun;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "camunda-conformance automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// `cargo install` the CLI, then run it from a folder outside the repository against the
    /// control plane `e2e --backend kwok --keep` left: validate, discovery, the scaling suite.
    TestInstalled,
    /// Interrupt the local end-to-end with SIGINT and SIGTERM in each phase; prove nothing is
    /// left and the next run is green. `--backend node`: the node end-to-end in each of its
    /// phases; nothing of the node left on the host.
    TestInterrupts {
        #[arg(long, value_enum, default_value_t = InterruptBackend::Local)]
        backend: InterruptBackend,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InterruptBackend {
    Local,
    Node,
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Time `validate` on the shipped overlays and on a generated 1,000-set bundle.
    Validate,
    /// The local loop against its goals: cold e2e to the report, `--reuse`, `--down`.
    E2e(bench_e2e::BenchE2eArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// `kind` when a Docker engine answers, else `local`.
    Auto,
    Kind,
    Local,
    Existing,
    /// A real control plane with kwok's simulated pods (built from the Go module proxy, cached).
    Kwok,
    /// A real one-node Kubernetes on this host: the control plane plus kubelet and kube-proxy,
    /// Debian's containerd, images built here, Traefik as the front door (root, Linux).
    Node,
}

/// What stands in front of the Camunda Service on the node backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Route {
    /// The overlay's Ingress as written (its ingress-nginx annotations), served by Traefik's
    /// ingress-nginx provider.
    Ingress,
    /// A Gateway API Gateway with a TLS listener and an HTTPRoute instead of the Ingress,
    /// served by the same Traefik.
    Gateway,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionMode {
    /// Cookie affinity at the ingress, sessions in each replica's memory.
    Sticky,
    /// Spring Session through twemproxy in front of Redis.
    SharedRedis,
    /// Sessions through twemproxy in front of memcached.
    SharedMemcached,
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
    #[arg(long, value_enum, default_value_t = flavour::Flavour::Ce)]
    pub flavour: flavour::Flavour,
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
    /// kind: delete the cluster a `--keep` run left and exit.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::E2e(args) => backend::e2e(&args),
        Command::PinAddons => kind::pin_addons(),
        Command::TestControlPlane => kwok::live_tests::run(),
        Command::TestInterrupts { backend } => match backend {
            InterruptBackend::Local => interrupts::run(),
            InterruptBackend::Node => node::interrupts::run(),
        },
        Command::TestSecretsCanary => canary::kubernetes(),
        Command::TestInstalled => installed::run(),
        Command::Bench { what } => match what {
            BenchWhat::Validate => bench_validate::run().map(|()| true),
            BenchWhat::E2e(args) => bench_e2e::run(&args),
        },
    };
    if local::supervisor::interrupted() {
        // The signal handler is cleaning up and exits 130 when done: an error the interrupt
        // caused here (a wait cut short) must not end the process first with another code.
        local::supervisor::await_interrupt_cleanup();
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
