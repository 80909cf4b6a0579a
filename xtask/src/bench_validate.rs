//! `cargo xtask bench validate`: runs the `validate` bench target of the root package, which is
//! built optimised (the xtask itself runs as a debug build, useless for timing).

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::artifacts::workspace_root;

pub fn run() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "bench",
            "--quiet",
            "--package",
            "camunda-conformance",
            "--bench",
            "validate",
        ])
        .status()
        .context("running cargo bench --bench validate")?;
    if !status.success() {
        bail!("the validate benchmark failed ({status})");
    }
    Ok(())
}
