//! Runs a [`Plan`]: each step in order, then diagnostics when something failed, then the
//! teardown steps whatever happened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use camunda_conformance::cluster::apply::{self as cluster, Applier, FIELD_MANAGER};
use camunda_conformance::cluster::discover::{self, Password, Request};
use camunda_conformance::cluster::portforward::Forwards;
use camunda_conformance::cluster::{deploy, wait};
use camunda_conformance::run::PASSWORD_ENV;
use camunda_conformance_suites::{Backend as TargetBackend, Credentials};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use k8s_openapi::ByteString;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};

use super::addons;

mod faults;
use super::cli::{kind, kubectl};
use super::diag;
use super::plan::{Plan, SecretUse, Step, Wait};
use super::{Backend, Names, Settings};
use crate::artifacts::Timings;
use crate::conformance;
use crate::kwok::control_plane::{self, ControlPlane};
use crate::kwok::{build, pins};

/// State that steps hand to later steps.
struct Runner {
    settings: Rc<Settings>,
    names: Rc<Names>,
    applier: Option<Applier>,
    http: reqwest::Client,
    cli: Option<PathBuf>,
    /// The product's port-forwards for the suites, closed when dropped.
    forwards: Option<Forwards>,
    prometheus_url: Option<String>,
    /// Written by Connect: the file, the scrape job and how many replicas Prometheus must list.
    target: Option<(PathBuf, String, usize)>,
    /// Read by Connect from the cluster's Secret, for the CLI's environment only.
    password: Option<Password>,
    /// The kind cluster is this run's (created or reused): only then may teardown delete it,
    /// never after refusing to touch a cluster that was there without --reuse.
    cluster_owned: bool,
    /// kwok: the running control plane (stopped on drop).
    control_plane: Option<ControlPlane>,
    /// node: the running node (stopped on drop).
    node: Option<crate::node::cluster::Node>,
}

/// kind, kwok, node and existing: a [`Plan`] run step by step. `up` runs the steps up to the
/// suites (the cluster, the addons, the deploy, the connection), `suites` the rest, `down` the
/// plan's teardown steps.
pub struct ClusterBackend {
    runtime: tokio::runtime::Runtime,
    runner: Runner,
    plan: Plan,
    /// Steps started so far (the progress lines count across `up` and `suites`).
    started: usize,
}

impl ClusterBackend {
    pub fn new(settings: Settings, names: Names, plan: Plan) -> Result<Self> {
        Ok(Self {
            runtime: tokio::runtime::Runtime::new().context("starting the async runtime")?,
            runner: Runner {
                settings: Rc::new(settings),
                names: Rc::new(names),
                applier: None,
                http: reqwest::Client::builder()
                    .build()
                    .context("building the HTTP client")?,
                cli: None,
                forwards: None,
                prometheus_url: None,
                target: None,
                password: None,
                cluster_owned: false,
                control_plane: None,
                node: None,
            },
            plan,
            started: 0,
        })
    }

    /// Runs the plan's steps `range` in order; stops at the first that fails.
    fn run_steps(&mut self, range: std::ops::Range<usize>, timings: &mut Timings) -> Result<bool> {
        let total = self.plan.steps.len();
        let (settings, names) = (self.runner.settings.clone(), self.runner.names.clone());
        for i in range {
            let step = &self.plan.steps[i];
            let title = step.describe(&settings, &names);
            let title = title.lines().next().unwrap_or_default();
            println!("[{:>2}/{total}] {title}", i + 1);
            self.started = i + 1;
            let started = Instant::now();
            let result = self.runtime.block_on(self.runner.step(step));
            timings.record(
                format!("{:>2} {}", i + 1, truncate(title, 36)),
                started.elapsed(),
            );
            match result {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(err) => return Err(err.context(format!("step {} of {total}: {title}", i + 1))),
            }
        }
        Ok(true)
    }

    /// Where the suites start: everything before brings the stack up.
    fn suites_start(&self) -> usize {
        self.plan
            .steps
            .iter()
            .position(|step| matches!(step, Step::RunSuites { .. }))
            .unwrap_or(self.plan.steps.len())
    }
}

impl crate::backend::Backend for ClusterBackend {
    fn up(&mut self, timings: &mut Timings) -> Result<()> {
        let end = self.suites_start();
        if !self.run_steps(0..end, timings)? {
            bail!("the stack did not come up (see the step above)");
        }
        Ok(())
    }

