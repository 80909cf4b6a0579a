//! `cargo xtask bench validate`: runs the `validate` bench target of the root package, which is
//! built optimised (the xtask itself runs as a debug build, useless for timing).

use std::process::Command;

use anyhow::{bail, Result};

use crate::artifacts::workspace_root;

pub fn run() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut bench = Command::new(cargo);
    bench.current_dir(workspace_root()).args([
        "bench",
        "--quiet",
        "--package",
        "camunda-conformance",
        "--bench",
        "validate",
    ]);
    // An optimised build from cold and the runs: well within an hour on two cores.
    let status = crate::command::status(
        bench,
        "cargo bench --bench validate",
        std::time::Duration::from_secs(3600),
    )?;
    if !status.success() {
        bail!("the validate benchmark failed ({status})");
    }
    Ok(())
}
