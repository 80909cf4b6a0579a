//! The `kwok` backend's control plane: the pinned Kubernetes, etcd, kwok and metrics-server
//! built from the Go module proxy into a content-keyed cache ([`build`]), started on loopback
//! with a per-run PKI ([`control_plane`], [`pki`]). The deploy path, waits, discovery and the
//! suites are the kind backend's (`kind::plan` has a kwok branch).

pub mod certificates;
pub mod control_plane;
pub mod live_tests;

pub use camunda_conformance_controlplane::{build, pins};

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::artifacts::workspace_root;
use control_plane::Kept;

/// Where a `--keep` run records what `--down` stops.
pub fn kept_state_file() -> PathBuf {
    workspace_root().join("target/e2e/.kwok-kept.json")
}

/// A kept control plane's kubeconfig at a fixed place (file references only, no key material):
/// `KUBECONFIG=target/e2e/kwok.kubeconfig cargo xtask e2e --backend existing ...`.
pub fn kept_kubeconfig() -> PathBuf {
    workspace_root().join("target/e2e/kwok.kubeconfig")
}

/// The control plane's private folder (0700, in the system temp dir), registered for removal on
/// Ctrl-C. Every client of this run (kube-rs, kubectl, the CLI) reads its kubeconfig through
/// `KUBECONFIG`, set here while the process has a single thread.
pub fn prepare_private_dir() -> Result<PathBuf> {
    if let Some(kept) = Kept::read(&kept_state_file())? {
        anyhow::bail!(
            "a kept kwok control plane runs already (kubeconfig {}): stop it with `cargo xtask e2e --backend kwok --down`, or test it with `KUBECONFIG={} cargo xtask e2e --backend existing --context {} --no-deploy`",
            kept.kubeconfig.display(),
            kept.kubeconfig.display(),
            control_plane::CONTEXT
        );
    }
    let dir = private_tempdir()?.keep();
    crate::local::supervisor::install_signal_handler()?;
    crate::local::supervisor::register_temp_dir(&dir);
    std::env::set_var("KUBECONFIG", control_plane::kubeconfig_path(&dir));
    Ok(dir)
}

/// A fresh folder only its owner can enter (0700, whatever the umask).
fn private_tempdir() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("camunda-conformance-kwok-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("creating the control plane's private folder")
}

/// Removes the private folder unless a kept control plane owns it.
pub fn release_private_dir(private: &std::path::Path) {
    let kept = Kept::read(&kept_state_file())
        .ok()
        .flatten()
        .is_some_and(|k| k.private_dir == private);
    if !kept && private.exists() {
        if let Err(err) = std::fs::remove_dir_all(private) {
            eprintln!("warning: removing {}: {err}", private.display());
        }
    }
    crate::local::supervisor::forget_temp_dir(private);
}

/// `--down`: stops the control plane a `--keep` run left.
pub fn down(plan_only: bool) -> Result<bool> {
    let file = kept_state_file();
    let Some(kept) = Kept::read(&file)? else {
        println!(
            "no kept kwok control plane ({} does not exist)",
            file.display()
        );
        return Ok(true);
    };
    if plan_only {
        println!(
            "plan: stop process groups {:?}\n      remove {}\n      remove {}",
            kept.groups,
            kept.private_dir.display(),
            file.display()
        );
        return Ok(true);
    }
    control_plane::down(&kept);
    std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
    let _ = std::fs::remove_file(kept_kubeconfig());
    println!("stopped the kept kwok control plane");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_private_folder_is_the_owners_alone() {
        let dir = private_tempdir().unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