    fn target(&self) -> Option<&std::path::Path> {
        self.runner
            .target
            .as_ref()
            .map(|(file, _, _)| file.as_path())
    }

    fn suites(&mut self, timings: &mut Timings) -> Result<bool> {
        let start = self.suites_start().max(self.started);
        self.run_steps(start..self.plan.steps.len(), timings)
    }

    fn faults(&mut self, timings: &mut Timings) -> Result<bool> {
        let started = Instant::now();
        let matrix = self.node_faults();
        timings.record("faults".to_string(), started.elapsed());
        matrix
    }

    fn diagnostics(&mut self) {
        // Only once a cluster answered: before that there is nothing to collect.
        if self.runner.applier.is_none() {
            return;
        }
        let settings = &self.runner.settings;
        // Outside the runtime: the collectors block (kubectl, one HTTP GET).
        if let Some(plane) = self.runner.control_plane.as_mut() {
            if let Some(exited) = plane.exited() {
                eprintln!("control plane: {exited}");
            }
            println!("control plane logs: {}", plane.logs().display());
        }
        if let Some(node) = self.runner.node.as_mut() {
            if let Some(exited) = node.any_exited() {
                eprintln!("node: {exited}");
            }
            println!("node logs: {}", settings.work.join("logs").display());
        }
        if let Err(err) = diag::collect(
            &settings.work,
            &settings.context(),
            &self.runner.names.namespace,
            &self.runner.names.hpa,
            self.runner.prometheus_url.as_deref(),
        ) {
            eprintln!("warning: diagnostics incomplete: {err:#}");
        }
    }

