//! The `kind` and `existing` backends: the stack from manifests/ on a Kubernetes cluster.
//!
//! The run is a [`plan::Plan`] (a list of steps) built from the settings and the rendered
//! overlay; `--plan` prints it, otherwise [`exec`] runs it. Diagnostics are collected when
//! anything fails, then the teardown steps run.

pub mod addons;
pub(crate) mod cli;
mod config;
pub(crate) mod diag;
pub(crate) mod exec;
mod interrupt;
mod plan;
mod redact;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance::cluster::apply::{parse_documents, Conflicts};
use camunda_conformance::cluster::deploy::{self, Rollout, SecretUse};
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use crate::artifacts::{workspace_root, Artifacts};
use crate::backend::{BackendChoice, Route, RunSettings, SessionMode};
use crate::flavour::Flavour;
pub use exec::ClusterBackend;

pub use addons::pin_addons;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Kind,
    Existing,
    /// A real control plane on loopback with kwok's simulated node (see `crate::kwok`).
    Kwok,
    /// A real one-node cluster on this host (see `crate::node`).
    Node,
}

/// Everything the plan depends on, from the command line.
pub struct Settings {
    pub backend: Backend,
    pub cluster: String,
    /// `--context` (existing); kind uses its own context name.
    pub context_override: Option<String>,
    /// `--ca` (existing): the CA the ingress certificate must verify against; default: the
    /// system's roots.
    pub ca: Option<PathBuf>,
    pub overlay: PathBuf,
    pub http_port: u16,
    pub https_port: u16,
    pub keep: bool,
    pub reuse: bool,
    pub no_deploy: bool,
    pub suites: Vec<String>,
    /// The run's artifacts folder.
    pub work: PathBuf,
    /// The folder holding the project's Dockerfiles (`fixtures/image/`).
    pub images_dir: PathBuf,
    pub build_context: PathBuf,
    /// The Camunda 7 line the node backend builds its image of.
    pub flavour: Flavour,
    /// What the run deploys, as the options that choose it (a kept node records it).
    pub stack: String,
    /// kwok: the private folder of the control plane (PKI, kubeconfig, etcd data), chosen
    /// before anything runs so that every client can be pointed at its kubeconfig.
    pub private_dir: Option<PathBuf>,
}

impl Settings {
    pub fn from_run(args: &RunSettings, backend: Backend, work: &Path) -> Result<Self> {
        let root = workspace_root();
        let context_override = match backend {
            Backend::Existing => Some(args.context.clone().ok_or_else(|| {
                anyhow!("--backend existing needs --context NAME (a context of your kubeconfig)")
            })?),
            Backend::Kind | Backend::Kwok | Backend::Node => {
                let own = match backend {
                    Backend::Kwok => crate::kwok::control_plane::CONTEXT.to_string(),
                    Backend::Node => crate::node::cluster::CONTEXT.to_string(),
                    _ => config::context_name(config::CLUSTER_NAME),
                };
                if args.context.is_some() {
                    bail!("--context is for --backend existing; this backend uses context {own}");
                }
                (backend != Backend::Kind).then_some(own)
            }
        };
        if backend != Backend::Existing && args.ca.is_some() {
            bail!("--ca is for --backend existing (this backend trusts the test CA it made)");
        }
        if backend != Backend::Existing && args.no_deploy {
            bail!("--no-deploy is for --backend existing (this backend's cluster starts empty)");
        }
        if backend != Backend::Node && args.route != Route::Ingress {
            bail!("--route is for --backend node (kind serves the overlay's Ingress through ingress-nginx)");
        }
        if backend == Backend::Kwok && args.reuse {
            bail!("--reuse is not available on kwok: a kept control plane is tested with --backend existing --context {} --no-deploy", crate::kwok::control_plane::CONTEXT);
        }
        if args.faults && backend != Backend::Node {
            bail!("--faults: the fault catalogue is injected on --backend local and --backend node; {} runs the suites without it", format!("{backend:?}").to_lowercase());
        }
        if args.http_port == args.https_port {
            bail!("--http-port and --https-port must differ");
        }
        let mut overlay = match &args.overlay {
            Some(dir) => dir.clone(),
            None => default_overlay(&root, args.sessions, args.flavour)?,
        };
        if backend == Backend::Node && !args.down {
            overlay = crate::node::overlay_for(work, &overlay, args.route)?;
        }
        Ok(Self {
            backend,
            cluster: config::CLUSTER_NAME.to_string(),
            context_override,
            // Absolute: the target description resolves a relative path against its own folder.
            ca: args
                .ca
                .as_ref()
                .map(|ca| {
                    std::fs::canonicalize(ca)
                        .with_context(|| format!("--ca {}: cannot read the CA file", ca.display()))
                })
                .transpose()?,
            overlay,
            http_port: args.http_port,
            https_port: args.https_port,
            keep: args.keep,
            reuse: args.reuse,
            no_deploy: args.no_deploy,
            suites: args.suites.clone(),
            work: work.to_path_buf(),
            images_dir: root.join("fixtures/image"),
            build_context: root,
            flavour: args.flavour,
            stack: args.stack(),
            private_dir: None,
        })
    }

