//! Every external piece of the kwok and node backends, pinned in one place. The Go module proxy serves
//! them; go.sum (checked against the checksum database) pins their content.

/// The control plane: kube-apiserver, kube-controller-manager, kube-scheduler.
pub const KUBERNETES: &str = "v1.36.3";
pub const ETCD: &str = "v3.6.8";
/// kwok v0.8.0 is built against Kubernetes 1.36 (its supported_releases.txt lists 1.36.1).
pub const KWOK: &str = "v0.8.0";
pub const METRICS_SERVER: &str = "v0.9.0";
/// The Go toolchain that builds all of the above (metrics-server v0.9.0 needs 1.26.4 or newer).
/// Any installed Go from 1.21 on fetches exactly this one from the module proxy when it is
/// not itself (GOTOOLCHAIN), checksum-verified like every module.
pub const GO_TOOLCHAIN: &str = "go1.26.8";

/// The node backend's addons (`build::ensure_node_addons`), built with the same toolchain.
pub const COREDNS: &str = "v1.15.0";
/// Prometheus 3.16.0: the v3 line publishes its Go module as v0.3xx.y.
pub const PROMETHEUS: &str = "v0.316.0";
pub const PROMETHEUS_RELEASE: &str = "v3.16.0";
/// Traefik with its ingress-nginx provider (no longer experimental from v3.6.2).
pub const TRAEFIK: &str = "v3.6.25";
pub const PROMETHEUS_OPERATOR: &str = "v0.94.1";
/// The operator's go.mod replaces its `pkg/client` module with a local path, and the module
/// proxy does not serve `pkg/client` v0.94.x (v0.94.0 and v0.94.1 answer 404): v0.93.1 is the
/// newest it serves, and the operator v0.94.1 compiles with it.
pub const PROMETHEUS_OPERATOR_CLIENT: &str = "v0.93.1";
/// The version Traefik [`TRAEFIK`]'s go.mod requires: its Gateway provider is written against
/// this bundle (it watches GatewayClasses, Gateways, HTTPRoutes, GRPCRoutes, ReferenceGrants
/// and BackendTLSPolicies).
pub const GATEWAY_API: &str = "v1.4.0";

/// A Go module whose files (CRDs, kwok's stages) the backend reads from the module cache.
pub struct ModuleFiles {
    pub module: &'static str,
    pub version: &'static str,
    pub dir: &'static str,
    /// File names in `dir`; empty: every `*.yaml` there.
    pub files: &'static [&'static str],
}

/// The CRDs of the stack's non-core kinds, from the same releases the kind backend installs
/// (cert-manager, prometheus-operator) and the one the production overlay is written for.
pub const CRDS: &[ModuleFiles] = &[
    ModuleFiles {
        module: "github.com/cert-manager/cert-manager",
        version: "v1.21.1",
        dir: "deploy/crds",
        files: &[],
    },
    ModuleFiles {
        module: "github.com/prometheus-operator/prometheus-operator",
        version: "v0.93.0",
        dir: "example/prometheus-operator-crd",
        files: &[
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_podmonitors.yaml",
        ],
    },
    ModuleFiles {
        module: "github.com/external-secrets/external-secrets",
        version: "v1.3.2",
        dir: "config/crds/bases",
        files: &[
            "external-secrets.io_externalsecrets.yaml",
            "external-secrets.io_secretstores.yaml",
            "external-secrets.io_clustersecretstores.yaml",
        ],
    },
];

