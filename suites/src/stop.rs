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

/// Stops the replica the hard way (SIGKILL, or deleting its pod with a one-second grace) and
/// waits until it is gone (a pod: the object with its UID) and its http_url stops answering.
/// Returns what was done.
pub(crate) async fn stop_replica(ctx: &Ctx<'_>, replica: &Replica) -> Result<String> {
    let Some(handle) = &replica.stop else {
        bail!("{} has no stop handle", replica.name);
    };
    let done = match handle {
        StopHandle::Signal { pid } => kill(replica, &[*pid]).await?,
        StopHandle::SignalAll { pids } => kill(replica, pids).await?,
        StopHandle::DeletePod { namespace, name } => {
            return delete_pod(ctx, replica, namespace, name).await;
        }
    };
    wait_unanswered(ctx, replica, &done).await?;
    Ok(done)
}

/// kubectl with the target's kubeconfig and context.
fn kubectl(ctx: &Ctx<'_>, namespace: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("kubectl");
    if let Some(kube) = &ctx.target.kubernetes {
        if let Some(kubeconfig) = &kube.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        if let Some(context) = &kube.context {
            command.args(["--context", context]);
        }
    }
    command.args(["--namespace", namespace]);
    command
}

/// How long a deleted pod may take to be gone: its grace period, the kubelet stopping its
/// containers and reporting back.
const POD_GONE_BOUND: Duration = Duration::from_secs(120);

/// Deletes the pod with a one-second grace period (SIGTERM, SIGKILL a second later) and waits
/// until the pod with that UID is gone: without `--force` the API server keeps the object
/// until the kubelet has ended its containers, so its disappearance (or a new pod of the same
/// name with another UID) means the replica really stopped, not just the harness's
/// port-forward.
async fn delete_pod(
    ctx: &Ctx<'_>,
    replica: &Replica,
    namespace: &str,
    name: &str,
) -> Result<String> {
    let get = || {
        let mut command = kubectl(ctx, namespace);
        command.args(["get", "pod", name, "--ignore-not-found", "-o", "json"]);
        command
    };
    let before = run(&mut get())
        .await
        .with_context(|| format!("reading pod {namespace}/{name} of {}", replica.name))?;
    let Some(uid) = pod_uid(&before)? else {
        bail!("pod {namespace}/{name} of {} does not exist", replica.name);
    };
    let mut delete = kubectl(ctx, namespace);
    delete.args(["delete", "pod", name, "--grace-period=1", "--wait=false"]);
    run(&mut delete)
        .await
        .with_context(|| format!("deleting pod {namespace}/{name} of {}", replica.name))?;
    let done = format!("deleted pod {namespace}/{name} (uid {uid})");
    poll(POD_GONE_BOUND, Duration::from_secs(1), || async {
        match run(&mut get()).await {
            Ok(answer) => pod_gone(&uid, &answer),
            Err(err) => Polled::Pending(format!("{err:#}")),
        }
    })
    .await
    .with_context(|| {
        format!(
            "waiting for {} to be gone after it was {done}",
            replica.name
        )
    })?;
    wait_unanswered(ctx, replica, &done).await?;
    Ok(done)
}

/// The UID of `kubectl get pod -o json --ignore-not-found` (empty: no pod).
fn pod_uid(answer: &str) -> Result<Option<String>> {
    if answer.trim().is_empty() {
        return Ok(None);
    }
    let pod: serde_json::Value =
        serde_json::from_str(answer).context("kubectl get pod: not JSON")?;
    pod["metadata"]["uid"]
        .as_str()
        .map(|uid| Some(uid.to_string()))
        .context("kubectl get pod: no metadata.uid")
}

/// Done when no pod of that name has the old UID; else what the old pod still shows.
fn pod_gone(old_uid: &str, answer: &str) -> Polled<()> {
    if answer.trim().is_empty() {
        return Polled::Done(());
    }
    let pod: serde_json::Value = match serde_json::from_str(answer) {
        Ok(pod) => pod,
        Err(err) => return Polled::Pending(format!("kubectl get pod: not JSON: {err}")),
    };
    if pod["metadata"]["uid"].as_str() != Some(old_uid) {
        return Polled::Done(());
    }
    let containers: Vec<String> = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = c["state"]
                .as_object()
                .and_then(|s| s.keys().next().cloned())
                .unwrap_or_else(|| "unknown".into());
            format!("{} {state}", c["name"].as_str().unwrap_or("?"))
        })
        .collect();
    Polled::Pending(format!(
        "pod {} (uid {old_uid}) still there: phase {}, {}, containers [{}]",
        pod["metadata"]["name"].as_str().unwrap_or("?"),
        pod["status"]["phase"].as_str().unwrap_or("unknown"),
        if pod["metadata"]["deletionTimestamp"].is_null() {
            "not terminating"
        } else {
            "terminating"
        },
        containers.join(", ")
    ))
}

/// Waits until the replica's http_url stops answering.
async fn wait_unanswered(ctx: &Ctx<'_>, replica: &Replica, done: &str) -> Result<()> {
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
    .with_context(|| format!("waiting for {} to stop after {done}", replica.name))
}

/// kill and kubectl answer in seconds; a minute means the API server or the node hangs.
const COMMAND_BOUND: Duration = Duration::from_secs(60);

/// Runs a command; its standard output.
async fn run(command: &mut tokio::process::Command) -> Result<String> {
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
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kubectl get pod -o json` of a pod being deleted whose container still runs (the
    /// moment the harness's port-forward already fails), in the API server's shape.
    const TERMINATING: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"camunda-0","namespace":"camunda",
        "uid":"6c1b2f8e-0d1a-4c55-9d1e-3f7f0a9b2c11","deletionTimestamp":"2026-12-07T22:40:01Z","deletionGracePeriodSeconds":1},
        "status":{"phase":"Running","containerStatuses":[{"name":"camunda","ready":false,"restartCount":0,
        "state":{"running":{"startedAt":"2026-12-07T22:31:12Z"}}}]}}"#;

    #[test]
    fn a_pod_is_gone_when_its_uid_is() {
        let uid = "6c1b2f8e-0d1a-4c55-9d1e-3f7f0a9b2c11";
        assert_eq!(pod_uid(TERMINATING).unwrap().as_deref(), Some(uid));
        assert_eq!(pod_uid("").unwrap(), None);
        assert!(pod_uid("{}").is_err());
        match pod_gone(uid, TERMINATING) {
            Polled::Pending(seen) => assert_eq!(
                seen,
                "pod camunda-0 (uid 6c1b2f8e-0d1a-4c55-9d1e-3f7f0a9b2c11) still there: phase Running, terminating, containers [camunda running]"
            ),
            Polled::Done(()) => panic!("a running container is not gone"),
        }
        // Deleted: kubectl prints nothing with --ignore-not-found.
        assert!(matches!(pod_gone(uid, "\n"), Polled::Done(())));
        // A StatefulSet's new pod of the same name has another UID.
        let replaced = TERMINATING.replace(uid, "0f0e0d0c-aaaa-bbbb-cccc-111122223333");
        assert!(matches!(pod_gone(uid, &replaced), Polled::Done(())));
        assert!(matches!(pod_gone(uid, "error: oops"), Polled::Pending(_)));
    }
}
