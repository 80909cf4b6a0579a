//! Prepared `std::process::Command`s run with a time bound, through the one bounded-command
//! primitive (`camunda_conformance_controlplane::cmd`): each in a process group of its own that
//! the Ctrl-C/SIGTERM handlers stop (`stop_running`), killed at its deadline with what it
//! printed last in the error.

use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::Result;
use camunda_conformance_controlplane::cmd::{self, Waiting};

/// Stops every command still running, its whole process group (for the signal handlers).
pub fn stop_running() {
    crate::local::supervisor::stop_groups(&cmd::take_running(), Duration::from_secs(5));
}

/// Runs `command` with its output captured; kills it after `timeout`.
pub fn output(mut command: Command, what: &str, timeout: Duration) -> Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut started = cmd::start(&mut command, what)?;
    let (stdout, stdout_reader) = drain(started.child.stdout.take());
    let (stderr, stderr_reader) = drain(started.child.stderr.take());
    let status = started.wait_bounded(
        what,
        timeout,
        Waiting {
            heartbeat: false,
            tick: &mut || {},
            last_output: &|| last_words(&bytes(&stderr), &bytes(&stdout)),
        },
    )?;
    for reader in [stdout_reader, stderr_reader].into_iter().flatten() {
        let _ = reader.join();
    }
    Ok(Output {
        status,
        stdout: bytes(&stdout),
        stderr: bytes(&stderr),
    })
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
    mut tick: impl FnMut(),
) -> Result<ExitStatus> {
    command.stdin(Stdio::null());
    cmd::start(&mut command, what)?.wait_bounded(
        what,
        timeout,
        Waiting {
            heartbeat: false,
            tick: &mut tick,
            last_output: &|| "(its output is above)".into(),
        },
    )
}

/// What a pipe delivered so far, read on a thread (a chatty command never blocks on a full
/// pipe, and a timeout can still say what it printed).
type Collected = Arc<Mutex<Vec<u8>>>;

fn drain(pipe: Option<impl Read + Send + 'static>) -> (Collected, Option<JoinHandle<()>>) {
    let collected = Collected::default();
    let reader = pipe.map(|mut pipe| {
        let collected = Arc::clone(&collected);
        thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Ok(mut c) = collected.lock() {
                    c.extend_from_slice(&buffer[..n]);
                }
            }
        })
    });
    (collected, reader)
}

fn bytes(collected: &Collected) -> Vec<u8> {
    collected.lock().map(|c| c.clone()).unwrap_or_default()
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
    use std::time::Instant;

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
        let message = format!("{err:#}");
        assert!(
            message.contains("the hanging command did not finish within 0 s"),
            "{message}"
        );
        assert!(
            message.ends_with("it printed last: waiting for the lock"),
            "{message}"
        );
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

    #[test]
    fn a_killed_command_takes_its_own_children_along() {
        // The shell leaves a grandchild that writes its pid; the group kill must reach it.
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        let mut parent = Command::new("sh");
        parent.args([
            "-c",
            &format!("sleep 30 & echo $! > {}; wait", pid_file.display()),
        ]);
        assert!(status(parent, "the parent", Duration::from_millis(500)).is_err());
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Gone, or a zombie nobody reaped yet (PID 1 in a container may never reap it).
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            })
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!running(), "the grandchild {pid} survived");
    }
}
