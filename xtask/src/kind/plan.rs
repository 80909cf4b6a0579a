//! The run as data: every command, fetched manifest (with its pin), applied object and wait, in
//! order. `--plan` prints it; the executor runs the very same list, so the two cannot drift.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use camunda_conformance::cluster::apply::{Conflicts, FIELD_MANAGER};
use camunda_conformance::cluster::deploy;
pub use camunda_conformance::cluster::deploy::SecretUse;
pub use camunda_conformance::cluster::wait::Workload;
use serde_json::Value;

use super::addons::{self, Addon, ADDONS};
use super::cli::{docker, kind, kubectl, Cmd};
use super::config::Cluster;
use super::diag;
use super::{Backend, Names, Settings};
use crate::kwok::pins;
use camunda_conformance::run::PASSWORD_ENV;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Docker,
    Kind,
    Kubectl,
    Go,
}

impl Tool {
    pub fn version(self) -> Cmd {
        match self {
            Tool::Docker => docker::server_version(),
            Tool::Kind => kind::version(),
            Tool::Kubectl => kubectl::client_version(),
            Tool::Go => Cmd::new("go", ["version"]).env("GOTOOLCHAIN", pins::GO_TOOLCHAIN),
        }
    }

    pub fn install_hint(self) -> String {
        match self {
            Tool::Docker => "a running Docker engine is needed: https://docs.docker.com/engine/install/ (then check `docker version` shows a Server)".into(),
            Tool::Kind => format!(
                "install kind {}: `go install sigs.k8s.io/kind@{}`, or the release binary from https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
                super::config::KIND_VERSION,
                super::config::KIND_VERSION
            ),
            Tool::Kubectl => "install kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl (Debian/Ubuntu: the kubernetes apt repository's `kubectl` package)".into(),
            Tool::Go => "install Go (https://go.dev/dl/): the kwok backend builds its control plane from the Go module proxy".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// `min_replicas`: the HPA's Deployment has no `replicas` (the HPA owns the count), so the
    /// API server creates it at 1 and it "rolls out" at 1/1 before the HPA raises it to
    /// minReplicas. Rolled out counts only at `min_replicas` or more.
    Rollout {
        workload: Workload,
        namespace: String,
        name: String,
        min_replicas: Option<i32>,
        timeout: Duration,
    },
    /// `status.conditions[type=Ready]` True (cert-manager Certificate, ClusterIssuer).
    Ready {
        api_version: &'static str,
        kind: &'static str,
        namespace: Option<String>,
        name: String,
        timeout: Duration,
    },
    ApiServiceAvailable {
        name: &'static str,
        timeout: Duration,
    },
    CrdEstablished {
        name: &'static str,
        timeout: Duration,
    },
}

#[derive(Clone, Debug)]
pub enum Step {
    Preflight(Vec<Tool>),
    Validate {
        overlay: PathBuf,
    },
    WriteFile {
        what: &'static str,
        path: PathBuf,
        contents: String,
    },
    EnsureCluster {
        name: String,
        config: PathBuf,
        reuse: bool,
    },
    Run {
        what: String,
        cmd: Cmd,
    },
    LoadImage {
        cluster: String,
        image: String,
        archive: PathBuf,
    },
    InstallAddon {
        addon: &'static Addon,
        dir: PathBuf,
    },
    Apply {
        what: String,
        docs: Vec<Value>,
        retry_for: Option<Duration>,
    },
    Wait(Wait),
    /// `existing`: what `camunda-conformance deploy` does (no Secret created, conflicts
    /// refused), the waits bounded by `timeout` together.
    Deploy {
        plan: deploy::Plan,
        timeout: Duration,
    },
    /// Secrets the workloads reference and the overlay does not provide: created once with
    /// generated values (kept on reuse), never printed.
    EnsureSecrets {
        secrets: Vec<SecretUse>,
    },
    Connect,
    PrometheusTargetsUp {
        timeout: Duration,
    },
    RunSuites {
        suites: Vec<String>,
    },
    DeleteCluster {
        name: String,
    },
    /// kwok: build (or find cached) and start the pinned control plane on loopback.
    StartControlPlane,
    /// kwok: the CRDs of the stack's non-core kinds, from the Go module cache.
    InstallCrds,
    /// kwok: the simulated Node, kwok's StorageClass, metrics-server's Service and APIService.
    SimulatedNode,
    /// kwok: no cert-manager controller runs; the harness issues what it would have issued.
    StandInForCertManager {
        certificates: Vec<(String, String)>,
    },
    /// kwok: stop the control plane, or with `--keep` leave it running and record it.
    ReleaseControlPlane {
        keep: bool,
    },
    /// node: build (or find cached) the binaries and images, start the node, import the images.
    StartNode,
    /// node: the volumes the stack's StatefulSets claim, as PersistentVolumes bound to each
    /// claim, in folders of the run (the harness stands in for a provisioner).
    NodeVolumes {
        volumes: Vec<crate::node::Volume>,
    },
    /// node: stop the node and put the host back, or with `--keep` leave it running.
    ReleaseNode {
        keep: bool,
    },
}

pub struct Plan {
    pub steps: Vec<Step>,
    /// Runs after the steps whatever happened (teardown).
    pub finally: Vec<Step>,
}

const ADDON_ROLLOUT: Duration = Duration::from_secs(300);
pub(super) const STACK_ROLLOUT: Duration = Duration::from_secs(600);

fn rollout_step(workload: Workload, namespace: &str, name: &str, timeout: Duration) -> Step {
    Step::Wait(Wait::Rollout {
        workload,
        namespace: namespace.into(),
        name: name.into(),
        min_replicas: None,
        timeout,
    })
}

/// An addon of the static table by name (a test checks every name used here exists).
fn addon(name: &str) -> &'static Addon {
    ADDONS
        .iter()
        .find(|a| a.name == name)
        .expect("addon names are static and tested")
}

/// The steps that put the addons on a fresh (or reused) kind cluster.
fn addon_steps(settings: &Settings, names: &Names) -> Vec<Step> {
    let dir = |name: &str| settings.work.join("addons").join(name);
    let mut steps = Vec::new();
    let ingress = addon("ingress-nginx");
    steps.push(Step::InstallAddon {
        addon: ingress,
        dir: dir(ingress.name),
    });
    steps.push(rollout_step(
        Workload::Deployment,
        addons::INGRESS_NAMESPACE,
        addons::INGRESS_CONTROLLER,
        ADDON_ROLLOUT,
    ));

    let cert_manager = addon("cert-manager");
    steps.push(Step::InstallAddon {
        addon: cert_manager,
        dir: dir(cert_manager.name),
    });
    for name in [
        "cert-manager",
        "cert-manager-cainjector",
        "cert-manager-webhook",
    ] {
        steps.push(rollout_step(
            Workload::Deployment,
            addons::CERT_MANAGER_NAMESPACE,
            name,
            ADDON_ROLLOUT,
        ));
    }
    // The webhook Deployment being Ready is not enough: its CA bundle is injected a moment later.
    // The first issuer is applied until the webhook accepts it.
    steps.push(Step::Apply {
        what: "self-signed ClusterIssuer (retried until cert-manager's webhook answers)".into(),
        docs: vec![addons::self_signed_issuer()],
        retry_for: Some(Duration::from_secs(180)),
    });
    steps.push(Step::Apply {
        what: "test CA: CA Certificate and CA ClusterIssuer".into(),
        docs: addons::ca_chain(),
        retry_for: None,
    });
    steps.push(Step::Wait(Wait::Ready {
        api_version: "cert-manager.io/v1",
        kind: "Certificate",
        namespace: Some(addons::CERT_MANAGER_NAMESPACE.into()),
        name: addons::CA_SECRET.into(),
        timeout: Duration::from_secs(120),
    }));
    steps.push(Step::Wait(Wait::Ready {
        api_version: "cert-manager.io/v1",
        kind: "ClusterIssuer",
        namespace: None,
        name: addons::CA_ISSUER.into(),
        timeout: Duration::from_secs(120),
    }));

    let metrics = addon("metrics-server");
    steps.push(Step::InstallAddon {
        addon: metrics,
        dir: dir(metrics.name),
    });
    steps.push(rollout_step(
        Workload::Deployment,
        "kube-system",
        "metrics-server",
        ADDON_ROLLOUT,
    ));
    steps.push(Step::Wait(Wait::ApiServiceAvailable {
        name: "v1beta1.metrics.k8s.io",
        timeout: ADDON_ROLLOUT,
    }));

    let prometheus = addon("prometheus-operator");
    steps.push(Step::Apply {
        what: "monitoring namespace".into(),
        docs: vec![addons::monitoring_namespace()],
        retry_for: None,
    });
    steps.push(Step::InstallAddon {
        addon: prometheus,
        dir: dir(prometheus.name),
    });
    steps.push(rollout_step(
        Workload::Deployment,
        addons::MONITORING_NAMESPACE,
        "prometheus-operator",
        ADDON_ROLLOUT,
    ));
    steps.push(Step::Apply {
        what: format!(
            "Prometheus selecting the ServiceMonitors of namespace {}",
            names.namespace
        ),
        docs: vec![addons::prometheus(&names.namespace)],
        retry_for: None,
    });
    steps.push(rollout_step(
        Workload::StatefulSet,
        addons::MONITORING_NAMESPACE,
        &format!("prometheus-{}", addons::PROMETHEUS_NAME),
        ADDON_ROLLOUT,
    ));
    steps
}

/// What an existing cluster must already run (nothing is installed there).
fn prerequisite_steps() -> Vec<Step> {
    let short = Duration::from_secs(30);
    vec![
        Step::Wait(Wait::CrdEstablished {
            name: "certificates.cert-manager.io",
            timeout: short,
        }),
        Step::Wait(Wait::CrdEstablished {
            name: "servicemonitors.monitoring.coreos.com",
            timeout: short,
        }),
        Step::Wait(Wait::ApiServiceAvailable {
            name: "v1beta1.metrics.k8s.io",
            timeout: short,
        }),
    ]
}

/// kind and kwok: the harness's throw-away cluster, where it generates the Secrets the overlay
/// does not provide and takes fields over.
fn own_cluster_deploy_steps(settings: &Settings, names: &Names) -> Vec<Step> {
    let mut steps = Vec::new();
    let generated = names.unprovided_secrets();
    let namespaces: Vec<Value> = names
        .docs
        .iter()
        .filter(|d| d["kind"] == "Namespace")
        .cloned()
        .collect();
    // The generated Secrets go into the stack's namespaces, which must exist first.
    if !generated.is_empty() && !namespaces.is_empty() {
        steps.push(Step::Apply {
            what: "the stack's namespaces (for its generated Secrets)".into(),
            docs: namespaces,
            retry_for: None,
        });
    }
    steps.push(Step::EnsureSecrets { secrets: generated });
    steps.push(Step::Apply {
        what: format!("the stack from {}", settings.overlay.display()),
        docs: names.docs.clone(),
        retry_for: None,
    });
    for rollout in &names.rollouts {
        steps.push(Step::Wait(Wait::Rollout {
            workload: rollout.workload,
            namespace: rollout.namespace.clone(),
            name: rollout.name.clone(),
            min_replicas: rollout.min_replicas,
            timeout: STACK_ROLLOUT,
        }));
    }
    steps
}

fn deploy_steps(settings: &Settings, names: &Names) -> Vec<Step> {
    let mut steps = Vec::new();
    if settings.backend == Backend::Existing {
        // Somebody's cluster: exactly what `camunda-conformance deploy` does there.
        steps.push(Step::Deploy {
            plan: names.deploy_plan(),
            timeout: STACK_ROLLOUT,
        });
    } else {
        steps.extend(own_cluster_deploy_steps(settings, names));
    }
    if matches!(settings.backend, Backend::Kwok | Backend::Node) {
        steps.push(Step::StandInForCertManager {
            certificates: names.certificates.clone(),
        });
        return steps;
    }
    for (namespace, name) in &names.certificates {
        steps.push(Step::Wait(Wait::Ready {
            api_version: "cert-manager.io/v1",
            kind: "Certificate",
            namespace: Some(namespace.clone()),
            name: name.clone(),
            timeout: Duration::from_secs(180),
        }));
    }
    steps
}

pub fn build(settings: &Settings, names: &Names) -> Result<Plan> {
    let mut steps = Vec::new();
    let mut finally = Vec::new();
    match settings.backend {
        Backend::Kind => {
            steps.push(Step::Preflight(vec![
                Tool::Docker,
                Tool::Kind,
                Tool::Kubectl,
            ]));
            steps.push(Step::Validate {
                overlay: settings.overlay.clone(),
            });
            let config = settings.work.join("kind-config.yaml");
            steps.push(Step::WriteFile {
                what: "kind cluster config",
                path: config.clone(),
                contents: Cluster::new(&settings.cluster, settings.http_port, settings.https_port)
                    .to_yaml()?,
            });
            steps.push(Step::EnsureCluster {
                name: settings.cluster.clone(),
                config,
                reuse: settings.reuse,
            });
            for built in names.project_images(&settings.images_dir) {
                let image = built.image;
                steps.push(Step::Run {
                    what: format!("build the image {image}"),
                    cmd: docker::build(
                        &image,
                        &built.dockerfile,
                        &built.build_args,
                        &settings.build_context,
                    ),
                });
                let archive_name = image.replace(['/', ':'], "_") + ".tar";
                steps.push(Step::LoadImage {
                    cluster: settings.cluster.clone(),
                    image,
                    archive: settings.work.join(archive_name),
                });
            }
            steps.extend(addon_steps(settings, names));
            steps.extend(deploy_steps(settings, names));
            if !settings.keep {
                finally.push(Step::DeleteCluster {
                    name: settings.cluster.clone(),
                });
            }
        }
        Backend::Kwok => {
            steps.push(Step::Preflight(vec![Tool::Go, Tool::Kubectl]));
            steps.push(Step::Validate {
                overlay: settings.overlay.clone(),
            });
            steps.push(Step::StartControlPlane);
            steps.push(Step::InstallCrds);
            steps.push(Step::SimulatedNode);
            steps.push(Step::Wait(Wait::Ready {
                api_version: "v1",
                kind: "Node",
                namespace: None,
                name: crate::kwok::control_plane::NODE_NAME.into(),
                timeout: Duration::from_secs(60),
            }));
            steps.push(Step::Wait(Wait::ApiServiceAvailable {
                name: "v1beta1.metrics.k8s.io",
                timeout: Duration::from_secs(120),
            }));
            steps.extend(deploy_steps(settings, names));
            finally.push(Step::ReleaseControlPlane {
                keep: settings.keep,
            });
        }
        Backend::Node => {
            steps.push(Step::Preflight(vec![Tool::Go, Tool::Kubectl]));
            steps.push(Step::Validate {
                overlay: settings.overlay.clone(),
            });
            // A reused node has its addons and volumes: only the stack converges again.
            if !settings.reuse {
                steps.push(Step::StartNode);
                steps.extend(node_steps(settings, names)?);
            }
            steps.extend(deploy_steps(settings, names));
            finally.push(Step::ReleaseNode {
                keep: settings.keep || settings.reuse,
            });
        }
        Backend::Existing => {
            steps.push(Step::Preflight(vec![Tool::Kubectl]));
            steps.extend(prerequisite_steps());
            if !settings.no_deploy {
                steps.push(Step::Validate {
                    overlay: settings.overlay.clone(),
                });
                steps.extend(deploy_steps(settings, names));
            }
        }
    }
    steps.push(Step::Connect);
    steps.push(Step::PrometheusTargetsUp {
        timeout: Duration::from_secs(180),
    });
    steps.push(Step::RunSuites {
        suites: settings.suites.clone(),
    });
    Ok(Plan { steps, finally })
}

/// node: the CRDs, the Node Ready, the addons (cluster DNS, metrics-server, the Prometheus
/// Operator and its Prometheus, Traefik) with their rollouts, and the stack's volumes.
fn node_steps(settings: &Settings, names: &Names) -> Result<Vec<Step>> {
    let mut steps = vec![Step::Apply {
        what: "CRDs: cert-manager, the Prometheus Operator, Gateway API (from the Go module cache); cert-manager's namespace (the stack's test CA lives there)"
            .into(),
        docs: crate::node::crds()?,
        retry_for: None,
    }];
    for name in crate::node::AWAITED_CRDS {
        steps.push(Step::Wait(Wait::CrdEstablished {
            name,
            timeout: Duration::from_secs(60),
        }));
    }
    steps.push(Step::Wait(Wait::Ready {
        api_version: "v1",
        kind: "Node",
        namespace: None,
        name: crate::node::cluster::NODE_NAME.into(),
        timeout: Duration::from_secs(120),
    }));
    for addon in crate::node::addons::addons(&names.namespace)? {
        steps.push(Step::Apply {
            what: format!("addon {}", addon.name),
            docs: addon.docs,
            retry_for: None,
        });
        for rollout in addon.rollouts {
            steps.push(rollout_step(
                rollout.workload,
                rollout.namespace,
                &rollout.name,
                ADDON_ROLLOUT,
            ));
        }
    }
    steps.push(Step::Wait(Wait::ApiServiceAvailable {
        name: "v1beta1.metrics.k8s.io",
        timeout: ADDON_ROLLOUT,
    }));
    let run_dir = settings
        .private_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("<the node's folder>"));
    steps.push(Step::NodeVolumes {
        volumes: crate::node::volumes(&names.docs, &run_dir)?,
    });
    Ok(steps)
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

fn yaml(docs: &[Value]) -> String {
    diag::to_yaml(docs).unwrap_or_else(|err| format!("# cannot show: {err:#}\n"))
}

impl Wait {
    pub fn describe(&self) -> String {
        match self {
            Wait::Rollout { namespace, name, min_replicas: Some(min_replicas), timeout, .. } => format!(
                "Deployment {namespace}/{name} scaled to at least the HPA's minReplicas {min_replicas} and rolled out (every replica updated, ready and available), at most {}s",
                timeout.as_secs()
            ),
            Wait::Rollout { workload, namespace, name, timeout, .. } => format!(
                "{workload:?} {namespace}/{name} rolled out ({}), at most {}s",
                match workload {
                    Workload::Deployment => "observedGeneration current; every replica updated, ready and available; no old one left",
                    Workload::StatefulSet => "observedGeneration current; every replica ready on the update revision",
                },
                timeout.as_secs()
            ),
            Wait::Ready { kind, namespace, name, timeout, .. } => format!(
                "{kind} {}{name} Ready, at most {}s",
                namespace.as_ref().map(|n| format!("{n}/")).unwrap_or_default(),
                timeout.as_secs()
            ),
            Wait::ApiServiceAvailable { name, timeout } => {
                format!("APIService {name} Available, at most {}s", timeout.as_secs())
            }
            Wait::CrdEstablished { name, timeout } => {
                format!("CRD {name} Established, at most {}s", timeout.as_secs())
            }
        }
    }
}

impl Step {
    /// The step as `--plan` shows it: a title, then the commands (`$ `) and manifests it uses.
    pub fn describe(&self, settings: &Settings, names: &Names) -> String {
        let mut out = String::new();
        let apply_note = format!(
            "server-side apply, field manager {FIELD_MANAGER}, {}",
            match settings.conflicts() {
                Conflicts::Force => "conflicts forced",
                Conflicts::Refuse => "conflicts refused",
            }
        );
        match self {
            Step::Preflight(tools) => {
                out.push_str("preflight: the tools answer (versions printed)\n");
                for tool in tools {
                    let _ = writeln!(out, "    $ {}", tool.version());
                }
            }
            Step::Validate { overlay } => {
                let _ = writeln!(out, "validate the overlay before deploying it\n    $ camunda-conformance validate {}", overlay.display());
            }
            Step::WriteFile {
                what,
                path,
                contents,
            } => {
                let _ = writeln!(out, "write the {what} to {}", path.display());
                out.push_str(&indent(contents, "    | "));
            }
            Step::EnsureCluster {
                name,
                config,
                reuse,
            } => {
                let _ = writeln!(out, "kind cluster {name}\n    $ {}", kind::get_clusters());
                let create = kind::create_cluster(name, config);
                if *reuse {
                    let _ = writeln!(
                        out,
                        "    if absent: $ {create}\n    if present: reuse it (--reuse)"
                    );
                } else {
                    let _ = writeln!(out, "    if present: stop (pass --reuse, or `cargo xtask e2e --down`)\n    $ {create}");
                }
            }
            Step::Run { what, cmd } => {
                let _ = writeln!(out, "{what}\n    $ {cmd}");
            }
            Step::LoadImage {
                cluster,
                image,
                archive,
            } => {
                let _ = writeln!(
                    out,
                    "load the image into the cluster\n    $ {}\n    on \"content digest ... not found\" (Docker's containerd image store), the engine's platform only:\n    $ {}\n    $ {}\n    $ {}",
                    kind::load_docker_image(cluster, image),
                    docker::platform(),
                    docker::save(image, "<os/arch>", archive),
                    kind::load_image_archive(cluster, archive)
                );
            }
            Step::InstallAddon { addon, dir } => {
                let _ = writeln!(out, "addon {} {} ({apply_note})", addon.name, addon.version);
                let _ = writeln!(out, "    pins: {}", addon.provenance);
                for file in addon.files {
                    let pin = file
                        .sha256
                        .unwrap_or("MISSING (the run stops here: `cargo xtask pin-addons`)");
                    let _ = writeln!(out, "    fetch {}\n        sha256 {pin}", file.url);
                }
                let kustomization =
                    serde_yaml::to_string(&addon.kustomization()).unwrap_or_default();
                let _ = writeln!(out, "    {}/kustomization.yaml:", dir.display());
                out.push_str(&indent(&kustomization, "    | "));
                let _ = writeln!(out, "    $ {}", kubectl::kustomize(dir));
                if let Some(patch) = addon_patch_note(addon.name) {
                    let _ = writeln!(out, "    patch: {patch}");
                }
            }
            Step::Apply {
                what,
                docs,
                retry_for,
            } => {
                let _ = write!(out, "apply {what} ({apply_note}");
                if let Some(bound) = retry_for {
                    let _ = write!(out, ", retried for at most {}s", bound.as_secs());
                }
                out.push_str(")\n");
                out.push_str(&indent(&yaml(docs), "    | "));
            }
            Step::Wait(wait) => {
                let _ = writeln!(out, "wait: {}", wait.describe());
            }
            Step::Deploy { plan, timeout } => {
                let _ = writeln!(
                    out,
                    "deploy {} as `camunda-conformance deploy --kube-context {} {}` does ({apply_note}; creates no Secret)",
                    settings.overlay.display(),
                    settings.context(),
                    settings.overlay.display()
                );
                for secret in plan.secrets.iter().filter(|s| !s.shipped()) {
                    let keys: Vec<&str> = secret.keys.iter().map(String::as_str).collect();
                    let _ = match &secret.provider {
                        None => writeln!(
                            out,
                            "    {}: must exist already with keys [{}], else stop before applying",
                            secret.describe(),
                            keys.join(", ")
                        ),
                        Some(by) => writeln!(
                            out,
                            "    {}: awaited from {by} (its operator creates it)",
                            secret.describe()
                        ),
                    };
                }
                let _ = writeln!(out, "    apply {} objects:", plan.docs.len());
                out.push_str(&indent(&yaml(&plan.docs), "    | "));
                for rollout in &plan.rollouts {
                    let _ = writeln!(
                        out,
                        "    wait: {:?} {}/{} rolled out{}",
                        rollout.workload,
                        rollout.namespace,
                        rollout.name,
                        rollout
                            .min_replicas
                            .map(|m| format!(" at the HPA's minReplicas {m} or more"))
                            .unwrap_or_default()
                    );
                }
                let _ = writeln!(out, "    the waits together at most {}s", timeout.as_secs());
            }
            Step::EnsureSecrets { secrets } => {
                if secrets.is_empty() {
                    out.push_str(
                        "secrets: the overlay provides every Secret its workloads reference\n",
                    );
                }
                for secret in secrets {
                    let keys: Vec<&str> = secret.keys.iter().map(String::as_str).collect();
                    let _ = writeln!(
                        out,
                        "{}: kept if present, else created with generated values for [{}] (values never printed)",
                        secret.describe(),
                        keys.join(", ")
                    );
                }
            }
            Step::Connect => {
                let context = settings.context();
                let _ = writeln!(
                    out,
                    "build the target description from the cluster (context {context})"
                );
                let _ = writeln!(
                    out,
                    "    camunda_conformance::cluster::discover on namespace {} (what `camunda-conformance run --kube-context` does): the route to engine-rest, its Service and Deployment, Ready pods, monitor (scrape job, port, path), HPA",
                    names.namespace
                );
                let _ = writeln!(
                    out,
                    "    credentials: CAMUNDA_BPM_ADMIN_USER_ID and the Secret behind CAMUNDA_BPM_ADMIN_USER_PASSWORD, held in memory and handed to the CLI in its environment ({PASSWORD_ENV}), never written to disk"
                );
                match settings.backend {
                    Backend::Kind => {
                        let _ = writeln!(
                            out,
                            "    ingress: https://{host}:{https} resolved to 127.0.0.1:{https} inside the client; http://{host}:{http}",
                            host = names.host.as_deref().unwrap_or("<Ingress TLS host>"),
                            https = settings.https_port,
                            http = settings.http_port
                        );
                        let _ = writeln!(
                            out,
                            "    CA: ca.crt of Secret {}/{} -> {}/ca.crt (never the key)",
                            addons::CERT_MANAGER_NAMESPACE,
                            addons::CA_SECRET,
                            settings.work.display()
                        );
                    }
                    Backend::Node => {
                        let (https, http) = crate::node::front_door_addresses();
                        let _ = writeln!(
                            out,
                            "    front door (Traefik on the node's network): https://{host} at {https}, http://{host} at {http}; CA: ca.crt of the route's TLS Secret (the stand-in's test CA) -> {}/ca.crt",
                            settings.work.display(),
                            host = names.host.as_deref().unwrap_or("<route TLS host>"),
                        );
                    }
                    Backend::Kwok => {
                        let _ = writeln!(
                            out,
                            "    simulated pods: no ingress, port-forward or Prometheus; replicas described by their pod addresses; CA: ca.crt of the Ingress's TLS Secret (the stand-in's test CA) -> {}/ca.crt",
                            settings.work.display()
                        );
                    }
                    Backend::Existing => {
                        let _ = writeln!(
                            out,
                            "    ingress: the Ingress's load-balancer address, port 443/80 (none: DNS)"
                        );
                        let _ = writeln!(
                            out,
                            "    CA: {} (never the Ingress's own TLS Secret)",
                            settings.ca.as_ref().map_or(
                                "the system's roots".to_string(),
                                |ca| format!("--ca {}", ca.display())
                            )
                        );
                    }
                }
                let _ = writeln!(
                    out,
                    "    per Ready pod of Deployment {}/{}: loopback port-forwards (kube-rs) to its HTTP and metrics ports; Prometheus: {}/{}, port-forwarded",
                    names.namespace,
                    names.deployment,
                    addons::MONITORING_NAMESPACE,
                    addons::PROMETHEUS_SERVICE
                );
                let _ = writeln!(out, "    write {}/target.toml", settings.work.display());
            }
            Step::PrometheusTargetsUp { timeout } => {
                let _ = writeln!(
                    out,
                    "wait: Prometheus lists every Ready pod of {} as an `up` target of the ServiceMonitor's job, at most {}s",
                    names.deployment,
                    timeout.as_secs()
                );
            }
            Step::RunSuites { suites } => {
                let only = if suites.is_empty() {
                    String::new()
                } else {
                    format!(" --suite {}", suites.join(","))
                };
                let _ = writeln!(
                    out,
                    "run the suites\n    $ camunda-conformance run --target {work}/target.toml --report-dir {work}{only}",
                    work = settings.work.display()
                );
                out.push_str("    on failure: diagnostics into <artifacts>/diagnostics (logs incl. previous containers, events, describe, HPA, Prometheus targets)\n");
            }
            Step::DeleteCluster { name } => {
                let _ = writeln!(
                    out,
                    "teardown (not with --keep)\n    $ {}",
                    kind::delete_cluster(name)
                );
            }
            Step::StartControlPlane => {
                let _ = writeln!(out, "control plane: Kubernetes {}, etcd {}, kwok {}, metrics-server {} from the Go module proxy, cached under {}/controlplane/<key of the inputs>",
                    pins::KUBERNETES, pins::ETCD, pins::KWOK, pins::METRICS_SERVER,
                    camunda_conformance_controlplane::cache::root().map(|p| p.display().to_string()).unwrap_or_else(|e| format!("({e:#})")));
                out.push_str("    started on 127.0.0.1 with a per-run PKI in a private temp dir: etcd, kube-apiserver (Node,RBAC, client-certificate admin), kube-controller-manager, kube-scheduler, kwok, metrics-server\n");
            }
            Step::InstallCrds => {
                out.push_str(
                    "CRDs from the Go module cache (server-side apply, awaited Established)\n",
                );
                for crds in pins::CRDS {
                    let _ = writeln!(
                        out,
                        "    {}@{} {}/{}",
                        crds.module,
                        crds.version,
                        crds.dir,
                        if crds.files.is_empty() {
                            "*.yaml".to_string()
                        } else {
                            format!("{{{}}}", crds.files.join(","))
                        }
                    );
                }
            }
            Step::SimulatedNode => {
                let _ = writeln!(out, "the simulated node {} (kwok), kwok's StorageClass, metrics-server's ExternalName Service and APIService v1beta1.metrics.k8s.io ({apply_note})", crate::kwok::control_plane::NODE_NAME);
            }
            Step::StandInForCertManager { certificates } => {
                out.push_str("cert-manager stand-in (its controller does not build from the Go module proxy): a per-run test CA issues each certificate into its Secret (tls.crt, tls.key, ca.crt) and the harness marks the Certificate Ready itself, saying so\n");
                for (namespace, name) in certificates {
                    let _ = writeln!(out, "    {namespace}/{name}");
                }
            }
            Step::StartNode => {
                let _ = writeln!(out, "node: Kubernetes {k} (kubelet, kube-proxy and the control plane), etcd {}, CoreDNS {}, Traefik {}, Prometheus Operator {}, metrics-server {} from the Go module proxy; Debian's containerd, runc and CNI plugins; images built here (debootstrap + umoci), all cached under {}",
                    pins::ETCD, pins::COREDNS, pins::TRAEFIK, pins::PROMETHEUS_OPERATOR, pins::METRICS_SERVER,
                    camunda_conformance_controlplane::cache::root().map(|p| p.display().to_string()).unwrap_or_else(|e| format!("({e:#})")),
                    k = pins::KUBERNETES);
                let _ = writeln!(out, "    network namespace {} (node address {}, pods {}), per-run PKI; etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet, kube-proxy inside it; the images imported into containerd",
                    crate::node::net::NETNS, crate::node::net::NODE_IP, crate::node::net::POD_CIDR);
            }
            Step::NodeVolumes { volumes } => {
                out.push_str("volumes (stand-in for a provisioner): a folder of the run and a PersistentVolume bound to each claim\n");
                for volume in volumes {
                    let _ = writeln!(out, "    {} -> {}", volume.claim, volume.dir.display());
                }
            }
            Step::ReleaseNode { keep } => {
                if *keep {
                    let _ = writeln!(
                        out,
                        "keep the node running (--keep); record it in {}",
                        crate::node::kept_state_file().display()
                    );
                } else {
                    out.push_str("stop the node: delete every pod, stop the processes, remove containers, mounts, the network namespace and cgroups, restore the kubelet's sysctls, then the leak check\n");
                }
            }
            Step::ReleaseControlPlane { keep } => {
                if *keep {
                    let _ = writeln!(
                        out,
                        "keep the control plane running (--keep); record it in {}",
                        crate::kwok::kept_state_file().display()
                    );
                } else {
                    out.push_str("stop the control plane; remove its private folder\n");
                }
            }
        }
        out
    }
}

fn addon_patch_note(name: &str) -> Option<&'static str> {
    match name {
        "ingress-nginx" => Some("controller Deployment nodeSelector ingress-ready=\"true\" + control-plane toleration; Service type NodePort (hostPorts 80/443 carry the traffic)"),
        "metrics-server" => Some("container args += --kubelet-insecure-tls (kind's kubelets serve self-signed certificates)"),
        _ => None,
    }
}

impl Plan {
    pub fn render(&self, settings: &Settings, names: &Names) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "plan: backend {:?}, context {}, overlay {} (nothing below has run)\n",
            settings.backend,
            settings.context(),
            settings.overlay.display()
        );
        for (i, step) in self.steps.iter().enumerate() {
            let _ = write!(out, "[{:>2}] {}", i + 1, step.describe(settings, names));
        }
        for step in &self.finally {
            let _ = write!(out, "[finally] {}", step.describe(settings, names));
        }
        out
    }
}
