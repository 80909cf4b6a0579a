//! A real Kubernetes control plane for tests and server-side validation: the pinned
//! kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and metrics-server, built
//! from the Go module proxy into a content-keyed cache ([`build`]), with a per-run PKI ([`pki`])
//! and the command lines of etcd and kube-apiserver on loopback ([`apiserver`]). Used by
//! `cargo xtask e2e --backend kwok` and `camunda-conformance validate --api-server`.

pub mod apiserver;
pub mod build;
pub mod cache;
pub mod cmd;
pub mod pins;
pub mod pki;

/// The one simulated node (kwok).
pub const NODE_NAME: &str = "kwok-node-0";
/// The kubeconfig context of the control plane.
pub const CONTEXT: &str = "kwok-camunda-conformance";
pub const SERVICE_RANGE: &str = "10.96.0.0/12";
/// The `kubernetes` Service's address, the first of [`SERVICE_RANGE`].
pub const SERVICE_IP: &str = "10.96.0.1";
pub const FRONT_PROXY_NAME: &str = "front-proxy-client";
