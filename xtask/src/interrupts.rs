//! `cargo xtask test-interrupts`: the local end-to-end interrupted by SIGINT (Ctrl-C: the
//! whole foreground process group) and by SIGTERM (the xtask process alone) in each phase —
//! build, stack start, suites, faults, teardown. After each, no process of the run is left, no
//! port it announced still answers, no temp dir or unfinished build remains, and nothing is
//! kept. Then the next run must be green, and a cached jar cut short (the poisoned cache of
//! old) must be detected, rebuilt, and followed by a green run — whose output and artifacts
//! must hold none of its secrets (the canary).

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::artifacts::workspace_root;
use crate::selfrun::SelfRun;

/// How long a run may take to reach a phase, to stop once signalled, and to finish green.
const REACH: Duration = Duration::from_secs(300);
const STOP: Duration = Duration::from_secs(60);
const GREEN: Duration = Duration::from_secs(600);

struct Phase {
    name: &'static str,
    /// Extra arguments after `e2e --backend local`.
    args: &'static [&'static str],
    /// The line that says the run is in the phase.
    marker: &'static str,
    /// How long after the marker the signal goes (so that the phase's work is under way).
    delay: Duration,
}

const PHASES: &[Phase] = &[
    Phase {
        name: "build",
        args: &[],
        marker: "building the Camunda application",
        delay: Duration::from_secs(2),
    },
    Phase {
        name: "stack start",
        args: &[],
        marker: "postgres on :",
        delay: Duration::ZERO,
    },
    Phase {
        name: "suites",
        args: &[],
        marker: "suite auth",
        delay: Duration::ZERO,
    },
    Phase {
        name: "faults",
        args: &["--suite", "tls", "--faults"],
        marker: "faults: ",
        delay: Duration::from_secs(1),
    },
    Phase {
        name: "teardown",
        args: &["--suite", "tls"],
        marker: "tearing down the local stack",
        delay: Duration::ZERO,
    },
];

const SIGNALS: &[(&str, i32)] = &[("SIGINT", libc::SIGINT), ("SIGTERM", libc::SIGTERM)];

/// What every run of the test shares: a build cache of its own (so the build phase really
/// builds), and a folder for each case's temp dirs and artifacts.
struct Bench {
    root: PathBuf,
    cache: PathBuf,
    repo: PathBuf,
}

pub fn run() -> Result<bool> {
    crate::local::refuse_if_kept("the interrupt test")?;
    let repo = workspace_root();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let root = repo.join(format!("target/e2e/{stamp}-interrupts"));
    let bench = Bench {
        cache: root.join("cache"),
        root,
        repo,
    };
    std::fs::create_dir_all(&bench.cache)
        .with_context(|| format!("creating {}", bench.cache.display()))?;
    println!(
        "interrupt test: every phase × SIGINT (process group) and SIGTERM (xtask alone); artifacts: {}",
        bench.root.display()
    );
    let started = Instant::now();
    let mut failures = Vec::new();
    for phase in PHASES {
        for &(signal_name, signal) in SIGNALS {
            let case = format!("{}-{}", phase.name.replace(' ', "-"), signal_name);
            match bench.interrupt(&case, phase, signal) {
                Ok(summary) => println!("  ok    {:<22} {summary}", case),
                Err(err) => {
                    println!("  FAIL  {:<22} {err:#}", case);
                    failures.push(case);
                }
            }
        }
    }
    // The build cases left no cache entry: this run builds, and must be green.
    match bench.green("next-run", &["--suite", "metrics,auth,tls"]) {
        Ok(summary) => println!("  ok    {:<22} {summary}", "next run"),
        Err(err) => {
            println!("  FAIL  {:<22} {err:#}", "next run");
            failures.push("next run".into());
        }
    }
    match bench.truncated_jar() {
        Ok(summary) => println!("  ok    {:<22} {summary}", "truncated jar"),
        Err(err) => {
            println!("  FAIL  {:<22} {err:#}", "truncated jar");
            failures.push("truncated jar".into());
        }
    }
    let took = started.elapsed().as_secs();
    if failures.is_empty() {
        println!("interrupt test passed in {took} s");
        std::fs::remove_dir_all(&bench.root).ok();
        Ok(true)
    } else {
        println!(
            "interrupt test FAILED in {took} s: {}; artifacts: {}",
            failures.join(", "),
            bench.root.display()
        );
        Ok(false)
    }
}

