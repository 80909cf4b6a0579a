//! [`KubeOps`] through kubectl: `get -o json` and the metrics API's raw path, parsed here.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{HpaStatus, KubeFuture, KubeOps, PodState};
use crate::target::Kubernetes;

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

    async fn json(&self, args: &[&str]) -> Result<Value> {
        let output = tokio::process::Command::new("kubectl")
            .args(&self.base_args)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .context("starting kubectl")?;
        let shown = args.join(" ");
        if !output.status.success() {
            bail!(
                "kubectl {shown}: {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("kubectl {shown}: not JSON"))
    }

    async fn selector(&self) -> Result<String> {
        let deployment = self
            .json(&[
                "--namespace",
                &self.namespace,
                "get",
                "deployment",
                &self.deployment,
                "-o",
                "json",
            ])
            .await?;
        label_selector(&deployment)
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
            Ok(hpa_status(&hpa))
        })
    }

    fn pods(&self) -> KubeFuture<'_, Vec<PodState>> {
        Box::pin(async move {
            let selector = self.selector().await?;
            let list = self
                .json(&[
                    "--namespace",
                    &self.namespace,
                    "get",
                    "pods",
                    "--selector",
                    &selector,
                    "-o",
                    "json",
                ])
                .await?;
            Ok(pod_states(&list))
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

fn pod_metric_names(list: &Value) -> Vec<String> {
    items(list)
        .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list["items"].as_array().into_iter().flatten()
}

fn pod_states(list: &Value) -> Vec<PodState> {
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
            })
        })
        .collect()
}

/// An autoscaling/v2 HPA object, reduced to what the suite reports and decides on.
fn hpa_status(hpa: &Value) -> HpaStatus {
    let number = |v: &Value| u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
    let targets: Vec<(String, String)> = hpa["spec"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let (name, target) = metric_parts(m, "target")?;
            Some((name, target))
        })
        .collect();
    let current_metrics = hpa["status"]["currentMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let (name, current) = metric_parts(m, "current")?;
            let target = targets
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| format!(" (target {t})"))
                .unwrap_or_default();
            Some(format!("{name} {current}{target}"))
        })
        .collect();
    let conditions = hpa["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({})",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    HpaStatus {
        // minReplicas defaults to 1 when absent.
        min_replicas: if hpa["spec"]["minReplicas"].is_null() {
            1
        } else {
            number(&hpa["spec"]["minReplicas"])
        },
        max_replicas: number(&hpa["spec"]["maxReplicas"]),
        current_replicas: number(&hpa["status"]["currentReplicas"]),
        desired_replicas: number(&hpa["status"]["desiredReplicas"]),
        current_metrics,
        conditions,
    }
}

/// (metric name, value) of a v2 metric spec or status entry; `field` is `target` or
/// `current`. Entries without a value (`<unknown>` in kubectl) give `None`.
fn metric_parts(metric: &Value, field: &str) -> Option<(String, String)> {
    let kind = metric["type"].as_str()?;
    let key = match kind {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return None,
    };
    let body = &metric[key];
    let name = body["name"]
        .as_str()
        .or_else(|| body["metric"]["name"].as_str())?
        .to_string();
    let values = &body[field];
    let value = if let Some(u) = values["averageUtilization"].as_u64() {
        format!("{u}%")
    } else if let Some(v) = values["averageValue"].as_str() {
        v.to_string()
    } else {
        values["value"].as_str()?.to_string()
    };
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HPA: &str = include_str!("../../tests/data/hpa-v2.json");
    const PODS: &str = include_str!("../../tests/data/pods.json");

    #[test]
    fn hpa_with_and_without_current_metrics() {
        let hpa: Value = serde_json::from_str(HPA).unwrap();
        let status = hpa_status(&hpa);
        assert_eq!(status.min_replicas, 2);
        assert_eq!(status.max_replicas, 4);
        assert_eq!(status.current_replicas, 2);
        assert_eq!(status.desired_replicas, 3);
        assert_eq!(status.current_metrics, ["cpu 87% (target 50%)"]);
        assert!(status
            .conditions
            .contains(&"ScalingActive=True (ValidMetricFound)".to_string()));

        // Right after creation: the metric has no current value yet.
        let mut fresh = hpa.clone();
        fresh["status"]["currentMetrics"] =
            serde_json::json!([{"type": "Resource", "resource": {"name": "cpu", "current": {}}}]);
        assert!(hpa_status(&fresh).current_metrics.is_empty());
    }

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
                    ip: Some("10.244.0.12".into())
                },
                PodState {
                    name: "camunda-7d9f-fghij".into(),
                    ready: false,
                    ip: None
                },
            ]
        );
        let deployment = serde_json::json!({"spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "camunda", "tier": "web"}}}});
        assert_eq!(
            label_selector(&deployment).unwrap(),
            "app.kubernetes.io/name=camunda,tier=web"
        );
        assert!(label_selector(&serde_json::json!({})).is_err());
        let metrics = serde_json::json!({"kind": "PodMetricsList", "items": [{"metadata": {"name": "camunda-7d9f-abcde"}, "containers": []}]});
        assert_eq!(pod_metric_names(&metrics), ["camunda-7d9f-abcde"]);
    }
}
