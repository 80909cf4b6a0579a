//! Every process of the stack runs under the supervisor: its own process group, its output in
//! `<artifacts>/logs/<component>.log`, and it is stopped on drop, on error, and on Ctrl-C/SIGTERM.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What the Ctrl-C handler must clean up; the main thread may be anywhere when a signal arrives.
#[derive(Default)]
struct Registry {
    groups: Vec<(String, i32)>,
    temp_dirs: Vec<PathBuf>,
    /// Run after the groups are stopped, before the temp dirs go (the node backend's mounts,
    /// network namespace and cgroups).
    cleanups: Vec<fn()>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    groups: Vec::new(),
    temp_dirs: Vec::new(),
    cleanups: Vec::new(),
});
static HANDLER: Once = Once::new();
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Set once Ctrl-C/SIGTERM arrived: waits stop at once instead of reporting what the cleanup did.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// For the kind backend's own handler: the main thread then leaves the exit to it.
pub fn mark_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Parks the calling thread while the signal handler cleans up; the handler ends the process
/// (exit 130). Bounded: should the handler hang, the process still ends with 130.
pub fn await_interrupt_cleanup() -> ! {
    sleep(Duration::from_secs(60));
    eprintln!("interrupted: the cleanup did not finish within 60 s");
    std::process::exit(130);
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A poisoned lock still holds valid pids; cleanup matters more than the panic that poisoned it.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs the Ctrl-C/SIGTERM handler once per process: stop every registered group, remove the
/// temp dirs, exit 130.
pub fn install_signal_handler() -> Result<()> {
    let mut outcome = Ok(());
    HANDLER.call_once(|| {
        outcome = ctrlc::set_handler(|| {
            mark_interrupted();
            eprintln!("\ninterrupted: stopping the local stack");
            let (groups, dirs, cleanups) = {
                let mut reg = registry();
                (
                    std::mem::take(&mut reg.groups),
                    std::mem::take(&mut reg.temp_dirs),
                    std::mem::take(&mut reg.cleanups),
                )
            };
            crate::command::stop_running();
            stop_groups(&groups, Duration::from_secs(5));
            for cleanup in cleanups {
                cleanup();
            }
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
            camunda_conformance_controlplane::cache::abandon_unfinished_builds();
            std::process::exit(130);
        })
        .context("installing the Ctrl-C/SIGTERM handler");
    });
    outcome
}

/// Registers a cleanup the signal handler runs once the processes are stopped (once per
/// function, however often registered).
pub fn on_interrupt(cleanup: fn()) {
    let mut reg = registry();
    if !reg.cleanups.contains(&cleanup) {
        reg.cleanups.push(cleanup);
    }
}

/// Registers a temp dir the signal handler removes; `forget_temp_dir` when it is kept or gone.
pub fn register_temp_dir(dir: &Path) {
    registry().temp_dirs.push(dir.to_path_buf());
}

pub fn forget_temp_dir(dir: &Path) {
    registry().temp_dirs.retain(|d| d != dir);
}

/// Is any process of the group still running? Zombies do not count: a kept stack's processes
/// are reparented to PID 1, which (in a container) may never reap them.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No procfs: fall back to the kernel's answer, zombies included.
        // SAFETY: kill with signal 0 only checks for existence and permission.
        return unsafe { libc::kill(-pgid, 0) == 0 };
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .any(|stat| running_in_group(&stat, pgid))
}

