//! `cargo xtask test-interrupts --backend node`: the node end-to-end interrupted in each of its
//! phases — node start, addons, the stack's rollout, the suites, the teardown — alternately by
//! SIGINT (the whole process group, as Ctrl-C) and SIGTERM (xtask alone). After each the run
//! must exit 130 and the host must hold nothing of the node: no network namespace or link, no
//! process, mount or folder of the run, no cgroup, the kubelet's sysctls and the host folders
//! as they were ([`host::leaks`]).

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cluster::CGROUP_ROOT;
use super::host::{self, Before};
use crate::artifacts::workspace_root;
use crate::selfrun::SelfRun;

/// Reaching a phase includes a warm node start; stopping includes the node's teardown.
const REACH: Duration = Duration::from_secs(600);
const STOP: Duration = Duration::from_secs(90);

/// (phase, the line that says the run is in it, the signal).
const CASES: &[(&str, &str, &str, i32)] = &[
    ("node start", "containerd: ready", "SIGINT", libc::SIGINT),
    (
        "addons",
        "apply addon prometheus-operator",
        "SIGTERM",
        libc::SIGTERM,
    ),
    (
        "stack rollout",
        "apply the stack from",
        "SIGINT",
        libc::SIGINT,
    ),
    ("suites", "suite auth", "SIGTERM", libc::SIGTERM),
    ("teardown", "stopping the node", "SIGINT", libc::SIGINT),
];

pub fn run() -> Result<bool> {
    super::host::preflight()?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let root = workspace_root().join(format!("target/e2e/{stamp}-node-interrupts"));
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    println!(
        "node interrupt test: {} phases, each with SIGINT (process group) or SIGTERM (xtask alone); artifacts: {}",
        CASES.len(),
        root.display()
    );
    let started = Instant::now();
    let mut failures = Vec::new();
    for &(phase, marker, signal_name, signal) in CASES {
        let case = format!("{}-{signal_name}", phase.replace(' ', "-"));
        match interrupt(&root.join(&case), marker, signal) {
            Ok(summary) => println!("  ok    {case:<22} {summary}"),
            Err(err) => {
                println!("  FAIL  {case:<22} {err:#}");
                failures.push(case);
            }
        }
    }
    let took = started.elapsed().as_secs();
    if failures.is_empty() {
        println!("node interrupt test passed in {took} s");
        Ok(true)
    } else {
        println!(
            "node interrupt test FAILED in {took} s: {}; artifacts: {}",
            failures.join(", "),
            root.display()
        );
        Ok(false)
    }
}

fn interrupt(dir: &Path, marker: &str, signal: i32) -> Result<String> {
    // The run's temp folder holds the node's folder, whose containerd sockets must stay within
    // a Unix socket path's length: a short folder of its own in the system temp dir.
    let tmp_dir = tempfile::Builder::new()
        .prefix("ccn-int-")
        .tempdir()
        .context("creating the case's temp folder")?;
    let tmp = tmp_dir.path().to_path_buf();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let before = Before::record()?;
    let artifacts = dir.join("artifacts").display().to_string();
    let args = ["e2e", "--backend", "node", "--artifacts", &artifacts];
    let env: Vec<(&str, OsString)> = vec![("TMPDIR", tmp.clone().into())];
    let mut run = SelfRun::start(&args, &env, &dir.join("output.log"))?;
    let reached = run.wait_for_line(marker, REACH)?;
    if !super::net::namespace_exists() {
        let exit = run.wait_exit(STOP)?;
        bail!(
            "the node's namespace was gone at `{marker}` (the run exited: {exit}); it printed last: {}",
            run.last_lines(5)
        );
    }
    let (signalled, stopped) = run.interrupt(signal, STOP)?;
    let run_dirs: Vec<_> = std::fs::read_dir(&tmp)
        .with_context(|| format!("listing {}", tmp.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut left = host::leaks(None, CGROUP_ROOT, &before);
    for run_dir in &run_dirs {
        left.extend(host::leaks(Some(run_dir), CGROUP_ROOT, &before));
    }
    left.sort();
    left.dedup();
    if !left.is_empty() {
        bail!("left on the host: {}", left.join("; "));
    }
    Ok(format!(
        "signalled {:.1} s in (`{marker}` at {:.1} s), exited 130 {:.1} s later, nothing left",
        signalled.as_secs_f64(),
        reached.as_secs_f64(),
        stopped.as_secs_f64()
    ))
}
