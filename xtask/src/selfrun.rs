//! `cargo xtask …` run as a child of this very binary, its output read line by line as it comes
//! (and kept in a log): the interrupt test signals it at a phase, the bench times it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct SelfRun {
    child: Child,
    lines: Receiver<String>,
    log: File,
    pub started: Instant,
    /// Every line so far (stdout and stderr interleaved as they arrived).
    pub seen: Vec<String>,
    pub what: String,
}

impl SelfRun {
    /// Starts `xtask ARGS` in a process group of its own (as a shell starts a foreground job),
    /// with `env` added, its output logged to `log`.
    pub fn start(args: &[&str], env: &[(&str, OsString)], log: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the xtask binary")?;
        let what = format!("cargo xtask {}", args.join(" "));
        let mut command = Command::new(exe);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let (sender, lines) = mpsc::channel();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let log = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        Ok(Self {
            child,
            lines,
            log,
            started: Instant::now(),
            seen: Vec::new(),
            what,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` as a user would (SIGINT, Ctrl-C, to the whole foreground group; any other
    /// signal, `kill PID`, to the process alone) and expects exit 130 within `stop`; returns when
    /// it was sent (since the start) and how long the run took to stop.
    pub fn interrupt(&mut self, signal: i32, stop: Duration) -> Result<(Duration, Duration)> {
        let target = if signal == libc::SIGINT {
            -self.pid()
        } else {
            self.pid()
        };
        // SAFETY: signals the child (or its group) this harness started.
        unsafe {
            libc::kill(target, signal);
        }
        let signalled = self.started.elapsed();
        let status = self.wait_exit(stop)?;
        if status.code() != Some(130) {
            bail!(
                "expected exit 130 after the signal, got {status}; it printed last: {}",
                self.last_lines(5)
            );
        }
        Ok((signalled, self.started.elapsed() - signalled))
    }

    fn take(&mut self, line: String) {
        let _ = writeln!(self.log, "{line}");
        self.seen.push(line);
    }

    /// Waits for a line containing `marker`; the time since the start when it came.
    pub fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.take(line);
                    if found {
                        return Ok(self.started.elapsed());
                    }
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{}: no line with `{marker}` within {} s; it printed last: {}",
                    self.what,
                    timeout.as_secs(),
                    self.last_line()
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "{}: ended without printing `{marker}`; it printed last: {}",
                    self.what,
                    self.last_line()
                ),
            }
        }
    }

    /// Waits for the exit (reading the rest of the output); kills the group at the deadline.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.take(line);
            }
            if let Some(status) = self.child.try_wait().context("waiting for xtask")? {
                // The rest of the output, until both pipes close.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.take(line);
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                crate::local::supervisor::stop_groups(
                    &[(self.what.clone(), self.pid())],
                    Duration::from_secs(5),
                );
                bail!(
                    "{} did not exit within {} s and was killed; it printed last: {}",
                    self.what,
                    timeout.as_secs(),
                    self.last_line()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn last_line(&self) -> String {
        self.last_lines(1)
    }

    /// The last `count` non-empty lines it printed, oldest first, joined by ` | `.
    pub fn last_lines(&self, count: usize) -> String {
        let mut lines: Vec<&str> = self
            .seen
            .iter()
            .rev()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(count)
            .collect();
        if lines.is_empty() {
            return "nothing".into();
        }
        lines.reverse();
        lines.join(" | ")
    }
}

impl Drop for SelfRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            crate::local::supervisor::stop_groups(
                &[(self.what.clone(), self.pid())],
                Duration::from_secs(5),
            );
        }
    }
}