    /// The harness's own clusters converge by taking fields over; somebody's existing cluster
    /// gets `deploy`'s default: a conflict is an error.
    pub fn conflicts(&self) -> Conflicts {
        match self.backend {
            Backend::Kind | Backend::Kwok | Backend::Node => Conflicts::Force,
            Backend::Existing => Conflicts::Refuse,
        }
    }

    pub fn context(&self) -> String {
        self.context_override
            .clone()
            .unwrap_or_else(|| config::context_name(&self.cluster))
    }
}

/// The shipped e2e overlay of a session mode and flavour: `e2e`, `e2e-shared`, and for a fork
/// the same with `-<flavour>` (the CE overlay plus the fork's `components/flavour-*`).
fn default_overlay(root: &Path, sessions: SessionMode, flavour: Flavour) -> Result<PathBuf> {
    flavour.ensure_available()?;
    let name = overlay_name(sessions, flavour);
    let dir = root.join("manifests/overlays").join(&name);
    if !dir.is_dir() {
        bail!(
            "--sessions {sessions:?} --flavour {} has no shipped overlay ({} does not exist); pass --overlay DIR",
            flavour.name(),
            dir.display()
        );
    }
    Ok(dir)
}

fn overlay_name(sessions: SessionMode, flavour: Flavour) -> String {
    let base = match sessions {
        SessionMode::Sticky => "e2e",
        SessionMode::SharedRedis => "e2e-shared",
        SessionMode::SharedMemcached => "e2e-shared-memcached",
    };
    match flavour {
        Flavour::Ce => base.to_string(),
        fork => format!("{base}-{}", fork.name()),
    }
}

/// What the plan needs to know of the rendered overlay.
pub struct Names {
    pub docs: Vec<Value>,
    pub namespace: String,
    pub deployment: String,
    pub hpa: String,
    pub host: Option<String>,
    /// What fronts the stack: `Ingress` or a Gateway API `Gateway`, and its name.
    pub route: (&'static str, String),
    /// Every Deployment and StatefulSet; the HPA's target counts at its `minReplicas`.
    pub rollouts: Vec<Rollout>,
    /// Certificates to await: explicit ones and those cert-manager's ingress-shim creates
    /// (named after the Ingress's TLS secret).
    pub certificates: Vec<(String, String)>,
    /// Every Secret the workloads reference, with what in the overlay provides it.
    pub secrets: Vec<SecretUse>,
}

impl Names {
    /// Referenced Secrets nothing in the overlay provides: on the harness's own clusters it
    /// generates them per run.
    pub fn unprovided_secrets(&self) -> Vec<SecretUse> {
        self.secrets
            .iter()
            .filter(|s| s.provider.is_none())
            .cloned()
            .collect()
    }

    /// What `camunda-conformance deploy` does with this overlay.
    pub fn deploy_plan(&self) -> deploy::Plan {
        deploy::Plan {
            docs: self.docs.clone(),
            secrets: self.secrets.clone(),
            rollouts: self.rollouts.clone(),
        }
    }
}

/// Images the project builds itself (from `fixtures/image/`), by repository, with their
/// Dockerfile relative to that folder and its build arguments (the Camunda 7 line of the
/// application image; CE is the Dockerfile's default). Every other image is pulled by the cluster.
pub const PROJECT_IMAGES: [(&str, &str, &[&str]); 3] = [
    ("camunda-conformance/camunda", "Dockerfile", &[]),
    (
        "camunda-conformance/operaton",
        "Dockerfile",
        &["FLAVOUR=operaton"],
    ),
    ("camunda-conformance/twemproxy", "twemproxy/Dockerfile", &[]),
];

/// A project-built image the overlay uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProjectImage {
    pub image: String,
    pub dockerfile: PathBuf,
    pub build_args: Vec<String>,
}