impl Bench {
    /// The environment and arguments of one case's run: its own TMPDIR (every temp dir the run
    /// makes lands there), the shared test cache, its own artifacts folder.
    fn start(&self, case: &str, extra: &[&str]) -> Result<(SelfRun, PathBuf)> {
        let dir = self.root.join(case);
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let artifacts = dir.join("artifacts");
        let artifacts_arg = artifacts.display().to_string();
        let mut args = vec!["e2e", "--backend", "local", "--artifacts", &artifacts_arg];
        args.extend_from_slice(extra);
        let env: Vec<(&str, OsString)> = vec![
            ("TMPDIR", tmp.clone().into()),
            ("XDG_CACHE_HOME", self.cache.clone().into()),
        ];
        let run = SelfRun::start(&args, &env, &dir.join("output.log"))?;
        Ok((run, dir))
    }

    fn interrupt(&self, case: &str, phase: &Phase, signal: i32) -> Result<String> {
        if phase.name == "build" {
            // No entry: the run must build.
            remove_entries(&self.cache)?;
        }
        let (mut run, dir) = self.start(case, phase.args)?;
        let reached = run.wait_for_line(phase.marker, REACH)?;
        std::thread::sleep(phase.delay);
        // Proof that the signal lands while the run's processes (Maven, the stack) are up.
        let running = processes_mentioning(&self.needles(&dir)).len();
        if running == 0 {
            // The run has ended (or is ending): what it printed says why.
            let exit = run.wait_exit(STOP)?;
            bail!(
                "no process of the run was running {} s after `{}` (it exited: {exit}); it printed last: {}",
                phase.delay.as_secs(),
                phase.marker,
                run.last_lines(5)
            );
        }
        let (signalled, stopped) = run.interrupt(signal, STOP)?;
        self.nothing_left(&dir, &run.seen)?;
        Ok(format!(
            "signalled {:.1} s in ({} at {:.1} s) with {running} processes of the run up, exited 130 {:.1} s later, nothing left",
            signalled.as_secs_f64(),
            phase.marker.trim_end_matches([':', ' ']),
            reached.as_secs_f64(),
            stopped.as_secs_f64()
        ))
    }

    /// A run to its end, which must pass.
    fn green(&self, case: &str, extra: &[&str]) -> Result<String> {
        let (mut run, dir) = self.start(case, extra)?;
        let status = run.wait_exit(GREEN)?;
        if !status.success() {
            bail!(
                "expected a green run, got {status}; output: {}",
                dir.join("output.log").display()
            );
        }
        self.nothing_left(&dir, &run.seen)?;
        Ok(format!(
            "green in {:.1} s",
            run.started.elapsed().as_secs_f64()
        ))
    }

    /// The jar of the cache entry cut to half its size: detected, rebuilt, and a green run,
    /// kept for the secrets canary, then stopped with `--down`.
    fn truncated_jar(&self) -> Result<String> {
        let jar = find_file(
            &self.cache.join("camunda-conformance/camunda-app"),
            "camunda-app.jar",
        )?
        .context("the build cache holds no camunda-app.jar after a green run")?;
        let length = std::fs::metadata(&jar)?.len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&jar)
            .and_then(|f| f.set_len(length / 2))
            .with_context(|| format!("truncating {}", jar.display()))?;
        let (mut run, dir) = self.start("truncated-jar", &["--keep"])?;
        let status = run.wait_exit(GREEN);
        let (kept, output) = (crate::local::kept_secrets(), run.seen.clone());
        // Whatever the run did, a kept stack is stopped before anything is judged.
        let (mut down, _) = self.start("truncated-jar-down", &["--down"])?;
        let stopped = down.wait_exit(STOP)?;
        let status = status?;
        if !status.success() || !stopped.success() {
            bail!(
                "expected a green run and a clean --down, got {status} and {stopped}; output: {}",
                dir.join("output.log").display()
            );
        }
        if !output.iter().any(|l| l.contains("is damaged")) {
            bail!("the run never said the cut jar `is damaged`");
        }
        let secrets = kept?;
        let leaks = crate::canary::leaks(&secrets, &output, &dir.join("artifacts"))?;
        if !leaks.is_empty() {
            bail!("secrets leaked: {}", leaks.join("; "));
        }
        self.nothing_left(&dir, &output)?;
        Ok(format!(
            "{} cut to {} bytes: detected, rebuilt, green in {:.1} s; canary: none of {} secrets ({} forms) in {} output lines or the artifacts",
            jar.display(),
            length / 2,
            run.started.elapsed().as_secs_f64(),
            secrets.len(),
            secrets.iter().map(|s| s.forms.len()).sum::<usize>(),
            output.len()
        ))
    }

    /// What a process of the case's run mentions: its folder (temp dirs, artifacts) or the
    /// application's Maven project.
    fn needles(&self, dir: &Path) -> [String; 2] {
        let maven_project = self.repo.join("fixtures/camunda-app");
        [
            dir.display().to_string(),
            maven_project.display().to_string(),
        ]
    }

    /// No process mentions the case's folder or the app's Maven project, no announced port
    /// answers, the temp folder is empty, no unfinished build and no kept stack remain.
    fn nothing_left(&self, dir: &Path, output: &[String]) -> Result<()> {
        let needles = self.needles(dir);
        let ports = announced_ports(output);
        let open_ports = || -> Vec<String> {
            ports
                .iter()
                .filter(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(300)).is_ok())
                .map(|addr| addr.to_string())
                .collect()
        };
        // A killed process takes a moment to be reaped, and an exiting one has already lost its
        // command line while it still holds its listening sockets.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (mut left, mut open) = (processes_mentioning(&needles), open_ports());
        while !(left.is_empty() && open.is_empty()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            (left, open) = (processes_mentioning(&needles), open_ports());
        }
        if !left.is_empty() {
            bail!("processes left behind: {}", left.join("; "));
        }
        if !open.is_empty() {
            bail!(
                "ports still answering 5 s after the exit: {}",
                open.join(", ")
            );
        }
        let tmp = dir.join("tmp");
        let stray: Vec<String> = std::fs::read_dir(&tmp)
            .with_context(|| format!("listing {}", tmp.display()))?
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect();
        if !stray.is_empty() {
            bail!("temp dirs left behind: {}", stray.join(", "));
        }
        if let Some(unfinished) = unfinished_build(&self.cache)? {
            bail!(
                "an unfinished build is left in the cache: {}",
                unfinished.display()
            );
        }
        let kept = crate::local::kept_state_file(&self.repo);
        if kept.exists() {
            bail!("the run left a kept stack ({})", kept.display());
        }
        Ok(())
    }
}

