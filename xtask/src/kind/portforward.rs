//! Per-replica and Prometheus access through `kubectl port-forward` processes on loopback ports,
//! each killed when its handle is dropped (end of run, failure or Ctrl-C unwinding).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::cli::kubectl;

pub struct PortForward {
    child: Child,
    /// What it forwards, for messages.
    pub what: String,
    /// The local ports, in the order of the remote ports asked for.
    pub local: Vec<u16>,
}

/// A port the OS says is free now. kubectl binds it a moment later; a lost race shows up as
/// kubectl exiting before it reports forwarding, which `start` turns into an error.
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
        let stderr =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = cmd.spawn(stderr)?;
        let what = format!("{namespace}/{resource}");
        let Some(stdout) = child.stdout.take() else {
            bail!("`{cmd}` has no stdout");
        };
        // kubectl prints "Forwarding from 127.0.0.1:LOCAL -> REMOTE" once per pair when ready; the
        // reader thread keeps draining stdout afterwards so kubectl never blocks on the pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut pending: Vec<u16> = pairs.iter().map(|(local, _)| *local).collect();
        let mut forward = Self {
            child,
            what,
            local: pairs.iter().map(|(l, _)| *l).collect(),
        };
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
        if let Ok(Some(status)) = forward.child.try_wait() {
            bail!("`{cmd}` exited ({status}); see {}", log.display());
        }
        forward.what = format!("{} -> {:?}", forward.what, forward.local);
        Ok(forward)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
