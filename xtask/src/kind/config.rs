//! The kind cluster configuration the harness generates (kind's `v1alpha4` Cluster API, only the
//! fields we set), the pinned versions of kind and its node image, and the cluster's names.

use serde::Serialize;

/// The kind release the node image below was built for. kind supports a node image only with
/// the release that published it, so both move together (and `.github/workflows/nightly.yml` installs this one).
pub const KIND_VERSION: &str = "v0.32.0";

/// The Kubernetes 1.35 node image published with kind v0.32.0 (its release notes' image list,
/// beside the default v1.36.1@sha256:3489c767...). Not kind's default 1.36: the pinned
/// ingress-nginx controller-v1.15.1 supports Kubernetes 1.31-1.35 only. Pinned by digest, as
/// kind's release notes require: the tag alone may point at a build for another kind release.
pub const NODE_IMAGE: &str =
    "kindest/node:v1.35.5@sha256:ce977ae6d65918d0b58a5f8b5e940429c2ce42fa3a5619ec2bbc60b949c0ac95";

/// The cluster the kind backend creates, keeps (`--keep`), reuses (`--reuse`) and deletes (`--down`).
pub const CLUSTER_NAME: &str = "camunda-conformance";

/// The kubeconfig context kind writes for [`CLUSTER_NAME`].
pub fn context_name(cluster: &str) -> String {
    format!("kind-{cluster}")
}

/// The node label ingress-nginx's kind provider selects on: only this node has the host ports.
pub const INGRESS_READY_LABEL: (&str, &str) = ("ingress-ready", "true");

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub name: String,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub role: Role,
    pub image: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_port_mappings: Vec<PortMapping>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    pub host_port: u16,
    /// Loopback only: the test stack must not be reachable from the network.
    pub listen_address: &'static str,
    pub protocol: &'static str,
}

impl Cluster {
    /// One control-plane node that also runs the workloads (kind removes the control-plane taint
    /// from a single-node cluster), labelled for the ingress controller, with the ingress ports
    /// published on the host.
    pub fn new(name: &str, http_port: u16, https_port: u16) -> Self {
        let mapping = |container_port, host_port| PortMapping {
            container_port,
            host_port,
            listen_address: "127.0.0.1",
            protocol: "TCP",
        };
        Self {
            kind: "Cluster",
            api_version: "kind.x-k8s.io/v1alpha4",
            name: name.to_string(),
            nodes: vec![Node {
                role: Role::ControlPlane,
                image: NODE_IMAGE.to_string(),
                labels: [(
                    INGRESS_READY_LABEL.0.to_string(),
                    INGRESS_READY_LABEL.1.to_string(),
                )]
                .into_iter()
                .collect(),
                extra_port_mappings: vec![mapping(80, http_port), mapping(443, https_port)],
            }],
        }
    }

    pub fn to_yaml(&self) -> anyhow::Result<String> {
        use anyhow::Context;
        serde_yaml::to_string(self).context("serialising the kind cluster config")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_pinned_image_the_label_and_the_chosen_host_ports() {
        let yaml = Cluster::new("c1", 18080, 18443).to_yaml().unwrap();
        let value: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(value["kind"], "Cluster");
        assert_eq!(value["apiVersion"], "kind.x-k8s.io/v1alpha4");
        assert_eq!(value["name"], "c1");
        let nodes = value["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 1);
        let node = &nodes[0];
        assert_eq!(node["role"], "control-plane");
        assert_eq!(node["image"], NODE_IMAGE);
        assert_eq!(node["labels"]["ingress-ready"], "true");
        let ports: Vec<(u64, u64, &str)> = node["extraPortMappings"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["containerPort"].as_u64().unwrap(),
                    m["hostPort"].as_u64().unwrap(),
                    m["listenAddress"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            vec![(80, 18080, "127.0.0.1"), (443, 18443, "127.0.0.1")]
        );
    }

    #[test]
    fn node_image_is_pinned_by_a_full_digest() {
        let digest = NODE_IMAGE.split_once("@sha256:").map(|(_, d)| d).unwrap();
        assert_eq!(digest.len(), 64);
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(context_name(CLUSTER_NAME), "kind-camunda-conformance");
    }
}
