//! The node's network: a network namespace of the run's own, joined to the host by one veth
//! pair. Every node process (control plane, containerd, kubelet, kube-proxy) runs inside it, so
//! pod, Service and node addresses, kube-proxy's netfilter rules, the CNI bridge and the
//! per-namespace sysctls all live and die with the namespace; the host gets one /30 route to
//! the node's address and nothing else.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::json;

use super::host::ip;
use camunda_conformance_controlplane::SERVICE_RANGE;

pub const NETNS: &str = "camunda-conformance-node";
/// The host's end of the veth pair (at most 15 characters).
pub const HOST_LINK: &str = "ccnode0";
const NODE_LINK: &str = "eth0";
pub const HOST_IP: &str = "10.201.0.1";
/// The node's InternalIP: the API server, the kubelet and the front door's host ports.
pub const NODE_IP: &str = "10.201.0.2";
const PREFIX: u8 = 30;
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const BRIDGE: &str = "cni0";

pub fn namespace_exists() -> bool {
    Path::new("/run/netns").join(NETNS).exists()
}

pub fn host_link_exists() -> bool {
    Path::new("/sys/class/net").join(HOST_LINK).exists()
}

/// `program` run inside the node's network namespace (and nothing else: same mounts, so the
/// kubelet's volume mounts are the runtime's).
pub fn inside(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{NETNS}"))
        .arg("--")
        .arg(program);
    cmd
}

/// Creates the namespace, the veth pair and the addresses; sets the namespace's own sysctls
/// (forwarding and bridge netfilter for Service traffic between pods).
pub fn create() -> Result<()> {
    ip(&["netns", "add", NETNS]).run()?;
    ip(&[
        "link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", NETNS,
    ])
    .run()?;
    ip(&[
        "addr",
        "add",
        &format!("{HOST_IP}/{PREFIX}"),
        "dev",
        HOST_LINK,
    ])
    .run()?;
    ip(&["link", "set", HOST_LINK, "up"]).run()?;
    let node_address = format!("{NODE_IP}/{PREFIX}");
    // The pods' bridge exists before the first pod (the CNI plugin takes it over) so that
    // Service addresses have a route from the node's own processes (the API server calls
    // metrics-server, Traefik calls the API server): without one a connect fails with "network
    // is unreachable" before kube-proxy's rules can rewrite the address. A packet no rule
    // rewrites goes nowhere: no neighbour on the bridge answers for it.
    let steps: [&[&str]; 6] = [
        &["addr", "add", &node_address, "dev", NODE_LINK],
        &["link", "set", NODE_LINK, "up"],
        &["link", "set", "lo", "up"],
        &["link", "add", BRIDGE, "type", "bridge"],
        &["link", "set", BRIDGE, "up"],
        &["route", "add", SERVICE_RANGE, "dev", BRIDGE],
    ];
    for args in steps {
        let mut all = vec!["-n", NETNS];
        all.extend_from_slice(args);
        ip(&all).run()?;
    }
    for (name, value) in [
        ("net/ipv4/ip_forward", "1"),
        ("net/bridge/bridge-nf-call-iptables", "1"),
    ] {
        let status = inside("sh")
            .arg("-c")
            .arg(format!("echo {value} > /proc/sys/{name}"))
            .status()
            .with_context(|| format!("setting {name} in the node's namespace"))?;
        anyhow::ensure!(
            status.success(),
            "setting {name} in the node's namespace: {status}"
        );
    }
    Ok(())
}

/// Deletes the namespace (its links, bridge, routes and rules go with it) and the host's end of
/// the pair if it outlived it.
pub fn delete() -> Vec<String> {
    let mut problems = Vec::new();
    if namespace_exists() {
        if let Err(err) = ip(&["netns", "delete", NETNS]).run() {
            problems.push(format!("{err:#}"));
        }
    }
    if host_link_exists() {
        if let Err(err) = ip(&["link", "delete", HOST_LINK]).run() {
            problems.push(format!("{err:#}"));
        }
    }
    problems
}

/// The CNI network of the pods: a bridge in the node's namespace, host-local addresses (their
/// state in the run's folder), the bridge as every pod's default gateway so Service addresses
/// are routed through kube-proxy's rules, and hairpin mode so a pod reaches itself through its
/// Service.
pub fn cni_config(ipam_dir: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "camunda-conformance",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
}
