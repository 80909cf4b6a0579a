//! Loopback port-forwards to pods through the API server (kube-rs, no kubectl): one listener on
//! 127.0.0.1 per forwarded port, a fresh forwarding stream per accepted connection. Dropping
//! [`Forwards`] closes every listener and connection.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long the API server may take to open the first stream to a pod.
const PROBE_WITHIN: Duration = Duration::from_secs(20);

/// The open forwards of a run; closed on drop (end of run, failure or unwinding).
#[derive(Default)]
pub struct Forwards {
    tasks: Vec<JoinHandle<()>>,
}

impl Forwards {
    /// Forwards `port` of pod `namespace/pod` to a free loopback port, which it returns. One
    /// stream is opened first so that a pod the API server cannot reach is an error here, not a
    /// failed check later.
    pub async fn open(
        &mut self,
        pods: &Api<Pod>,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<u16> {
        let what = format!("port-forward to pod {namespace}/{pod} port {port}");
        let probe = tokio::time::timeout(PROBE_WITHIN, pods.portforward(pod, &[port]))
            .await
            .map_err(|_| anyhow!("{what}: no stream within {}s", PROBE_WITHIN.as_secs()))?
            .with_context(|| what.clone())?;
        probe.abort();
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .with_context(|| format!("{what}: binding a loopback port"))?;
        let local = listener.local_addr().with_context(|| what.clone())?.port();
        let (pods, pod) = (pods.clone(), pod.to_string());
        self.tasks.push(tokio::spawn(async move {
            // Owned by the listener's task: aborting that drops the set, which aborts these.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let (pods, pod) = (pods.clone(), pod.clone());
                connections.spawn(async move {
                    // A failed stream closes this connection only; the client sees it as such.
                    let Ok(mut forwarder) = pods.portforward(&pod, &[port]).await else {
                        return;
                    };
                    if let Some(mut stream) = forwarder.take_stream(port) {
                        let _ = tokio::io::copy_bidirectional(&mut socket, &mut stream).await;
                    }
                    forwarder.abort();
                });
                // Reap the finished ones so a long run does not accumulate them.
                while connections.try_join_next().is_some() {}
            }
        }));
        Ok(local)
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
