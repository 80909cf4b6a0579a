//! Stopping a replica through its stop handle, and waiting until it no longer answers.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::check::Ctx;
use crate::http::{poll, Polled};
use crate::target::{Replica, StopHandle};

/// SIGKILL to each pid.
async fn kill(replica: &Replica, pids: &[u32]) -> Result<String> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    run(tokio::process::Command::new("kill")
        .arg("-KILL")
        .args(&pids))
    .await
    .with_context(|| {
        format!(
            "sending SIGKILL to {} (pids {})",
            replica.name,
            pids.join(", ")
        )
    })?;
    Ok(format!("SIGKILL to pid {}", pids.join(", ")))
}

/// Stops the replica the hard way (SIGKILL, or deleting its pod without grace) and waits until
/// its http_url stops answering. Returns what was done.
pub(crate) async fn stop_replica(ctx: &Ctx<'_>, replica: &Replica) -> Result<String> {
    let Some(handle) = &replica.stop else {
        bail!("{} has no stop handle", replica.name);
    };
    let done = match handle {
        StopHandle::Signal { pid } => kill(replica, &[*pid]).await?,
        StopHandle::SignalAll { pids } => kill(replica, pids).await?,
        StopHandle::DeletePod { namespace, name } => {
            let mut command = tokio::process::Command::new("kubectl");
            if let Some(kube) = &ctx.target.kubernetes {
                if let Some(kubeconfig) = &kube.kubeconfig {
                    command.arg("--kubeconfig").arg(kubeconfig);
                }
                if let Some(context) = &kube.context {
                    command.args(["--context", context]);
                }
            }
            command.args([
                "--namespace",
                namespace,
                "delete",
                "pod",
                name,
                "--grace-period=0",
                "--force",
                "--wait=false",
            ]);
            run(&mut command)
                .await
                .with_context(|| format!("deleting pod {namespace}/{name} of {}", replica.name))?;
            format!("deleted pod {namespace}/{name}")
        }
    };
    let probe = format!("{}/", replica.http_url.trim_end_matches('/'));
    poll(
        Duration::from_secs(ctx.target.bounds.settle_s),
        Duration::from_millis(250),
        || async {
            match ctx.http.direct.get(&probe).send().await {
                Err(_) => Polled::Done(()),
                Ok(response) => Polled::Pending(format!(
                    "{} still answers HTTP {}",
                    replica.name,
                    response.status().as_u16()
                )),
            }
        },
    )
    .await
    .with_context(|| format!("waiting for {} to stop after {done}", replica.name))?;
    Ok(done)
}

/// kill and kubectl answer in seconds; a minute means the API server or the node hangs.
const COMMAND_BOUND: Duration = Duration::from_secs(60);

async fn run(command: &mut tokio::process::Command) -> Result<()> {
    let output = tokio::time::timeout(
        COMMAND_BOUND,
        command
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "did not finish within {} s and was killed",
            COMMAND_BOUND.as_secs()
        )
    })?
    .context("starting the command")?;
    if !output.status.success() {
        bail!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
