//! External commands with a time bound: a command that hangs is killed and the error says what
//! it printed last. Each runs in its own process group, which the Ctrl-C/SIGTERM handlers stop
//! (`stop_running`): a SIGTERM sent to `cargo xtask` alone must not leave its children behind.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The process groups of the commands running now.
static RUNNING: Mutex<Vec<(String, i32)>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<(String, i32)>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stops every command still running, its whole process group (for the signal handlers).
pub fn stop_running() {
    let groups = std::mem::take(&mut *running());
    crate::local::supervisor::stop_groups(&groups, Duration::from_secs(5));
}

/// A started command, listed in [`RUNNING`] until it is dropped.
struct Started {
    child: Child,
    pgid: i32,
}

impl Started {
    fn spawn(command: &mut Command, what: &str) -> Result<Self> {
        let child = command
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let pgid = i32::try_from(child.id()).context("a pid fits in i32")?;
        running().push((what.to_string(), pgid));
        Ok(Self { child, pgid })
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        running().retain(|(_, pgid)| *pgid != self.pgid);
    }
}

/// Runs `command` with its output captured; kills it after `timeout`.
pub fn output(mut command: Command, what: &str, timeout: Duration) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut started = Started::spawn(&mut command, what)?;
    let child = &mut started.child;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let waited = wait(child, timeout, || {});
    let (stdout, stderr) = (join(stdout), join(stderr));
    match waited {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "{what} did not finish within {} s and was killed; it printed last: {}",
            timeout.as_secs(),
            last_words(&stderr, &stdout)
        ),
    }
}

/// Runs `command` with the terminal's output (progress stays visible); kills it after `timeout`.
pub fn status(command: Command, what: &str, timeout: Duration) -> Result<ExitStatus> {
    status_ticking(command, what, timeout, || {})
}

/// [`status`], calling `tick` about twice a second while the command runs (the local stack
/// restarts a replica a check stopped, as a Deployment would).
pub fn status_ticking(
    mut command: Command,
    what: &str,
    timeout: Duration,
    tick: impl FnMut(),
) -> Result<ExitStatus> {
    command.stdin(Stdio::null());
    let mut started = Started::spawn(&mut command, what)?;
    match wait(&mut started.child, timeout, tick) {
        Some(status) => Ok(status),
        None => bail!(
            "{what} did not finish within {} s and was killed (its output is above)",
            timeout.as_secs()
        ),
    }
}

const TICK: Duration = Duration::from_millis(500);

/// The exit status, or `None` after killing the child at the deadline.
fn wait(child: &mut Child, timeout: Duration, mut tick: impl FnMut()) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut ticked = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                if ticked.elapsed() >= TICK {
                    tick();
                    ticked = Instant::now();
                }
                sleep(Duration::from_millis(20));
            }
            _ => {
                // The whole group: a command's own children must not outlive it.
                crate::local::supervisor::stop_groups(
                    &[(
                        "a command past its time bound".to_string(),
                        child.id() as i32,
                    )],
                    Duration::from_secs(2),
                );
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

fn join(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

/// The last non-empty line of stderr, else of stdout.
fn last_words(stderr: &[u8], stdout: &[u8]) -> String {
    [stderr, stdout]
        .iter()
        .filter_map(|bytes| {
            String::from_utf8_lossy(bytes)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_string())
        })
        .next()
        .unwrap_or_else(|| "nothing".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_finishes_gives_its_output() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2; exit 3"]);
        let output = output(echo, "sh", Duration::from_secs(10)).unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn a_command_that_hangs_is_killed_and_says_what_it_printed_last() {
        let mut hang = Command::new("sh");
        hang.args(["-c", "echo waiting for the lock >&2; exec sleep 30"]);
        let started = Instant::now();
        let err = output(hang, "the hanging command", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let message = err.to_string();
        assert!(
            message.contains("the hanging command did not finish within 0 s"),
            "{message}"
        );
        assert!(message.ends_with("waiting for the lock"), "{message}");
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        assert!(status(sleeper, "sleep", Duration::from_millis(100)).is_err());
        let mut ticks = 0;
        let mut short = Command::new("sleep");
        short.arg("1.2");
        let done = status_ticking(short, "sleep", Duration::from_secs(10), || ticks += 1).unwrap();
        assert!(done.success());
        assert!((1..=3).contains(&ticks), "{ticks} ticks in 1.2 s");
    }
}
