//! External commands, every run bounded by a timeout that kills the process group and says
//! what it printed last: as data (`Cmd`, a command line that can be shown by `--plan` and run),
//! or prepared by the caller ([`start`]). Each runs in a process group of its own, listed while
//! it runs, so that a Ctrl-C/SIGTERM handler can stop them all ([`take_running`]): a SIGTERM
//! sent to the caller alone reaches none of its children.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The bound of a command that names none: generous for a `kubectl get`, and still an end.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a long command says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// One command line. Built by the functions below, shown by `--plan`, run by the executor.
/// Every run is bounded by `timeout`: on expiry the process is killed and the error says what
/// it printed last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    /// Extra environment (never secrets: they would show in `--plan`).
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    /// Run at the lowest CPU priority (builds on a shared machine).
    pub nice: bool,
}

/// The process groups (name, pgid) of the commands running now.
static RUNNING: Mutex<Vec<(String, i32)>> = Mutex::new(Vec::new());

fn running() -> MutexGuard<'static, Vec<(String, i32)>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// The groups of the commands still running, no longer listed: for a signal handler to stop.
pub fn take_running() -> Vec<(String, i32)> {
    std::mem::take(&mut *running())
}

/// A command started in a process group of its own, listed as running until dropped.
pub struct Started {
    pub child: Child,
    pgid: i32,
}

/// Starts a prepared command (in a process group of its own); `what` names it in errors.
pub fn start(command: &mut Command, what: &str) -> Result<Started> {
    let child = command
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let pgid = i32::try_from(child.id()).context("a pid fits in i32")?;
    running().push((what.to_string(), pgid));
    Ok(Started { child, pgid })
}

impl Drop for Started {
    fn drop(&mut self) {
        running().retain(|(_, pgid)| *pgid != self.pgid);
    }
}

/// How a bounded wait behaves besides its bound.
pub struct Waiting<'a> {
    /// Print "still running" every [`HEARTBEAT`] (for commands that print nothing themselves).
    pub heartbeat: bool,
    /// Called about twice a second while the command runs.
    pub tick: &'a mut dyn FnMut(),
    /// What the command printed last, for the timeout error.
    pub last_output: &'a dyn Fn() -> String,
}

impl Started {
    /// Waits within `timeout`; on expiry kills the whole group and says what it printed last.
    pub fn wait_bounded(
        &mut self,
        what: &str,
        timeout: Duration,
        waiting: Waiting<'_>,
    ) -> Result<ExitStatus> {
        const TICK: Duration = Duration::from_millis(500);
        let started = Instant::now();
        let (mut next_heartbeat, mut next_tick) = (HEARTBEAT, TICK);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for {what}"))?
            {
                return Ok(status);
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                // SAFETY: signals the group this command leads; its own children go with it.
                unsafe {
                    libc::kill(-self.pgid, libc::SIGKILL);
                }
                let _ = self.child.wait();
                bail!(
                    "{what} did not finish within {} s and was killed; it printed last: {}",
                    timeout.as_secs(),
                    (waiting.last_output)()
                );
            }
            if waiting.heartbeat && elapsed >= next_heartbeat {
                eprintln!(
                    "  still running {what} ({}s of at most {}s)",
                    elapsed.as_secs(),
                    timeout.as_secs()
                );
                next_heartbeat += HEARTBEAT;
            }
            if elapsed >= next_tick {
                (waiting.tick)();
                next_tick = elapsed + TICK;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a captured run printed.
pub struct Captured {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Cmd {
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: DEFAULT_TIMEOUT,
            env: Vec::new(),
            dir: None,
            nice: false,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn nice(mut self) -> Self {
        self.nice = true;
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null());
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        if self.nice {
            // SAFETY: setpriority is async-signal-safe; it runs in the child before exec.
            unsafe {
                command.pre_exec(|| {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 19);
                    Ok(())
                });
            }
        }
        command
    }

    fn start(&self, command: &mut Command) -> Result<Started> {
        start(
            command,
            &format!("`{self}` (is {} installed?)", self.program),
        )
    }

    fn wait_bounded(
        &self,
        started: &mut Started,
        last_output: &dyn Fn() -> String,
    ) -> Result<ExitStatus> {
        started.wait_bounded(
            &format!("`{self}`"),
            self.timeout,
            Waiting {
                heartbeat: true,
                tick: &mut || {},
                last_output,
            },
        )
    }

    /// Runs with the terminal attached (long operations show their own progress).
    pub fn run(&self) -> Result<()> {
        let mut child = self.start(&mut self.command())?;
        let status = self.wait_bounded(&mut child, &|| "(on the terminal above)".to_string())?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Runs with stdout and stderr appended to `log`; a failure quotes the log's tail.
    pub fn run_logged(&self, log: &Path) -> Result<()> {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("duplicating {}", log.display()))?;
        let mut command = self.command();
        command.stdout(out).stderr(err);
        let mut child = self.start(&mut command)?;
        let tail = || tail_of(log);
        let status = self.wait_bounded(&mut child, &tail)?;
        if !status.success() {
            bail!(
                "`{self}` failed ({status}); last lines of {}:\n{}",
                log.display(),
                tail()
            );
        }
        Ok(())
    }

    /// Starts in the background: stdout piped to the caller, stderr into `stderr`. The caller
    /// owns the process (and stops it); it is in the caller's process group.
    pub fn spawn(&self, stderr: std::fs::File) -> Result<Child> {
        self.command()
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting `{self}` (is {} installed?)", self.program))
    }

    /// Runs and captures both streams, whatever the exit status.
    pub fn capture(&self) -> Result<Captured> {
        let mut command = self.command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut started = self.start(&mut command)?;
        let child = &mut started.child;
        // Drained on threads so that a chatty command never blocks on a full pipe.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = self.wait_bounded(&mut started, &|| "(captured, see the error)".to_string());
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        let status = status.map_err(|err| {
            err.context(format!(
                "stderr so far: {}",
                last_line(&stderr).unwrap_or("(none)")
            ))
        })?;
        Ok(Captured {
            success: status.success(),
            stdout,
            stderr,
        })
    }

    /// Runs and returns stdout; a failure carries the command's stderr.
    pub fn output(&self) -> Result<String> {
        let captured = self.capture()?;
        if !captured.success {
            bail!("`{self}` failed: {}", captured.stderr.trim());
        }
        Ok(captured.stdout)
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| !l.trim().is_empty())
}

/// The last lines of a log file, for errors.
pub fn tail_of(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
            if plain {
                write!(f, " {arg}")?;
            } else {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

/// Owner-only file: written with mode 0600 from the start.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}