impl Names {
    /// The project-built images the overlay uses, each with its Dockerfile, in a stable order.
    pub fn project_images(&self, images_dir: &Path) -> Vec<ProjectImage> {
        let mut images: Vec<ProjectImage> = Vec::new();
        for doc in &self.docs {
            let pod = &doc["spec"]["template"]["spec"];
            for list in ["initContainers", "containers"] {
                for container in pod[list].as_array().into_iter().flatten() {
                    let Some(image) = container["image"].as_str() else {
                        continue;
                    };
                    let repository = image.split(':').next().unwrap_or(image);
                    let Some((_, dockerfile, build_args)) = PROJECT_IMAGES
                        .iter()
                        .find(|(repo, _, _)| *repo == repository)
                    else {
                        continue;
                    };
                    if !images.iter().any(|known| known.image == image) {
                        images.push(ProjectImage {
                            image: image.to_string(),
                            dockerfile: images_dir.join(dockerfile),
                            build_args: build_args.iter().map(|a| a.to_string()).collect(),
                        });
                    }
                }
            }
        }
        images.sort();
        images
    }
}

fn name_of(doc: &Value) -> String {
    doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn namespace_of(doc: &Value) -> String {
    doc["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string()
}

fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| d["kind"] == kind)
}

/// The one object of a kind the harness needs, or an error that says what is missing or ambiguous.
fn single<'a>(docs: &'a [Value], kind: &'a str, namespace: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = of_kind(docs, kind)
        .filter(|d| namespace_of(d) == namespace)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!("the overlay has no {kind} in namespace {namespace}"),
        many => bail!(
            "the overlay has {} {kind}s in namespace {namespace} ({}); the harness needs exactly one",
            many.len(),
            many.iter().map(|d| name_of(d)).collect::<Vec<_>>().join(", ")
        ),
    }
}

