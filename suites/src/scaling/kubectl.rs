//! [`KubeOps`] through kubectl: `get -o json` and the metrics API's raw path, parsed here.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{HpaStatus, KubeFuture, KubeOps, PodState, PortForward};
use crate::target::Kubernetes;

/// Tomcat's port when the pod names no `http` port.
const DEFAULT_HTTP_PORT: u16 = 8080;
/// kubectl port-forward to print its local port.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);
/// Any other kubectl call: a `get` or `annotate` that takes longer is hanging.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);
/// The pod annotation kwok's `usage-from-annotation` ClusterResourceUsage reads CPU usage from.
pub(super) const CPU_USAGE_ANNOTATION: &str = "kwok.x-k8s.io/usage-cpu";

pub(crate) struct Kubectl {
    base_args: Vec<String>,
    namespace: String,
    deployment: String,
    hpa: String,
}

impl Kubectl {
    pub fn new(kube: &Kubernetes) -> Self {
        let mut base_args = Vec::new();
        if let Some(kubeconfig) = &kube.kubeconfig {
            base_args.push("--kubeconfig".to_string());
            base_args.push(kubeconfig.display().to_string());
        }
        if let Some(context) = &kube.context {
            base_args.push("--context".to_string());
            base_args.push(context.clone());
        }
        Self {
            base_args,
            namespace: kube.namespace.clone(),
            deployment: kube.deployment.clone(),
            hpa: kube.hpa.clone(),
        }
    }

    /// Runs kubectl within [`KUBECTL_TIMEOUT`] (killed after it); stdout on success.
    async fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let shown = args.join(" ");
        let output = tokio::time::timeout(
            KUBECTL_TIMEOUT,
            tokio::process::Command::new("kubectl")
                .args(&self.base_args)
                .args(args)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .with_context(|| {
            format!(
                "kubectl {shown}: no answer within {} s",
                KUBECTL_TIMEOUT.as_secs()
            )
        })?
        .context("starting kubectl")?;
        if !output.status.success() {
            bail!(
                "kubectl {shown}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output.stdout)
    }

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let stdout = self.run(args).await?;
        serde_json::from_slice(&stdout)
            .with_context(|| format!("kubectl {}: not JSON", args.join(" ")))
    }

    async fn selector(&self) -> Result<String> {
        label_selector(&self.deployment_json().await?)
    }

    async fn deployment_json(&self) -> Result<Value> {
        self.json(&[
            "--namespace",
            &self.namespace,
            "get",
            "deployment",
            &self.deployment,
            "-o",
            "json",
        ])
        .await
    }
}

impl Kubectl {
    async fn pods_json(&self, selector: &str) -> Result<Value> {
        self.json(&[
            "--namespace",
            &self.namespace,
            "get",
            "pods",
            "--selector",
            selector,
            "-o",
            "json",
        ])
        .await
    }

    /// The Deployment, its HPA (absent: `None`) and its pods, as the API server returns them.
    pub async fn replica_objects(&self) -> Result<(Value, Option<Value>, Value)> {
        let ns = self.namespace.as_str();
        let deployment = self.deployment_json().await?;
        let hpa = self
            .run(&[
                "--namespace",
                ns,
                "get",
                "horizontalpodautoscalers.v2.autoscaling",
                &self.hpa,
                "--ignore-not-found",
                "-o",
                "json",
            ])
            .await?;
        let hpa = if hpa.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&hpa).context("kubectl get hpa: not JSON")?)
        };
        let pods = self.pods_json(&label_selector(&deployment)?).await?;
        Ok((deployment, hpa, pods))
    }
}

impl KubeOps for Kubectl {
    fn pod_metrics(&self) -> KubeFuture<'_, Vec<String>> {
        Box::pin(async move {
            let path = format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                self.namespace
            );
            Ok(pod_metric_names(
                &self.json(&["get", "--raw", &path]).await?,
            ))
        })
    }

    fn hpa(&self) -> KubeFuture<'_, HpaStatus> {
        Box::pin(async move {
            let hpa = self
                .json(&[
                    "--namespace",
                    &self.namespace,
                    "get",
                    "horizontalpodautoscalers.v2.autoscaling",
                    &self.hpa,
                    "-o",
                    "json",
                ])
                .await?;
            Ok(HpaStatus::from_api(&hpa))
        })
    }

    fn pods(&self) -> KubeFuture<'_, Vec<PodState>> {
        Box::pin(async move {
            let list = self.pods_json(&self.selector().await?).await?;
            Ok(pod_states(&list))
        })
    }

    fn set_simulated_cpu(&self, pod: &str, millicores: Option<u64>) -> KubeFuture<'_, ()> {
        let target = format!("pod/{pod}");
        let annotation = match millicores {
            Some(m) => format!("{CPU_USAGE_ANNOTATION}={m}m"),
            // A trailing dash removes it: kwok's default usage (1m) applies again.
            None => format!("{CPU_USAGE_ANNOTATION}-"),
        };
        Box::pin(async move {
            self.run(&[
                "--namespace",
                &self.namespace,
                "annotate",
                &target,
                &annotation,
                "--overwrite",
            ])
            .await
            .map(|_| ())
        })
    }

    fn port_forward(&self, pod: &str, port: u16) -> KubeFuture<'_, PortForward> {
        let pod = pod.to_string();
        Box::pin(async move {
            let target = format!("pod/{pod}");
            let ports = format!(":{port}");
            let mut child = tokio::process::Command::new("kubectl")
                .args(&self.base_args)
                .args(["--namespace", &self.namespace, "port-forward", &target])
                .args(["--address", "127.0.0.1", &ports])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting kubectl port-forward")?;
            let stdout = child
                .stdout
                .take()
                .context("kubectl port-forward: no stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let local = tokio::time::timeout(FORWARD_TIMEOUT, async {
                while let Some(line) = lines.next_line().await? {
                    if let Some(local) = forwarded_port(&line) {
                        return Ok(local);
                    }
                }
                bail!("kubectl port-forward {target} ended before forwarding")
            })
            .await
            .with_context(|| {
                format!(
                    "kubectl port-forward {target}: no local port within {} s",
                    FORWARD_TIMEOUT.as_secs()
                )
            })??;
            // kubectl prints a line per connection: keep reading so that it never blocks on a
            // full pipe; the task ends at EOF when the child is killed.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok(PortForward {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, local)),
                _child: child,
            })
        })
    }
}

