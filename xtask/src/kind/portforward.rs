//! Per-replica and Prometheus access through `kubectl port-forward` processes on loopback ports,
//! each killed when its handle is dropped (end of run, failure or Ctrl-C unwinding).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::cli::{kubectl, Cmd};

pub struct PortForward {
    child: Child,
    /// The local ports, in the order of the remote ports asked for.
    pub local: Vec<u16>,
}

/// A port the OS says is free now. kubectl binds it a moment later; a lost race shows up as
/// kubectl exiting before it reports forwarding, which `spawn` turns into an error.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// How long kubectl may take to report that it forwards.
const READY_WITHIN: Duration = Duration::from_secs(30);

impl PortForward {
    /// Forwards `remote` ports of `resource` (`pod/NAME`, `svc/NAME`); kubectl's stderr goes to `log`.
    pub fn start(
        context: &str,
        namespace: &str,
        resource: &str,
        remote: &[u16],
        log: &Path,
    ) -> Result<Self> {
        let pairs: Vec<(u16, u16)> = remote
            .iter()
            .map(|r| Ok((free_port()?, *r)))
            .collect::<Result<_>>()?;
        let cmd = kubectl::port_forward(context, namespace, resource, &pairs);
        Self::spawn(&cmd, pairs.iter().map(|(local, _)| *local).collect(), log)
    }

    /// Runs the forwarding command until it reports every local port.
    fn spawn(cmd: &Cmd, local: Vec<u16>, log: &Path) -> Result<Self> {
        let stderr =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd.spawn(stderr)?;
        let Some(stdout) = child.stdout.take() else {
            bail!("`{cmd}` has no stdout");
        };
        // From here on Drop kills the process, whatever goes wrong below (Ctrl-C too).
        super::interrupt::forward_started(child.id());
        let forward = Self { child, local };
        // kubectl prints "Forwarding from 127.0.0.1:LOCAL -> REMOTE" once per pair when ready; the
        // reader thread keeps draining stdout afterwards so kubectl never blocks on the pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut pending = forward.local.clone();
        while !pending.is_empty() {
            match rx.recv_timeout(READY_WITHIN) {
                Ok(line) => pending.retain(|p| !line.contains(&format!("127.0.0.1:{p} "))),
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "`{cmd}` did not report forwarding within {}s (see {})",
                    READY_WITHIN.as_secs(),
                    log.display()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("`{cmd}` exited before forwarding (see {})", log.display())
                }
            }
        }
        Ok(forward)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        super::interrupt::forward_stopped(self.child.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("sh", ["-c", script])
    }

    #[test]
    fn ready_once_every_port_is_reported_and_killed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("pf.log");
        let script = "echo 'Forwarding from 127.0.0.1:41001 -> 8080'; echo 'Forwarding from 127.0.0.1:41002 -> 9404'; exec sleep 30";
        let mut forward = PortForward::spawn(&sh(script), vec![41001, 41002], &log).unwrap();
        assert!(
            matches!(forward.child.try_wait(), Ok(None)),
            "still forwarding"
        );
        let pid = forward.child.id();
        drop(forward);
        // The process is gone (reaped by Drop): signalling it fails.
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .unwrap();
        assert!(!alive.success(), "pid {pid} survived the drop");
    }

    #[test]
    fn an_exit_before_forwarding_is_an_error_that_points_at_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("pf.log");
        let script = "echo 'Forwarding from 127.0.0.1:41003 -> 8080'; echo 'error: pod not found' >&2; exit 1";
        let err = PortForward::spawn(&sh(script), vec![41003, 41004], &log)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("exited before forwarding") && err.contains("pf.log"),
            "{err}"
        );
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("pod not found"));
    }
}