impl Names {
    pub fn from_docs(docs: Vec<Value>) -> Result<Self> {
        // The Camunda Deployment is the HPA's target (the scaling suite watches that pair).
        let hpa = of_kind(&docs, "HorizontalPodAutoscaler")
            .find(|h| h["spec"]["scaleTargetRef"]["kind"] == "Deployment")
            .ok_or_else(|| {
                anyhow!("the overlay has no HorizontalPodAutoscaler targeting a Deployment")
            })?;
        let namespace = namespace_of(hpa);
        let deployment_name = hpa["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let deployment_doc = of_kind(&docs, "Deployment")
            .find(|d| name_of(d) == deployment_name && namespace_of(d) == namespace)
            .ok_or_else(|| anyhow!("the HPA targets Deployment {namespace}/{deployment_name}, which the overlay does not have"))?;
        // Typed once here so that a malformed Camunda Deployment stops the plan, not the apply.
        serde_json::from_value::<Deployment>(deployment_doc.clone())
            .with_context(|| format!("reading Deployment {namespace}/{deployment_name}"))?;
        // The overlay's Ingress, or (with the route-gateway component) a Gateway in its place.
        let has_ingress = of_kind(&docs, "Ingress").any(|d| namespace_of(d) == namespace);
        let (route, host) =
            if has_ingress || !of_kind(&docs, "Gateway").any(|d| namespace_of(d) == namespace) {
                let ingress = single(&docs, "Ingress", &namespace)?;
                let host = ingress["spec"]["tls"][0]["hosts"][0]
                    .as_str()
                    .map(str::to_string);
                (("Ingress", name_of(ingress)), host)
            } else {
                let gateway = single(&docs, "Gateway", &namespace)?;
                let host = gateway["spec"]["listeners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| l["tls"].is_object())
                    .and_then(|l| l["hostname"].as_str())
                    .map(str::to_string);
                (("Gateway", name_of(gateway)), host)
            };
        // Discovery finds it in the cluster; the plan refuses an overlay without exactly one.
        single(&docs, "ServiceMonitor", &namespace)?;

        let mut certificates: Vec<(String, String)> = of_kind(&docs, "Certificate")
            .map(|c| (namespace_of(c), name_of(c)))
            .collect();
        for ing in of_kind(&docs, "Ingress") {
            let annotations = &ing["metadata"]["annotations"];
            if annotations.get("cert-manager.io/cluster-issuer").is_some()
                || annotations.get("cert-manager.io/issuer").is_some()
            {
                for tls in ing["spec"]["tls"].as_array().into_iter().flatten() {
                    if let Some(secret) = tls["secretName"].as_str() {
                        certificates.push((namespace_of(ing), secret.to_string()));
                    }
                }
            }
        }
        // cert-manager's gateway-shim: the same annotations on a Gateway, one certificate per
        // TLS listener's Secret.
        for gateway in of_kind(&docs, "Gateway") {
            let annotations = &gateway["metadata"]["annotations"];
            if annotations.get("cert-manager.io/cluster-issuer").is_some()
                || annotations.get("cert-manager.io/issuer").is_some()
            {
                for listener in gateway["spec"]["listeners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    for reference in listener["tls"]["certificateRefs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(secret) = reference["name"].as_str() {
                            certificates.push((namespace_of(gateway), secret.to_string()));
                        }
                    }
                }
            }
        }
        certificates.sort();
        certificates.dedup();

        let hpa = name_of(hpa);
        let deploy::Plan {
            docs,
            secrets,
            rollouts,
        } = deploy::Plan::new(docs)?;
        Ok(Self {
            namespace,
            deployment: deployment_name,
            hpa,
            host,
            route,
            rollouts,
            certificates,
            secrets,
            docs,
        })
    }
}

/// `kubectl kustomize DIR` → documents (local and read-only: the plan needs them too).
pub(crate) fn render(dir: &Path) -> Result<Vec<Value>> {
    if !dir.is_dir() {
        bail!(
            "the overlay {} does not exist (pass --overlay DIR)",
            dir.display()
        );
    }
    let text = cli::kubectl::kustomize(dir)
        .output()
        .with_context(|| format!("rendering {}", dir.display()))?;
    parse_documents(&text).with_context(|| format!("reading what {} renders to", dir.display()))
}

fn backend_of(choice: BackendChoice) -> Result<Backend> {
    Ok(match choice {
        BackendChoice::Kind => Backend::Kind,
        BackendChoice::Existing => Backend::Existing,
        BackendChoice::Kwok => Backend::Kwok,
        BackendChoice::Node => Backend::Node,
        BackendChoice::Local => {
            bail!("--plan is for the cluster backends (kind, kwok, node, existing); the local backend has no plan")
        }
        BackendChoice::Auto => bail!("the backend is chosen before this"),
    })
}

/// `--plan`: every step the run would take, running nothing.
pub fn print_plan(run: &RunSettings, choice: BackendChoice, artifacts: &Artifacts) -> Result<bool> {
    let settings = Settings::from_run(run, backend_of(choice)?, &artifacts.dir)?;
    let names = Names::from_docs(render(&settings.overlay)?)?;
    let plan = plan::build(&settings, &names)?;
    print!("{}", plan.render(&settings, &names));
    Ok(true)
}

/// `--down`: stops what a `--keep` run left.
pub fn down_kept(run: &RunSettings, choice: BackendChoice, artifacts: &Artifacts) -> Result<bool> {
    let settings = Settings::from_run(run, backend_of(choice)?, &artifacts.dir)?;
    match settings.backend {
        Backend::Kwok => crate::kwok::down(run.plan),
        Backend::Node => crate::node::down(run.plan),
        Backend::Kind | Backend::Existing => down(&settings, run.plan),
    }
}

impl ClusterBackend {
    /// Renders the overlay, prepares what the backend's processes need and builds the plan;
    /// nothing runs yet.
    pub fn open(run: &RunSettings, choice: BackendChoice, artifacts: &Artifacts) -> Result<Self> {
        let mut settings = Settings::from_run(run, backend_of(choice)?, &artifacts.dir)?;
        let names = Names::from_docs(render(&settings.overlay)?)?;
        match settings.backend {
            Backend::Kwok => settings.private_dir = Some(crate::kwok::prepare_private_dir()?),
            Backend::Node if run.reuse => {
                settings.private_dir = Some(crate::node::adopt_kept(&settings.stack)?)
            }
            Backend::Node => settings.private_dir = Some(crate::node::prepare_run_dir()?),
            Backend::Kind | Backend::Existing => interrupt::install(),
        }
        let planned = plan::build(&settings, &names).and_then(|plan| {
            diag::write_manifests(&artifacts.path("manifests.yaml")?, &names.docs)?;
            Ok(plan)
        });
        match planned {
            Ok(plan) => ClusterBackend::new(settings, names, plan),
            Err(err) => {
                release_private_dir(&settings);
                Err(err)
            }
        }
    }
}

/// The control plane's (kwok) or node's private folder: gone with it, kept with it (--keep),
/// or left by a run that stopped before starting it: only the last one is removed here.
fn release_private_dir(settings: &Settings) {
    if let Some(private) = &settings.private_dir {
        match settings.backend {
            Backend::Node => crate::node::release_run_dir(private),
            _ => crate::kwok::release_private_dir(private),
        }
    }
}

/// `--down`: deletes the cluster a `--keep` run left, and the password generated for it.
fn down(settings: &Settings, plan_only: bool) -> Result<bool> {
    if settings.backend != Backend::Kind {
        bail!(
            "--down deletes the kind cluster; an existing cluster is not the harness's to delete"
        );
    }
    let delete = cli::kind::delete_cluster(&settings.cluster);
    if plan_only {
        println!("plan: $ {delete}");
        return Ok(true);
    }
    delete.run()?;
    Ok(true)
}

#[cfg(test)]
mod tests;
