//! `cargo xtask`: the project's automation in plain Rust (no shell scripts).
//!
//! `e2e` brings up a Camunda stack on a backend, runs every live suite through
//! `camunda-conformance run`, writes the reports and tears the stack down.

mod artifacts;
mod backend;
mod bench_e2e;
mod bench_validate;
mod canary;
mod cli;
mod command;
mod conformance;
mod e2e;
mod fault_matrix;
mod flavour;
mod installed;
mod interrupts;
mod kind;
mod kwok;
mod local;
mod mutants;
mod node;
mod selfrun;

use std::process::ExitCode;

use clap::Parser;

use cli::{BenchWhat, Cli, Command, InterruptBackend};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::E2e(args) => e2e::run(&args.into()),
        Command::PinAddons => kind::pin_addons(),
        Command::TestControlPlane => kwok::live_tests::run(),
        Command::TestInterrupts { backend } => match backend {
            InterruptBackend::Local => interrupts::run(),
            InterruptBackend::Node => node::interrupts::run(),
        },
        Command::TestSecretsCanary => canary::kubernetes(),
        Command::TestInstalled { validate_only } => installed::run(validate_only),
        Command::Mutants => mutants::run(),
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
