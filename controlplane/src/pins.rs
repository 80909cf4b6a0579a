//! Every external piece of the kwok backend, pinned in one place. The Go module proxy serves
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