/// `pid cmdline` of every process whose command line or working directory mentions a needle.
fn processes_mentioning(needles: &[String]) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.is_empty() {
            continue; // a zombie or a kernel thread
        }
        let cwd = std::fs::read_link(entry.path().join("cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if needles
            .iter()
            .any(|n| cmdline.contains(n.as_str()) || cwd.starts_with(n.as_str()))
        {
            found.push(format!("{pid} {}", cmdline.trim()));
        }
    }
    found
}

/// The ports the run said its components listen on (`postgres on :39763: ready …`, `nginx on
/// :45073 and :39279: ready …`, `camunda-0 http://127.0.0.1:37379/`), on the loopback addresses
/// the local stack uses.
fn announced_ports(output: &[String]) -> Vec<SocketAddr> {
    let mut ports = Vec::new();
    for line in output {
        let mut rest = line.as_str();
        while let Some(at) = rest.find(':') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(port) = digits.parse::<u16>() {
                if port >= 1024 {
                    ports.push(port);
                }
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
        .into_iter()
        .flat_map(|port| {
            [
                SocketAddr::from(([127, 0, 0, 1], port)),
                SocketAddr::from(([127, 0, 0, 2], port)),
            ]
        })
        .collect()
}

/// Removes every cache entry under the test's own cache (never the user's).
fn remove_entries(cache: &Path) -> Result<()> {
    let app = cache.join("camunda-conformance/camunda-app");
    if app.exists() {
        std::fs::remove_dir_all(&app).with_context(|| format!("removing {}", app.display()))?;
    }
    Ok(())
}

/// The first file named `name` below `dir`.
fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    Ok(crate::artifacts::files_below(dir)?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name)))
}

/// An unfinished build folder (`.build-*`) beside the app's cache entries.
fn unfinished_build(cache: &Path) -> Result<Option<PathBuf>> {
    let entries = cache.join("camunda-conformance/camunda-app");
    if !entries.exists() {
        return Ok(None);
    }
    for entry in
        std::fs::read_dir(&entries).with_context(|| format!("listing {}", entries.display()))?
    {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".build-"))
        {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_ports_are_read_from_the_ready_lines() {
        let output = [
            "  postgres on :39763: ready in 0.2s".to_string(),
            "  nginx on :45073 and :39279: ready in 0.2s".to_string(),
            "  camunda-0   http://127.0.0.1:37379/  metrics http://127.0.0.1:39317/metrics"
                .to_string(),
            "suite auth".to_string(),
        ];
        let ports: Vec<u16> = announced_ports(&output).iter().map(|a| a.port()).collect();
        let each_twice = |ports: &[u16]| ports.iter().flat_map(|&p| [p, p]).collect::<Vec<_>>();
        assert_eq!(ports, each_twice(&[37379, 39279, 39317, 39763, 45073]));
    }

    #[test]
    fn a_process_is_found_by_its_command_line() {
        let marker = format!("/nonexistent/interrupt-test-{}", std::process::id());
        // `$0` of the shell is the marker, so it shows in the shell's command line.
        let mut sleeper = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 0.1; done", &marker])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let found = processes_mentioning(std::slice::from_ref(&marker));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(processes_mentioning(&[marker]).is_empty());
    }
}