    fn down(&mut self, _timings: &mut Timings) -> Result<()> {
        self.runner.forwards = None;
        let mut failed = Vec::new();
        for step in &self.plan.finally {
            if let Err(err) = self.runtime.block_on(self.runner.step(step)) {
                failed.push(format!("{err:#}"));
            }
        }
        super::release_private_dir(&self.runner.settings);
        if !failed.is_empty() {
            bail!("{}", failed.join("; "));
        }
        Ok(())
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Runner {
    async fn applier(&mut self) -> Result<&mut Applier> {
        if self.applier.is_none() {
            let client =
                camunda_conformance::cluster::connect(Some(&self.settings.context())).await?;
            self.applier = Some(Applier::new(client, self.settings.conflicts()));
        }
        self.applier
            .as_mut()
            .ok_or_else(|| anyhow!("no cluster connection"))
    }

    async fn client(&mut self) -> Result<kube::Client> {
        Ok(self.applier().await?.client().clone())
    }

    /// `Ok(false)`: the suites ran and a check failed.
    async fn step(&mut self, step: &Step) -> Result<bool> {
        match step {
            Step::Preflight(tools) => {
                for tool in tools {
                    let out = tool
                        .version()
                        .output()
                        .map_err(|err| anyhow!("{err:#}\n  hint: {}", tool.install_hint()))?;
                    let version = out.lines().next().unwrap_or_default().trim();
                    if version.is_empty() {
                        bail!(
                            "`{}` printed no version\n  hint: {}",
                            tool.version(),
                            tool.install_hint()
                        );
                    }
                    println!("  {:?}: {version}", tool);
                }
            }
            Step::Validate { overlay } => {
                let cli = self.cli()?;
                if !conformance::validate(&cli, overlay)? {
                    bail!(
                        "`camunda-conformance validate {}` found errors: not deploying it",
                        overlay.display()
                    );
                }
            }
            Step::WriteFile { path, contents, .. } => {
                std::fs::write(path, contents)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Step::EnsureCluster {
                name,
                config,
                reuse,
            } => {
                let listed = kind::cluster_listed(&kind::get_clusters().output()?, name);
                match (listed, reuse) {
                    (true, true) => println!(
                        "  reusing kind cluster {name} (with the port mappings it was created with)"
                    ),
                    (true, false) => bail!("kind cluster {name} exists already: pass --reuse to use it, or delete it with `cargo xtask e2e --down`"),
                    (false, _) => kind::create_cluster(name, config).run()?,
                }
                self.cluster_owned = true;
                super::interrupt::cluster_owned(name, self.settings.keep);
            }
            Step::Run { cmd, .. } => cmd.run()?,
            Step::LoadImage {
                cluster,
                image,
                archive,
            } => load_image(cluster, image, archive)?,
            Step::InstallAddon { addon, dir } => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let cache = self
                    .settings
                    .work
                    .parent()
                    .unwrap_or(&self.settings.work)
                    .join(".addon-cache");
                for file in addon.files {
                    addons::fetch(&self.http, file, &cache, dir).await?;
                }
                let kustomization = serde_yaml::to_string(&addon.kustomization())
                    .context("serialising a kustomization")?;
                std::fs::write(dir.join("kustomization.yaml"), kustomization)
                    .with_context(|| format!("writing {}/kustomization.yaml", dir.display()))?;
                let mut docs = cluster::parse_documents(&kubectl::kustomize(dir).output()?)?;
                (addon.patch)(&mut docs).with_context(|| format!("patching {}", addon.name))?;
                diag::write_manifests(&dir.join("rendered.yaml"), &docs)?;
                self.applier()
                    .await?
                    .apply(&docs)
                    .await
                    .with_context(|| format!("installing {}", addon.name))?;
            }
            Step::Apply {
                docs,
                retry_for,
                what,
            } => match retry_for {
                None => self.applier().await?.apply(docs).await?,
                Some(bound) => {
                    let started = Instant::now();
                    loop {
                        match self.applier().await?.apply(docs).await {
                            Ok(()) => break,
                            Err(err) if started.elapsed() < *bound => {
                                println!(
                                    "  {what}: not accepted yet ({}s of {}s): {err:#}",
                                    started.elapsed().as_secs(),
                                    bound.as_secs()
                                );
                                tokio::time::sleep(Duration::from_secs(5)).await;
                            }
                            Err(err) => {
                                return Err(
                                    err.context(format!("timed out after {}s", bound.as_secs()))
                                )
                            }
                        }
                    }
                }
            },
            Step::Wait(w) => self.wait(w).await?,
            Step::Deploy { plan, timeout } => {
                let client = self.client().await?;
                deploy::deploy(&client, plan, self.settings.conflicts(), *timeout).await?;
            }
            Step::EnsureSecrets { secrets } => {
                let client = self.client().await?;
                for need in secrets {
                    ensure_secret(&client, need).await?;
                }
            }
            Step::Connect => self.connect().await?,
            Step::PrometheusTargetsUp { timeout } => {
                let (Some(url), Some((_, job, replicas))) =
                    (self.prometheus_url.clone(), self.target.clone())
                else {
                    println!(
                        "  no Prometheus to ask: the metrics suite reports its checks skipped"
                    );
                    return Ok(true);
                };
                let targets = format!("{url}/api/v1/targets?state=active");
                let what = format!("Prometheus targets of job {job}");
                let http = self.http.clone();
                wait::poll_until(&what, *timeout, Duration::from_secs(3), || {
                    let (http, targets, job) = (http.clone(), targets.clone(), job.clone());
                    async move {
                        let body: Value = http
                            .get(&targets)
                            .send()
                            .await?
                            .error_for_status()?
                            .json()
                            .await?;
                        Ok(wait::prometheus_targets_up(&body, &job, replicas))
                    }
                })
                .await?;
            }
            Step::RunSuites { suites } => {
                let cli = self.cli()?;
                let (target, _, _) = self
                    .target
                    .clone()
                    .ok_or_else(|| anyhow!("no target description was written"))?;
                let password = self
                    .password
                    .as_ref()
                    .ok_or_else(|| anyhow!("no password was read from the cluster"))?;
                return conformance::run_suites(
                    &cli,
                    &target,
                    suites,
                    &self.settings.work,
                    password.expose(),
                );
            }
            Step::StartControlPlane => {
                let private = self.settings.private_dir.clone().ok_or_else(|| {
                    anyhow!("no private folder was prepared for the control plane")
                })?;
                let (logs, keep) = (self.settings.work.join("logs"), self.settings.keep);
                let started = Instant::now();
                // Blocking work (Go builds, a blocking HTTP client): off the async context.
                let plane = tokio::task::block_in_place(|| {
                    let binaries = build::ensure()?;
                    ControlPlane::start(&binaries, &private, &logs, keep)
                })?;
                println!(
                    "  control plane up in {:.1}s (context {}, kubeconfig {})",
                    started.elapsed().as_secs_f64(),
                    control_plane::CONTEXT,
                    plane.kubeconfig.display()
                );
                self.control_plane = Some(plane);
            }
            Step::InstallCrds => {
                let mut docs = Vec::new();
                for crds in pins::CRDS {
                    docs.extend(control_plane::module_docs(crds)?);
                }
                println!("  {} CRDs", docs.len());
                self.applier().await?.apply(&docs).await?;
            }
            Step::SimulatedNode => {
                let plane = self
                    .control_plane
                    .as_ref()
                    .ok_or_else(|| anyhow!("the control plane is not running"))?;
                let docs = control_plane::cluster_objects(plane.metrics_server_port, &plane.ca)?;
                self.applier().await?.apply(&docs).await?;
            }
            Step::StandInForCertManager { certificates } => {
                let client = self.client().await?;
                let host = self.names.host.clone().ok_or_else(|| {
                    anyhow!("the Ingress names no TLS host to issue a certificate for")
                })?;
                crate::kwok::certificates::stand_in(
                    self.applier().await?,
                    &client,
                    &host,
                    certificates,
                )
                .await?;
            }
            Step::ReleaseControlPlane { keep } => {
                let Some(plane) = self.control_plane.take() else {
                    return Ok(true);
                };
                if *keep {
                    let kept = plane.keep();
                    let file = crate::kwok::kept_state_file();
                    kept.write(&file)?;
                    let kubeconfig = crate::kwok::kept_kubeconfig();
                    std::fs::copy(&kept.kubeconfig, &kubeconfig).with_context(|| {
                        format!("copying the kubeconfig to {}", kubeconfig.display())
                    })?;
                    println!(
                        "  kept the control plane (recorded in {}):\n    KUBECONFIG={} cargo xtask e2e --backend existing --context {} --no-deploy\n    cargo xtask e2e --backend kwok --down",
                        file.display(),
                        kubeconfig.display(),
                        control_plane::CONTEXT
                    );
                } else {
                    drop(plane);
                }
            }
            Step::StartNode => {
                let run_dir = self
                    .settings
                    .private_dir
                    .clone()
                    .ok_or_else(|| anyhow!("no folder was prepared for the node"))?;
                let started = Instant::now();
                let node = tokio::task::block_in_place(|| {
                    let settings = &self.settings;
                    crate::node::start(&settings.work, settings.flavour, settings.keep, &run_dir)
                })?;
                println!(
                    "  node up in {:.1}s (context {}, kubeconfig {})",
                    started.elapsed().as_secs_f64(),
                    crate::node::cluster::CONTEXT,
                    node.state.kubeconfig.display()
                );
                self.node = Some(node);
            }
            Step::NodeVolumes { volumes } => {
                for volume in volumes {
                    std::fs::create_dir_all(&volume.dir)
                        .with_context(|| format!("creating {}", volume.dir.display()))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&volume.dir, std::fs::Permissions::from_mode(0o777))
                        .with_context(|| {
                        format!("opening {} to the pod's user", volume.dir.display())
                    })?;
                }
                let docs: Vec<Value> = volumes.iter().map(|v| v.pv.clone()).collect();
                self.applier().await?.apply(&docs).await?;
            }
            Step::ReleaseNode { keep } => {
                let Some(node) = self.node.take() else {
                    if self.settings.reuse && self.target.is_some() {
                        crate::node::refresh_kept_ingress_ca(&self.settings.work.join("ca.crt"))?;
                    }
                    return Ok(true);
                };
                if *keep {
                    let mut state = node.keep();
                    state.deployed = Some(self.settings.stack.clone());
                    crate::node::record_kept(&state, &self.settings.work.join("ca.crt"))?;
                } else {
                    println!("  stopping the node");
                    let started = Instant::now();
                    let left = tokio::task::block_in_place(|| node.stop());
                    if !left.is_empty() {
                        bail!("the node is stopped but left:\n  - {}", left.join("\n  - "));
                    }
                    println!(
                        "  node stopped in {:.1}s; nothing left on the host (leak check passed)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Step::DeleteCluster { name } => {
                super::interrupt::cluster_released();
                if !self.cluster_owned {
                    println!("  kind cluster {name} left alone: this run did not get to own it");
                    return Ok(true);
                }
                kind::delete_cluster(name).run()?;
            }
        }
        Ok(true)
    }

    fn cli(&mut self) -> Result<PathBuf> {
        if self.cli.is_none() {
            self.cli = Some(conformance::build_cli()?);
        }
        self.cli
            .clone()
            .ok_or_else(|| anyhow!("the CLI was not built"))
    }

    async fn wait(&mut self, w: &Wait) -> Result<()> {
        let client = self.client().await?;
        let what = w.describe();
        match w {
            Wait::Rollout {
                workload,
                namespace,
                name,
                min_replicas,
                timeout,
            } => {
                wait::rollout(
                    &client,
                    *workload,
                    namespace,
                    name,
                    *min_replicas,
                    &what,
                    *timeout,
                )
                .await
            }
            Wait::Ready {
                api_version,
                kind,
                namespace,
                name,
                timeout,
            } => {
                let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace}});
                let api = self.applier().await?.api_for(&probe).await?;
                wait::watch_until(api, name, &what, *timeout, |o: &DynamicObject| {
                    wait::condition_true(&serde_json::to_value(o).unwrap_or(Value::Null), "Ready")
                })
                .await
            }
            Wait::ApiServiceAvailable { name, timeout } => {
                let api: Api<APIService> = Api::all(client);
                wait::watch_until(api, name, &what, *timeout, wait::api_service_available).await
            }
            Wait::CrdEstablished { name, timeout } => {
                let api: Api<CustomResourceDefinition> = Api::all(client);
                wait::watch_until(api, name, &what, *timeout, wait::crd_established).await
            }
        }
    }