/// kwok's own behaviour files: node and pod lifecycles, volume provisioning (the PostgreSQL
/// StatefulSet claims a volume), simulated `/metrics/resource` and CPU usage from annotations.
pub const KWOK_FILES: &[ModuleFiles] = &[
    ModuleFiles {
        module: "sigs.k8s.io/kwok",
        version: KWOK,
        dir: "kustomize/stage/node/fast",
        files: &["node-initialize.yaml"],
    },
    ModuleFiles {
        module: "sigs.k8s.io/kwok",
        version: KWOK,
        dir: "kustomize/stage/pod/fast",
        files: &["pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml"],
    },
    ModuleFiles {
        module: "sigs.k8s.io/kwok",
        version: KWOK,
        dir: "kustomize/stage/volume/fast",
        files: &[
            "pv-bind.yaml",
            "pv-delete.yaml",
            "pvc-provision.yaml",
            "pvc-delete.yaml",
        ],
    },
    ModuleFiles {
        module: "sigs.k8s.io/kwok",
        version: KWOK,
        dir: "kustomize/metrics/resource",
        files: &["metrics-resource.yaml"],
    },
    ModuleFiles {
        module: "sigs.k8s.io/kwok",
        version: KWOK,
        dir: "kustomize/metrics/usage",
        files: &["usage-from-annotation.yaml"],
    },
];

/// The StorageClass kwok's volume stages provision for (applied to the cluster).
pub const KWOK_STORAGE_CLASS: ModuleFiles = ModuleFiles {
    module: "sigs.k8s.io/kwok",
    version: KWOK,
    dir: "kustomize/stage/volume/fast",
    files: &["storage-class.yaml"],
};

/// Every CRD of the Prometheus Operator, at the version the node backend runs: the operator
/// watches all of them (it warns and skips a kind whose CRD is missing).
pub const NODE_PROMETHEUS_OPERATOR_CRDS: ModuleFiles = ModuleFiles {
    module: "github.com/prometheus-operator/prometheus-operator",
    version: PROMETHEUS_OPERATOR,
    dir: "example/prometheus-operator-crd",
    files: &[
        "monitoring.coreos.com_alertmanagerconfigs.yaml",
        "monitoring.coreos.com_alertmanagers.yaml",
        "monitoring.coreos.com_podmonitors.yaml",
        "monitoring.coreos.com_probes.yaml",
        "monitoring.coreos.com_prometheusagents.yaml",
        "monitoring.coreos.com_prometheuses.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
        "monitoring.coreos.com_scrapeconfigs.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_thanosrulers.yaml",
    ],
};

/// The Gateway API standard channel Traefik is built against ([`GATEWAY_API`]): every kind its
/// Gateway provider watches.
pub const NODE_GATEWAY_API_CRDS: ModuleFiles = ModuleFiles {
    module: "sigs.k8s.io/gateway-api",
    version: GATEWAY_API,
    dir: "config/crd/standard",
    files: &[
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_grpcroutes.yaml",
        "gateway.networking.k8s.io_referencegrants.yaml",
        "gateway.networking.k8s.io_backendtlspolicies.yaml",
    ],
};

/// Traefik's own ClusterRoles for its Gateway API and ingress-nginx providers (the role only;
/// the binding and the ServiceAccount are the backend's).
pub const NODE_TRAEFIK_RBAC: ModuleFiles = ModuleFiles {
    module: "github.com/traefik/traefik/v3",
    version: TRAEFIK,
    dir: "docs/content/reference/dynamic-configuration",
    files: &[
        "kubernetes-gateway-rbac.yml",
        "kubernetes-ingress-nginx-rbac.yml",
    ],
};

/// metrics-server's own manifests (its kustomization.yaml left out: not a Kubernetes object).
pub const NODE_METRICS_SERVER_MANIFESTS: ModuleFiles = ModuleFiles {
    module: "sigs.k8s.io/metrics-server",
    version: METRICS_SERVER,
    dir: "manifests/base",
    files: &[
        "apiservice.yaml",
        "deployment.yaml",
        "rbac.yaml",
        "service.yaml",
    ],
};

/// Every file pin the node backend reads from the module cache.
pub const NODE_FILES: [&ModuleFiles; 4] = [
    &NODE_PROMETHEUS_OPERATOR_CRDS,
    &NODE_GATEWAY_API_CRDS,
    &NODE_TRAEFIK_RBAC,
    &NODE_METRICS_SERVER_MANIFESTS,
];