/// `/proc/PID/stat` is `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
fn running_in_group(stat: &str, pgid: i32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next();
    let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
    pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: signals a process group we created; ESRCH (already gone) is fine.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// SIGTERM to every group, SIGKILL to what is left after `grace`. Returns how many needed SIGKILL.
pub fn stop_groups(groups: &[(String, i32)], grace: Duration) -> usize {
    for (_, pgid) in groups {
        signal_group(*pgid, libc::SIGTERM);
        // A group a fault froze (SIGSTOP) handles SIGTERM only once it runs again.
        signal_group(*pgid, libc::SIGCONT);
    }
    let deadline = Instant::now() + grace;
    loop {
        reap(groups);
        if groups.iter().all(|(_, pgid)| !group_alive(*pgid)) {
            return 0;
        }
        if Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let stubborn: Vec<_> = groups
        .iter()
        .filter(|(_, pgid)| group_alive(*pgid))
        .collect();
    for (name, pgid) in &stubborn {
        eprintln!("{name} (group {pgid}) ignored SIGTERM for {grace:?}: SIGKILL");
        signal_group(*pgid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && stubborn.iter().any(|(_, pgid)| group_alive(*pgid)) {
        reap(groups);
        sleep(Duration::from_millis(20));
    }
    stubborn.len()
}

/// A dead group leader that is our child stays a zombie (and keeps its group "alive") until
/// waited for; for processes that are not our children (a kept stack) this is a no-op.
fn reap(groups: &[(String, i32)]) {
    for (_, pgid) in groups {
        let mut status = 0;
        // SAFETY: non-blocking wait for one specific pid.
        unsafe {
            libc::waitpid(*pgid, &mut status, libc::WNOHANG);
        }
    }
}

/// A process of the stack.
pub struct Proc {
    pub component: String,
    pub pid: i32,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// `Some(status)` once it has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(err) => Some(format!("cannot be waited for: {err}")),
        }
    }
}

/// Owns the stack's processes; dropping it stops them all unless `keep` was called.
pub struct Supervisor {
    logs_dir: PathBuf,
    /// Children die with xtask (PR_SET_PDEATHSIG) unless the stack is meant to be kept.
    die_with_parent: bool,
    procs: Vec<Proc>,
}

impl Supervisor {
    pub fn new(logs_dir: PathBuf, die_with_parent: bool) -> Result<Self> {
        std::fs::create_dir_all(&logs_dir)
            .with_context(|| format!("creating {}", logs_dir.display()))?;
        install_signal_handler()?;
        Ok(Self {
            logs_dir,
            die_with_parent,
            procs: Vec::new(),
        })
    }

    pub fn log_path(&self, component: &str) -> PathBuf {
        self.logs_dir.join(format!("{component}.log"))
    }

    /// Starts `command` in its own process group with stdout+stderr appended to the
    /// component's log. Returns the index of the process.
    pub fn spawn(&mut self, component: &str, mut command: Command) -> Result<usize> {
        let log = self.log_path(component);
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("duplicating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if self.die_with_parent {
            // SAFETY: prctl is async-signal-safe; it runs in the child between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {component} ({:?})", command.get_program()))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        registry().groups.push((component.to_string(), pid));
        self.procs.push(Proc {
            component: component.to_string(),
            pid,
            log,
            child,
        });
        Ok(self.procs.len() - 1)
    }

    /// Waits for every child that exited, so that its group no longer looks alive.
    pub fn reap(&mut self) {
        for proc in &mut self.procs {
            let _ = proc.child.try_wait();
        }
    }

    pub fn get(&mut self, index: usize) -> &mut Proc {
        &mut self.procs[index]
    }

    /// Stops one process (group) now, e.g. a fault's extra replica.
    pub fn stop(&mut self, index: usize) {
        let proc = &mut self.procs[index];
        let group = [(proc.component.clone(), proc.pid)];
        stop_groups(&group, Duration::from_secs(10));
        let _ = proc.child.try_wait();
        registry().groups.retain(|(_, pgid)| *pgid != proc.pid);
    }

    /// Lets the processes outlive the supervisor (`--keep`).
    pub fn keep(mut self) {
        let pids: Vec<i32> = self.procs.iter().map(|p| p.pid).collect();
        registry().groups.retain(|(_, pgid)| !pids.contains(pgid));
        self.procs.clear();
    }

    /// Stops everything; also what drop does.
    pub fn shutdown(&mut self) {
        if self.procs.is_empty() {
            return;
        }
        let groups: Vec<(String, i32)> = self
            .procs
            .iter()
            .map(|p| (p.component.clone(), p.pid))
            .collect();
        stop_groups(&groups, Duration::from_secs(10));
        for proc in &mut self.procs {
            let _ = proc.child.try_wait();
        }
        registry()
            .groups
            .retain(|(_, pgid)| !groups.iter().any(|(_, g)| g == pgid));
        self.procs.clear();
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The last `lines` lines of a log, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_supervisor_stops_the_whole_process_group() {
        let logs = tempfile::tempdir().unwrap();
        let mut supervisor = Supervisor::new(logs.path().to_path_buf(), true).unwrap();
        let mut command = Command::new("sh");
        // A grandchild in the same group, like nginx's workers or postgres's backends.
        command.args(["-c", "echo started; sleep 300 & sleep 300"]);
        let index = supervisor.spawn("sleeper", command).unwrap();
        let pgid = supervisor.get(index).pid;
        let log = supervisor.get(index).log.clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log_tail(&log, 1).contains("started") && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        assert!(group_alive(pgid));
        drop(supervisor);
        assert!(
            !group_alive(pgid),
            "a process of group {pgid} outlived the supervisor"
        );
        assert!(log_tail(&log, 5).contains("started"));
    }

    #[test]
    fn zombies_and_other_groups_are_not_running() {
        assert!(running_in_group("42 (java) S 1 42 42 0", 42));
        assert!(running_in_group("43 (a (b) c) R 42 42 42 0", 42));
        assert!(!running_in_group("42 (java) Z 1 42 42 0", 42));
        assert!(!running_in_group("44 (sleep) S 1 44 44 0", 42));
        assert!(!running_in_group("garbage", 42));
    }

    #[test]
    fn a_log_tail_is_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.log");
        std::fs::write(&file, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&file, 2), "b\nc");
        assert!(log_tail(&dir.path().join("missing"), 2).contains("cannot read"));
    }
}