    /// Discovers the target through the product (`camunda_conformance::cluster::discover`),
    /// keeps its port-forwards open for the suites, writes target.toml (and the harness's own
    /// test CA as ca.crt).
    async fn connect(&mut self) -> Result<()> {
        let (settings, names) = (self.settings.clone(), self.names.clone());
        let client = self.client().await?;
        let ns = names.namespace.as_str();
        let request = Request {
            context: Some(settings.context()),
            namespace: ns.to_string(),
            ca_file: self.test_ca(&client).await?,
            credentials_secret: None,
            username: None,
            prometheus: format!(
                "{}/{}",
                addons::MONITORING_NAMESPACE,
                addons::PROMETHEUS_SERVICE
            ),
            forward: true,
            // The harness's own clusters may be disturbed; somebody's existing one may not.
            disruptive: settings.backend != Backend::Existing,
            backend: match settings.backend {
                Backend::Kind => TargetBackend::Kind,
                Backend::Node => TargetBackend::Node,
                Backend::Existing | Backend::Kwok => TargetBackend::Existing,
            },
            ingress_addresses: match settings.backend {
                Backend::Kind => Some((
                    SocketAddr::from(([127, 0, 0, 1], settings.https_port)),
                    SocketAddr::from(([127, 0, 0, 1], settings.http_port)),
                )),
                // The front door listens on the node's address, inside the run's namespace.
                Backend::Node => Some(crate::node::front_door_addresses()),
                Backend::Existing | Backend::Kwok => None,
            },
        };
        let mut found = discover::discover(&client, &request).await?;
        for note in &found.notes {
            println!("  {note}");
        }
        if matches!(settings.backend, Backend::Kind | Backend::Node)
            && found.target.prometheus.is_none()
        {
            bail!(
                "the kind stack's Prometheus ({}) was not found",
                request.prometheus
            );
        }
        // The CLI is another process: the password reaches it in its environment, never on disk.
        let username = found.target.credentials.username.clone();
        found.target.credentials = Credentials::from_env(username, PASSWORD_ENV);
        self.password = Some(found.password);

        self.prometheus_url = found.target.prometheus.as_ref().map(|p| p.url.clone());
        let replicas = found.target.replicas.len();
        let path = settings.work.join("target.toml");
        std::fs::write(&path, found.target.to_toml()?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "  {replicas} replicas; target description {}",
            path.display()
        );
        self.forwards = Some(found.forwards);
        self.target = Some((path, found.job, replicas));
        Ok(())
    }