/// `k=v,k2=v2` from a Deployment's `spec.selector.matchLabels`.
fn label_selector(deployment: &Value) -> Result<String> {
    let labels = deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("the deployment has no spec.selector.matchLabels")?;
    Ok(labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(","))
}

/// The container port named `http` (the manifests' name for Tomcat's port), else 8080.
fn http_port(pod: &Value) -> u16 {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == "http")
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|port| u16::try_from(port).ok())
        .unwrap_or(DEFAULT_HTTP_PORT)
}

/// The pod's CPU request in millicores, summed over its containers (`None` without one).
fn cpu_request_m(pod: &Value) -> Option<u64> {
    let requests: Vec<u64> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| millicores(c["resources"]["requests"]["cpu"].as_str()?))
        .collect();
    (!requests.is_empty()).then(|| requests.iter().sum())
}

/// A CPU quantity (`500m`, `1`, `0.5`) in millicores.
fn millicores(quantity: &str) -> Option<u64> {
    match quantity.strip_suffix('m') {
        Some(milli) => milli.parse().ok(),
        None => {
            let cores: f64 = quantity.parse().ok()?;
            // Quantities are small decimals; rounding to a millicore is exact enough.
            Some((cores * 1000.0).round() as u64)
        }
    }
}

/// The local port of kubectl port-forward's `Forwarding from 127.0.0.1:PORT -> ...` line.
fn forwarded_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("Forwarding from 127.0.0.1:")?;
    rest.split_whitespace().next()?.parse().ok()
}

fn pod_metric_names(list: &Value) -> Vec<String> {
    items(list)
        .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list["items"].as_array().into_iter().flatten()
}

pub(super) fn pod_states(list: &Value) -> Vec<PodState> {
    items(list)
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|pod| {
            let ready = pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Some(PodState {
                name: pod["metadata"]["name"].as_str()?.to_string(),
                ready,
                ip: pod["status"]["podIP"].as_str().map(str::to_string),
                http_port: http_port(pod),
                cpu_request_m: cpu_request_m(pod),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODS: &str = include_str!("../../tests/data/pods.json");

    #[test]
    fn pods_ready_and_terminating() {
        let list: Value = serde_json::from_str(PODS).unwrap();
        let pods = pod_states(&list);
        assert_eq!(
            pods,
            [
                PodState {
                    name: "camunda-7d9f-abcde".into(),
                    ready: true,
                    ip: Some("10.244.0.12".into()),
                    http_port: DEFAULT_HTTP_PORT,
                    cpu_request_m: None,
                },
                PodState {
                    name: "camunda-7d9f-fghij".into(),
                    ready: false,
                    ip: None,
                    http_port: DEFAULT_HTTP_PORT,
                    cpu_request_m: None,
                },
            ]
        );
        let deployment = serde_json::json!({"spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "camunda", "tier": "web"}}}});
        assert_eq!(
            label_selector(&deployment).unwrap(),
            "app.kubernetes.io/name=camunda,tier=web"
        );
        assert!(label_selector(&serde_json::json!({})).is_err());
        assert_eq!(
            forwarded_port("Forwarding from 127.0.0.1:41234 -> 8080"),
            Some(41234)
        );
        assert_eq!(forwarded_port("Forwarding from [::1]:41234 -> 8080"), None);
        assert_eq!(
            http_port(
                &serde_json::json!({"spec": {"containers": [{"ports": [{"name": "metrics", "containerPort": 9404}, {"name": "http", "containerPort": 8081}]}]}})
            ),
            8081
        );
        assert_eq!(http_port(&serde_json::json!({})), DEFAULT_HTTP_PORT);
        assert_eq!(
            cpu_request_m(
                &serde_json::json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "500m"}}}, {"resources": {"requests": {"cpu": "0.25"}}}, {}]}})
            ),
            Some(750)
        );
        assert_eq!(
            cpu_request_m(&serde_json::json!({"spec": {"containers": [{}]}})),
            None
        );
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("x"), None);
        let metrics = serde_json::json!({"kind": "PodMetricsList", "items": [{"metadata": {"name": "camunda-7d9f-abcde"}, "containers": []}]});
        assert_eq!(pod_metric_names(&metrics), ["camunda-7d9f-abcde"]);
    }
}
