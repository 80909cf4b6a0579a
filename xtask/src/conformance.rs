//! Drives the `camunda-conformance` binary: the e2e job tests through the same CLI users run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::artifacts::workspace_root;

/// A cold build of the CLI takes minutes on two cores; an hour means something hangs.
const BUILD_BOUND: Duration = Duration::from_secs(3600);
/// Every suite of a run, with the target's own bounds inside, finishes well within this.
const RUN_BOUND: Duration = Duration::from_secs(1800);

/// Builds the CLI (same profile as xtask) and returns its path.
pub fn build_cli() -> Result<PathBuf> {
    let profile_release = !cfg!(debug_assertions);
    let mut cargo = cargo();
    cargo.current_dir(workspace_root()).args([
        "build",
        "--quiet",
        "--package",
        "camunda-conformance",
        "--bin",
        "camunda-conformance",
    ]);
    if profile_release {
        cargo.arg("--release");
    }
    let status = crate::command::status(cargo, "cargo build of camunda-conformance", BUILD_BOUND)?;
    if !status.success() {
        bail!("cargo build of camunda-conformance failed ({status})");
    }
    let profile = if profile_release { "release" } else { "debug" };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    Ok(target_dir.join(profile).join("camunda-conformance"))
}

/// The cargo that runs xtask, without the variables it set for the xtask crate.
pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // `cargo run` gave this process the variables cargo sets for the xtask crate; build scripts
    // watch some of them (ring's does), so passing them on would rebuild half the dependency
    // tree on every run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cargo.env_remove(name.as_ref());
        }
    }
    cargo
}

/// `camunda-conformance run --strict --target FILE`: human progress on the terminal, JSON and
/// JUnit into the artifacts folder. `Ok(false)` when a check failed, or skipped without the
/// target allowing it.
/// The password reaches it in its environment (`password_env` of the target), never on disk.
pub fn run_suites(
    cli: &Path,
    target: &Path,
    suites: &[String],
    report_dir: &Path,
    password: &str,
) -> Result<bool> {
    let mut command = run_command(cli, target, suites, report_dir);
    command.env(camunda_conformance::run::PASSWORD_ENV, password);
    let what = "camunda-conformance run";
    verdict(crate::command::status(command, what, RUN_BOUND)?, what)
}

/// [`run_suites`], calling `tick` about twice a second while the suites run.
pub fn run_suites_ticking(
    cli: &Path,
    target: &Path,
    suites: &[String],
    report_dir: &Path,
    tick: impl FnMut(),
) -> Result<bool> {
    let command = run_command(cli, target, suites, report_dir);
    let what = "camunda-conformance run";
    verdict(
        crate::command::status_ticking(command, what, RUN_BOUND, tick)?,
        what,
    )
}

fn run_command(cli: &Path, target: &Path, suites: &[String], report_dir: &Path) -> Command {
    let mut command = Command::new(cli);
    command
        .args(["run", "--strict", "--target"])
        .arg(target)
        .arg("--report-dir")
        .arg(report_dir);
    if !suites.is_empty() {
        command.arg("--suite").arg(suites.join(","));
    }
    command
}

/// `camunda-conformance validate PATH`. `Ok(false)` when it found errors.
pub fn validate(cli: &Path, path: &Path) -> Result<bool> {
    let mut command = Command::new(cli);
    command.arg("validate").arg(path);
    exit_verdict(command, "camunda-conformance validate")
}

/// Maps the CLI contract's exit codes: 0 pass, 1 findings/failed checks, anything else an error.
fn exit_verdict(command: Command, what: &str) -> Result<bool> {
    verdict(crate::command::status(command, what, RUN_BOUND)?, what)
}

fn verdict(status: std::process::ExitStatus, what: &str) -> Result<bool> {
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => bail!("{what} could not run ({status})"),
    }
}