    /// The CA the suites trust. kind and kwok: the test CA this harness made (cert-manager's CA
    /// issuer on kind; on kwok the stand-in's per-run CA, written beside the served certificate),
    /// copied to ca.crt. An existing cluster: the user's `--ca`, else the system's roots — never
    /// the Ingress's own TLS Secret (a self-signed certificate verifies against itself).
    async fn test_ca(&self, client: &kube::Client) -> Result<Option<PathBuf>> {
        let (settings, names) = (self.settings.clone(), self.names.clone());
        let (ns, name) = match settings.backend {
            Backend::Existing => return Ok(settings.ca.clone()),
            Backend::Kind => (
                addons::CERT_MANAGER_NAMESPACE.to_string(),
                addons::CA_SECRET.to_string(),
            ),
            Backend::Kwok | Backend::Node => {
                let ns = names.namespace.clone();
                let (kind, route) = (names.route.0, names.route.1.as_str());
                let secret = if kind == "Gateway" {
                    let resource = kube::api::ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk(
                            "gateway.networking.k8s.io",
                            "v1",
                            "Gateway",
                        ),
                        "gateways",
                    );
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), &ns, &resource);
                    let gateway = serde_json::to_value(
                        api.get(route)
                            .await
                            .with_context(|| format!("reading Gateway {ns}/{route}"))?,
                    )?;
                    gateway["spec"]["listeners"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find_map(|l| l["tls"]["certificateRefs"][0]["name"].as_str())
                        .map(str::to_string)
                } else {
                    let ingress: Ingress = Api::namespaced(client.clone(), &ns)
                        .get(route)
                        .await
                        .with_context(|| format!("reading Ingress {ns}/{route}"))?;
                    ingress
                        .spec
                        .and_then(|s| s.tls)
                        .and_then(|tls| tls.into_iter().find_map(|t| t.secret_name))
                };
                let secret = secret.ok_or_else(|| {
                    anyhow!("{kind} {ns}/{route}: names no TLS Secret (spec.tls[].secretName, listeners[].tls.certificateRefs[])")
                })?;
                (ns, secret)
            }
        };
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get(&name)
            .await
            .with_context(|| format!("reading the test CA Secret {ns}/{name}"))?;
        let ca = secret_value(&secret, "ca.crt")
            .ok_or_else(|| anyhow!("Secret {ns}/{name}: no data.ca.crt to trust"))?;
        let ca_file = settings.work.join("ca.crt");
        std::fs::write(&ca_file, ca).with_context(|| format!("writing {}", ca_file.display()))?;
        Ok(Some(ca_file))
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret.data.as_ref()?.get(key).map(|b| b.0.clone())
}

/// Creates a Secret the workloads need when it is not there; an existing one is kept (a reused
/// cluster keeps its passwords).
async fn ensure_secret(client: &kube::Client, need: &SecretUse) -> Result<()> {
    let namespace = need.namespace.as_str();
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(existing) = api
        .get_opt(&need.name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{}", need.name))?
    {
        let missing: Vec<&String> = need
            .keys
            .iter()
            .filter(|k| secret_value(&existing, k).is_none())
            .collect();
        if !missing.is_empty() {
            bail!("Secret {namespace}/{} exists but lacks {missing:?}: delete it to have it generated", need.name);
        }
        println!("  Secret {namespace}/{} kept", need.name);
        return Ok(());
    }
    let mut data = std::collections::BTreeMap::new();
    for key in &need.keys {
        data.insert(key.clone(), ByteString(generated_value(key)?.into_bytes()));
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(need.name.clone()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let mut doc = serde_json::to_value(&secret)?;
    doc["apiVersion"] = json!("v1");
    doc["kind"] = json!("Secret");
    api.patch(
        &need.name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Apply(&doc),
    )
    .await
    .with_context(|| format!("creating Secret {namespace}/{}", need.name))?;
    println!(
        "  Secret {namespace}/{} created with generated values for {:?}",
        need.name, need.keys
    );
    Ok(())
}

/// A user-name key gets the suites' user name; anything else a fresh random password.
fn generated_value(key: &str) -> Result<String> {
    if key.to_ascii_lowercase().contains("user") {
        return Ok("conformance".into());
    }
    let mut bytes = [0u8; 18];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `kind load docker-image`, falling back to a single-platform `docker save` + `kind load
/// image-archive` when Docker's containerd image store makes the first fail with "content
/// digest ... not found" (kind saves every platform the index names; a single-platform archive
/// holds only content that exists).
fn load_image(cluster: &str, image: &str, archive: &std::path::Path) -> Result<()> {
    let direct = kind::load_docker_image(cluster, image);
    let out = direct.capture()?;
    if out.success {
        return Ok(());
    }
    if !kind::is_content_digest_failure(&out.stderr) {
        bail!("`{direct}` failed: {}", out.stderr.trim());
    }
    let platform = super::cli::docker::platform().output()?.trim().to_string();
    println!("  `{direct}` hit the containerd image store's missing content digest; loading a {platform}-only archive instead");
    super::cli::docker::save(image, &platform, archive).run()?;
    let result = kind::load_image_archive(cluster, archive).run();
    let _ = std::fs::remove_file(archive);
    result
}
