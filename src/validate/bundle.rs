//! One indexed view of every object of the checked inputs, so that each rule is a small
//! function over the whole stack: workloads and their pod templates, which Services select which
//! pods, which Ingress routes to which Service port, which HPA scales which workload.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, PodTemplateSpec, Service, ServicePort,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rustc_hash::FxHashMap as HashMap;

use serde_json::Value;

use super::input::RawObject;
use super::schema::{crds, Typed};
use super::{Finding, Severity};

/// One checked object. It owns all the rules need (its typed value and the few untyped fields
/// in [`Extract`]) and no raw document: holding every parsed `serde_json::Value` of a large
/// bundle until the rules ran cost twice the memory of the rest.
pub struct Entry {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub typed: Typed,
    /// Findings of the `schema` rule, computed while typing the object.
    pub schema: Vec<Finding>,
    pub extract: Extract,
}

/// What rules read from the document itself rather than from [`Typed`]: the metadata of every
/// kind (typed values exist only for the kinds rules reason about, and only when they type), and
/// a few fields of kinds kept untyped.
#[derive(Default)]
pub struct Extract {
    /// `metadata.labels` with string values, of an entry not typed (a typed entry's own are
    /// read in place: copying them cost memory and time on large bundles).
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` with string values, of an entry not typed.
    pub annotations: BTreeMap<String, String>,
    /// ServiceAccount: `automountServiceAccountToken`.
    pub automount_token: Option<bool>,
    /// RoleBinding and ClusterRoleBinding: `subjects`.
    pub subjects: Vec<Subject>,
    /// ExternalSecret: `spec.target.name`.
    pub target_name: Option<String>,
}

/// A subject of a (Cluster)RoleBinding as written (fields that are not strings read as absent).
pub struct Subject {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl Extract {
    fn of(raw: &RawObject, typed: &Typed) -> Self {
        let value = &raw.value;
        let strings = |pointer: &str| -> BTreeMap<String, String> {
            value
                .pointer(pointer)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        };
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let mut extract = Extract::default();
        if typed.metadata().is_none() {
            extract.labels = strings("/metadata/labels");
            extract.annotations = strings("/metadata/annotations");
        }
        match raw.kind.as_str() {
            "ServiceAccount" => {
                extract.automount_token = value
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool);
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                extract.subjects = value
                    .get("subjects")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|s| Subject {
                        kind: text(s, "kind"),
                        name: text(s, "name"),
                        namespace: text(s, "namespace"),
                    })
                    .collect();
            }
            "ExternalSecret" => {
                extract.target_name = value.pointer("/spec/target").and_then(|t| text(t, "name"));
            }
            _ => {}
        }
        extract
    }
}

impl Entry {
    /// Schema-checks one object and keeps what the rules need of it.
    pub fn checked(raw: &RawObject) -> Self {
        let (typed, schema) = super::schema::check(raw);
        let extract = Extract::of(raw, &typed);
        Entry {
            kind: raw.kind.clone(),
            name: raw.name.clone(),
            namespace: raw.namespace.clone(),
            file: raw.file.clone(),
            line: raw.line,
            typed,
            schema,
            extract,
        }
    }

    pub fn finding(&self, rule: &'static str, severity: Severity, message: String) -> Finding {
        Finding {
            rule,
            severity,
            resource: self.resource(),
            namespace: self.namespace.clone(),
            file: self.file.clone(),
            line: self.line,
            message,
            input: None,
        }
    }

    /// `Kind/name`.
    pub fn resource(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Same namespace, where an object without one (plain manifests applied with `-n`) is
    /// taken to share the other's.
    pub fn same_namespace(&self, other: &Entry) -> bool {
        match (&self.namespace, &other.namespace) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        let annotations = match self.typed.metadata() {
            Some(metadata) => metadata.annotations.as_ref()?,
            None => &self.extract.annotations,
        };
        annotations.get(key).map(String::as_str)
    }

    /// Every `metadata.annotations` entry (string values only).
    pub fn annotations(&self) -> impl Iterator<Item = (&String, &String)> {
        match self.typed.metadata() {
            Some(metadata) => metadata.annotations.as_ref(),
            None => Some(&self.extract.annotations),
        }
        .into_iter()
        .flatten()
    }

    /// `metadata.labels` (string values only).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match self.typed.metadata() {
            Some(metadata) => metadata.labels.as_ref().unwrap_or(&NONE),
            None => &self.extract.labels,
        }
    }
}

/// The pod template annotation that declares a workload as Camunda when its image name does not
/// tell (a team's own image): `"true"` for its first container, a container's name for that
/// one, `"false"` for none.
pub const ENGINE_ANNOTATION: &str = "camunda-conformance.io/engine";

/// A Deployment, StatefulSet or DaemonSet with its pod template.
#[derive(Clone, Copy)]
pub struct Workload<'a> {
    pub entry: &'a Entry,
    pub template: &'a PodTemplateSpec,
    /// `spec.replicas` as written (`None`: unset, which means 1 without an HPA).
    pub replicas: Option<i32>,
}

impl<'a> Workload<'a> {
    pub fn labels(&self) -> Option<&'a BTreeMap<String, String>> {
        self.template.metadata.as_ref()?.labels.as_ref()
    }

    pub fn containers(&self) -> impl Iterator<Item = &'a Container> {
        let spec = self.template.spec.as_ref();
        spec.into_iter().flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
    }

    pub fn main_containers(&self) -> impl Iterator<Item = &'a Container> {
        self.template
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| s.containers.iter())
    }

    /// The container running Camunda, if this workload runs it: the one [`ENGINE_ANNOTATION`]
    /// declares, else the first whose image name tells.
    pub fn camunda_container(&self) -> Option<&'a Container> {
        match self.pod_annotation(ENGINE_ANNOTATION) {
            Some("true") => self.main_containers().next(),
            Some("false") => None,
            Some(name) => self.main_containers().find(|c| c.name == name),
            None => self
                .main_containers()
                .find(|c| c.image.as_deref().is_some_and(is_camunda_image)),
        }
    }

    pub fn pod_annotation(&self, key: &str) -> Option<&'a str> {
        self.template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// The container port a Service `targetPort` (or port number) reaches in this pod.
    pub fn container_port(&self, target: &IntOrString) -> Option<&'a ContainerPort> {
        self.main_containers()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| match target {
                IntOrString::Int(n) => p.container_port == *n,
                IntOrString::String(name) => p.name.as_deref() == Some(name),
            })
    }
}

/// The Camunda 7 line an official image belongs to: Camunda 7 CE or one of its maintained forks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fork {
    Camunda,
    /// `org.operaton.bpm.*`: Run properties under `operaton.bpm.run`, installed in `/operaton`.
    Operaton,
    /// `org.cibseven.bpm.*`: Run keeps the `camunda.bpm.run` properties.
    CibSeven,
}

impl Fork {
    pub fn name(self) -> &'static str {
        match self {
            Fork::Camunda => "Camunda 7",
            Fork::Operaton => "Operaton",
            Fork::CibSeven => "CIB seven",
        }
    }

    /// Where the official images install the distribution.
    pub fn home(self) -> &'static str {
        match self {
            Fork::Operaton => "/operaton",
            Fork::Camunda | Fork::CibSeven => "/camunda",
        }
    }

    /// The Spring property that switches basic auth on in Run.
    pub fn run_auth_property(self) -> &'static str {
        match self {
            Fork::Operaton => "operaton.bpm.run.auth.enabled",
            Fork::Camunda | Fork::CibSeven => "camunda.bpm.run.auth.enabled",
        }
    }
}

/// How the Camunda image switches REST basic auth on: ours (Spring Boot, our env contract: on
/// unless switched off); an official Tomcat distribution (no env switch: the
/// `ProcessEngineAuthenticationFilter` in engine-rest's web.xml, commented out as shipped);
/// an official Run distribution (off unless its `*.bpm.run.auth.enabled` property is true).
/// `Unknown`: an image under another name (typically a team's own, built `FROM` one of these),
/// judged from the evidence around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Ours,
    Tomcat(Fork),
    Run(Fork),
    Unknown,
}

impl Flavour {
    pub fn is_run(self) -> bool {
        matches!(self, Flavour::Run(_))
    }
}

/// The official images of Camunda 7 and its forks, by repository: (repository, fork, whether
/// every tag is a Run distribution).
const OFFICIAL_IMAGES: [(&str, Fork, Option<bool>); 6] = [
    ("camunda/camunda-bpm-platform", Fork::Camunda, None),
    ("operaton/operaton", Fork::Operaton, Some(true)),
    ("operaton/tomcat", Fork::Operaton, Some(false)),
    ("operaton/wildfly", Fork::Operaton, Some(false)),
    ("cibseven/cibseven", Fork::CibSeven, None),
    ("camunda-conformance/camunda", Fork::Camunda, Some(false)),
];

/// Judged by the image name without its registry/organisation path: `camunda-conformance/redis`
/// is not Camunda, `registry.example.com/platform/camunda` is; the forks' official images count
/// whatever their last segment (`operaton/tomcat`).
pub fn is_camunda_image(image: &str) -> bool {
    let repository = image_repository(image);
    let name = repository
        .rsplit('/')
        .next()
        .unwrap_or(repository)
        .to_ascii_lowercase();
    official(repository).is_some()
        || ["camunda", "operaton", "cibseven"]
            .iter()
            .any(|known| name.contains(known))
}

fn official(repository: &str) -> Option<&'static (&'static str, Fork, Option<bool>)> {
    let repository = repository.strip_prefix("docker.io/").unwrap_or(repository);
    OFFICIAL_IMAGES
        .iter()
        .find(|(name, ..)| *name == repository)
}

/// The flavour an image name tells by itself (`Unknown` for any other name).
pub fn flavour(image: &str) -> Flavour {
    let repository = image_repository(image);
    let tag = image_tag(image).unwrap_or("");
    match official(repository) {
        Some(("camunda-conformance/camunda", ..)) => Flavour::Ours,
        Some((_, fork, Some(true))) => Flavour::Run(*fork),
        Some((_, fork, Some(false))) => Flavour::Tomcat(*fork),
        Some((_, fork, None)) if tag.starts_with("run") => Flavour::Run(*fork),
        Some((_, fork, None)) => Flavour::Tomcat(*fork),
        None => Flavour::Unknown,
    }
}

/// The image without tag or digest.
pub fn image_repository(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].find(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    }
}

/// The tag, if the image names one (a registry port such as `host:5000/x` is not a tag).
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let name = &without_digest[last_slash..];
    name.find(':').map(|colon| &name[colon + 1..])
}

/// Lookups by name and label are indexed once, so rules stay linear in the bundle size (the
/// benchmark checks 4,000 objects).
pub struct Bundle {
    pub entries: Vec<Entry>,
    /// Objects given more than once (same kind, namespace and name): only the last one is kept,
    /// as `kubectl apply` would leave it; findings of the `duplicate` rule.
    pub duplicates: Vec<Finding>,
    /// kind → name → entries.
    by_name: Index,
    /// Secret name → entries that provide it (Secret, Certificate, ExternalSecret, SealedSecret).
    secret_providers: HashMap<String, Vec<usize>>,
    /// scaleTargetRef kind → name → HPA entries.
    hpa_by_target: Index,
    /// Pod template labels → workload entries.
    workloads_by_label: LabelIndex,
    /// First selector pair key → value → Service entries.
    services_by_selector: Index,
    /// Service `metadata.labels` → Service entries (for monitors' selectors).
    services_by_label: LabelIndex,
    /// The entries of each kind rules go through, in bundle order.
    kinds: Kinds,
    /// Backend Service name → the Ingresses and HTTPRoutes naming it.
    routes_by_service: HashMap<String, Vec<usize>>,
    /// `validate --front-door`: the front door rule `front-door` judges the bundle for.
    pub front_door: Option<crate::validate::rules::FrontDoor>,
}

type Index = HashMap<String, HashMap<String, Vec<usize>>>;

/// The positions of the entries of each kind the rules go through, so that a rule asking for
/// one kind inside its loop over another walks only that kind, never the whole bundle again
/// (which made `validate` quadratic in the number of objects).
#[derive(Default)]
struct Kinds {
    workloads: Vec<usize>,
    services: Vec<usize>,
    ingresses: Vec<usize>,
    hpas: Vec<usize>,
    service_monitors: Vec<usize>,
    pod_monitors: Vec<usize>,
    pdbs: Vec<usize>,
    network_policies: Vec<usize>,
    http_routes: Vec<usize>,
    gateways: Vec<usize>,
}

/// Entries by their labels: key → value → positions, and key → positions.
#[derive(Default)]
struct LabelIndex {
    pairs: Index,
    keys: HashMap<String, Vec<usize>>,
}

impl LabelIndex {
    fn add<'a>(&mut self, labels: impl IntoIterator<Item = (&'a String, &'a String)>, at: usize) {
        for (key, value) in labels {
            insert(&mut self.pairs, key, value, at);
            self.keys.entry(key.clone()).or_default().push(at);
        }
    }

    /// Candidates for a label selector: those with its first `matchLabels` pair, else with one
    /// of the values of its first `In` expression or the key of its first `Exists` expression,
    /// else all of `every`. In bundle order; the caller still applies the whole selector.
    fn candidates(&self, selector: &LabelSelector, every: &[usize]) -> Vec<usize> {
        if let Some((key, value)) = selector.match_labels.iter().flatten().next() {
            return lookup(&self.pairs, key, value).to_vec();
        }
        for expression in selector.match_expressions.iter().flatten() {
            match expression.operator.as_str() {
                "In" => {
                    let mut found: Vec<usize> = expression
                        .values
                        .iter()
                        .flatten()
                        .flat_map(|value| {
                            lookup(&self.pairs, &expression.key, value).iter().copied()
                        })
                        .collect();
                    found.sort_unstable();
                    found.dedup();
                    return found;
                }
                "Exists" => return self.keys.get(&expression.key).cloned().unwrap_or_default(),
                _ => {}
            }
        }
        every.to_vec()
    }
}

fn insert(index: &mut Index, outer: &str, inner: &str, position: usize) {
    index
        .entry(outer.to_string())
        .or_default()
        .entry(inner.to_string())
        .or_default()
        .push(position);
}

fn lookup<'a>(index: &'a Index, outer: &str, inner: &str) -> &'a [usize] {
    index
        .get(outer)
        .and_then(|m| m.get(inner))
        .map_or(&[], Vec::as_slice)
}

/// `pub fn $name(&self)`: the entries of one kind with their typed values, in bundle order,
/// from the positions [`Kinds`] keeps of it.
macro_rules! kind_iterator {
    ($name:ident, $positions:ident, $variant:ident, $ty:ty) => {
        pub fn $name(&self) -> impl Iterator<Item = (&Entry, &$ty)> {
            self.typed_at(&self.kinds.$positions, |t| match t {
                Typed::$variant(v) => Some(&**v),
                _ => None,
            })
        }
    };
}

impl Bundle {
    pub fn new(entries: Vec<Entry>) -> Self {
        let (entries, duplicates) = without_duplicates(entries);
        let mut bundle = Bundle {
            entries,
            duplicates,
            by_name: Index::default(),
            secret_providers: HashMap::default(),
            hpa_by_target: Index::default(),
            workloads_by_label: LabelIndex::default(),
            services_by_selector: Index::default(),
            services_by_label: LabelIndex::default(),
            kinds: Kinds::default(),
            routes_by_service: HashMap::default(),
            front_door: None,
        };
        for (position, entry) in bundle.entries.iter().enumerate() {
            insert(&mut bundle.by_name, &entry.kind, &entry.name, position);
            if let Some(secret) = provided_secret(entry) {
                bundle
                    .secret_providers
                    .entry(secret.to_string())
                    .or_default()
                    .push(position);
            }
            let kinds = &mut bundle.kinds;
            match &entry.typed {
                Typed::Hpa(hpa) => {
                    kinds.hpas.push(position);
                    if let Some(spec) = &hpa.spec {
                        let target = &spec.scale_target_ref;
                        insert(
                            &mut bundle.hpa_by_target,
                            &target.kind,
                            &target.name,
                            position,
                        );
                    }
                }
                Typed::Ingress(_) | Typed::HttpRoute(_) => {
                    if matches!(entry.typed, Typed::Ingress(_)) {
                        kinds.ingresses.push(position);
                    } else {
                        kinds.http_routes.push(position);
                    }
                    for service in backend_services(entry) {
                        let routes = bundle
                            .routes_by_service
                            .entry(service.to_string())
                            .or_default();
                        if routes.last() != Some(&position) {
                            routes.push(position);
                        }
                    }
                }
                Typed::Service(service) => {
                    kinds.services.push(position);
                    let first = service
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .and_then(|s| s.iter().next());
                    if let Some((key, value)) = first {
                        insert(&mut bundle.services_by_selector, key, value, position);
                    }
                    bundle.services_by_label.add(entry.labels(), position);
                }
                Typed::ServiceMonitor(_) => kinds.service_monitors.push(position),
                Typed::PodMonitor(_) => kinds.pod_monitors.push(position),
                Typed::Pdb(_) => kinds.pdbs.push(position),
                Typed::NetworkPolicy(_) => kinds.network_policies.push(position),
                Typed::Gateway(_) => kinds.gateways.push(position),
                _ => {}
            }
            let Some(workload) = workload_of(entry) else {
                continue;
            };
            bundle.kinds.workloads.push(position);
            bundle
                .workloads_by_label
                .add(workload.labels().into_iter().flatten(), position);
        }
        bundle
    }

    /// Entries of a kind and name near (in the namespace of) `near`.
    pub fn named<'a>(&'a self, kind: &str, name: &str, near: &Entry) -> Vec<&'a Entry> {
        lookup(&self.by_name, kind, name)
            .iter()
            .map(|i| &self.entries[*i])
            .filter(|e| e.same_namespace(near))
            .collect()
    }

    /// The Deployment/StatefulSet/DaemonSet of that kind and name near `near`.
    pub fn workload(&self, kind: &str, name: &str, near: &Entry) -> Option<Workload<'_>> {
        self.named(kind, name, near)
            .into_iter()
            .find_map(workload_of)
    }

    fn workload_at(&self, position: usize) -> Option<Workload<'_>> {
        workload_of(&self.entries[position])
    }

    pub fn workloads(&self) -> impl Iterator<Item = Workload<'_>> {
        self.kinds
            .workloads
            .iter()
            .filter_map(|i| self.workload_at(*i))
    }

    pub fn camunda_workloads(&self) -> impl Iterator<Item = (Workload<'_>, &Container)> {
        self.workloads()
            .filter_map(|w| w.camunda_container().map(|c| (w, c)))
    }

    /// The entries at `positions` typed as `T`.
    fn typed_at<'a, T: ?Sized + 'a>(
        &'a self,
        positions: &'a [usize],
        of: fn(&'a Typed) -> Option<&'a T>,
    ) -> impl Iterator<Item = (&'a Entry, &'a T)> + 'a {
        positions.iter().filter_map(move |i| {
            let entry = &self.entries[*i];
            of(&entry.typed).map(|t| (entry, t))
        })
    }

    kind_iterator!(services, services, Service, Service);
    kind_iterator!(ingresses, ingresses, Ingress, Ingress);
    kind_iterator!(hpas, hpas, Hpa, HorizontalPodAutoscaler);
    kind_iterator!(
        service_monitors,
        service_monitors,
        ServiceMonitor,
        crds::ServiceMonitor
    );
    kind_iterator!(pod_monitors, pod_monitors, PodMonitor, crds::PodMonitor);
    kind_iterator!(pdbs, pdbs, Pdb, PodDisruptionBudget);
    kind_iterator!(
        network_policies,
        network_policies,
        NetworkPolicy,
        NetworkPolicy
    );
    kind_iterator!(http_routes, http_routes, HttpRoute, crds::HttpRoute);
    kind_iterator!(gateways, gateways, Gateway, crds::Gateway);

    /// The workloads whose pod labels `selector` matches (any namespace), in bundle order,
    /// looked up through the label index rather than by trying every workload.
    pub fn workloads_selected_by<'a>(
        &'a self,
        selector: &'a LabelSelector,
    ) -> impl Iterator<Item = Workload<'a>> + 'a {
        self.workloads_by_label
            .candidates(selector, &self.kinds.workloads)
            .into_iter()
            .filter_map(|i| self.workload_at(i))
            .filter(move |w| w.labels().is_some_and(|l| selector_matches(selector, l)))
    }

    /// The Services whose own labels `selector` matches (any namespace), in bundle order.
    pub fn services_selected_by<'a>(
        &'a self,
        selector: &'a LabelSelector,
    ) -> impl Iterator<Item = (&'a Entry, &'a Service)> + 'a {
        let found = self
            .services_by_label
            .candidates(selector, &self.kinds.services);
        found.into_iter().filter_map(move |i| {
            let entry = &self.entries[i];
            match &entry.typed {
                Typed::Service(s) if selector_matches(selector, entry.labels()) => {
                    Some((entry, &**s))
                }
                _ => None,
            }
        })
    }

    pub fn config_map(&self, near: &Entry, name: &str) -> Option<&ConfigMap> {
        self.named("ConfigMap", name, near)
            .into_iter()
            .find_map(|e| match &e.typed {
                Typed::ConfigMap(c) => Some(&**c),
                _ => None,
            })
    }

    /// Whether the bundle provides Secret `name` near `near`: a Secret object, or a Secret that a
    /// cert-manager Certificate, an ExternalSecret or a SealedSecret creates.
    pub fn provides_secret(&self, near: &Entry, name: &str) -> bool {
        self.secret_providers
            .get(name)
            .into_iter()
            .flatten()
            .any(|i| self.entries[*i].same_namespace(near))
    }

    /// The key names a Secret object of the bundle holds (values are never read).
    pub fn secret_keys(&self, near: &Entry, name: &str) -> Option<Vec<&str>> {
        self.named("Secret", name, near)
            .into_iter()
            .find_map(|e| match &e.typed {
                Typed::Secret(s) => Some(
                    s.data
                        .iter()
                        .flat_map(|d| d.keys())
                        .chain(s.string_data.iter().flat_map(|d| d.keys()))
                        .map(String::as_str)
                        .collect(),
                ),
                _ => None,
            })
    }

    /// The HPA whose `scaleTargetRef` names this workload.
    pub fn hpa_for(&self, workload: &Workload) -> Option<(&Entry, &HorizontalPodAutoscaler)> {
        lookup(
            &self.hpa_by_target,
            &workload.entry.kind,
            workload.entry.name(),
        )
        .iter()
        .map(|i| &self.entries[*i])
        .filter(|e| e.same_namespace(workload.entry))
        .find_map(|e| match &e.typed {
            Typed::Hpa(h) => Some((e, &**h)),
            _ => None,
        })
    }

    /// The most pods the workload can run: the HPA's maxReplicas, else its replicas (default 1).
    pub fn max_pods(&self, workload: &Workload) -> i32 {
        match self.hpa_for(workload).and_then(|(_, h)| h.spec.as_ref()) {
            Some(spec) => spec.max_replicas.max(workload.replicas.unwrap_or(1)),
            None => workload.replicas.unwrap_or(1),
        }
    }

    /// The fewest pods it runs in steady state: the HPA's minReplicas (default 1), else replicas.
    pub fn min_pods(&self, workload: &Workload) -> i32 {
        match self.hpa_for(workload).and_then(|(_, h)| h.spec.as_ref()) {
            Some(spec) => spec.min_replicas.unwrap_or(1),
            None => workload.replicas.unwrap_or(1),
        }
    }

    /// Services whose selector matches the workload's pods.
    pub fn services_for<'a>(&'a self, workload: &Workload) -> Vec<(&'a Entry, &'a Service)> {
        let Some(labels) = workload.labels() else {
            return Vec::new();
        };
        let mut candidates: Vec<usize> = labels
            .iter()
            .flat_map(|(k, v)| lookup(&self.services_by_selector, k, v).iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates
            .into_iter()
            .map(|i| &self.entries[i])
            .filter_map(|entry| match &entry.typed {
                Typed::Service(service)
                    if entry.same_namespace(workload.entry) && service_selects(service, labels) =>
                {
                    Some((entry, &**service))
                }
                _ => None,
            })
            .collect()
    }

    /// Workloads whose pods a Service selects.
    pub fn workloads_for<'a>(
        &'a self,
        service_entry: &Entry,
        service: &Service,
    ) -> Vec<Workload<'a>> {
        let Some((key, value)) = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.iter().next())
        else {
            return Vec::new();
        };
        lookup(&self.workloads_by_label.pairs, key, value)
            .iter()
            .filter_map(|i| self.workload_at(*i))
            .filter(|w| {
                w.entry.same_namespace(service_entry)
                    && w.labels().is_some_and(|l| service_selects(service, l))
            })
            .collect()
    }

    pub fn service_named(&self, near: &Entry, name: &str) -> Option<(&Entry, &Service)> {
        self.named("Service", name, near)
            .into_iter()
            .find_map(|e| match &e.typed {
                Typed::Service(s) => Some((e, &**s)),
                _ => None,
            })
    }

    /// The Ingresses and HTTPRoutes that name Service `name` as a backend.
    pub fn routes_to(&self, name: &str) -> impl Iterator<Item = &Entry> {
        self.routes_by_service
            .get(name)
            .into_iter()
            .flatten()
            .map(|i| &self.entries[*i])
    }

    /// Every Ingress path's backend Service and port, with the Ingress it belongs to.
    pub fn ingress_backends(&self) -> Vec<IngressBackend<'_>> {
        self.ingresses()
            .flat_map(|(entry, ingress)| ingress_backends(entry, ingress))
            .collect()
    }
}

/// Keeps the last of each kind/namespace/name (a later document replaces an earlier one on
/// apply) and says which were dropped, so no rule counts one object twice.
fn without_duplicates(entries: Vec<Entry>) -> (Vec<Entry>, Vec<Finding>) {
    fn key(entry: &Entry) -> (&str, Option<&str>, &str) {
        (&entry.kind, entry.namespace.as_deref(), &entry.name)
    }
    let last: HashMap<_, usize> = entries
        .iter()
        .enumerate()
        .map(|(position, entry)| (key(entry), position))
        .collect();
    if last.len() == entries.len() {
        return (entries, Vec::new());
    }
    let keep: Vec<bool> = entries
        .iter()
        .enumerate()
        .map(|(position, entry)| last[&key(entry)] == position)
        .collect();
    let duplicates = entries
        .iter()
        .zip(&keep)
        .filter(|(_, kept)| !**kept)
        .map(|(entry, _)| {
            let later = &entries[last[&key(entry)]];
            let elsewhere = match (&entry.file, &later.file) {
                (Some(here), Some(there)) if here != there => format!(" (again in {there})"),
                _ => String::new(),
            };
            entry.finding(
                crate::validate::rules::DUPLICATE,
                Severity::Error,
                format!("is defined more than once in the bundle{elsewhere}: the later definition replaces this one on apply and the checks use only the later one; remove one"),
            )
        })
        .collect();
    let kept = entries
        .into_iter()
        .zip(keep)
        .filter_map(|(entry, keep)| keep.then_some(entry))
        .collect();
    (kept, duplicates)
}

fn workload_of<'a>(entry: &'a Entry) -> Option<Workload<'a>> {
    let (template, replicas) = match &entry.typed {
        Typed::Deployment(d) => {
            let spec = d.spec.as_ref()?;
            (&spec.template, spec.replicas)
        }
        Typed::StatefulSet(s) => {
            let spec = s.spec.as_ref()?;
            (&spec.template, spec.replicas)
        }
        // One pod per node: no replica count of its own.
        Typed::DaemonSet(d) => (&d.spec.as_ref()?.template, None),
        _ => return None,
    };
    Some(Workload {
        entry,
        template,
        replicas,
    })
}

/// The backend Services and ports of one Ingress (default backend and every path).
fn ingress_backends<'a>(entry: &'a Entry, ingress: &'a Ingress) -> Vec<IngressBackend<'a>> {
    let Some(spec) = &ingress.spec else {
        return Vec::new();
    };
    let default = spec
        .default_backend
        .iter()
        .filter_map(|b| b.service.as_ref());
    let paths = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter())
        .filter_map(|p| p.backend.service.as_ref());
    default
        .chain(paths)
        .map(|backend| IngressBackend {
            entry,
            service: &backend.name,
            port_name: backend.port.as_ref().and_then(|p| p.name.as_deref()),
            port_number: backend.port.as_ref().and_then(|p| p.number),
        })
        .collect()
}

/// The Service names an Ingress or HTTPRoute sends traffic to.
fn backend_services(entry: &Entry) -> Vec<&str> {
    match &entry.typed {
        Typed::Ingress(ingress) => ingress_backends(entry, ingress)
            .into_iter()
            .map(|b| b.service)
            .collect(),
        Typed::HttpRoute(route) => route
            .spec
            .rules
            .iter()
            .flatten()
            .flat_map(|r| r.backend_refs.iter().flatten())
            .filter(|b| b.kind.as_deref().is_none_or(|k| k == "Service"))
            .map(|b| b.name.as_str())
            .collect(),
        _ => Vec::new(),
    }
}

/// The Secret an entry creates, if any.
fn provided_secret(entry: &Entry) -> Option<&str> {
    match &entry.typed {
        Typed::Secret(_) => Some(entry.name()),
        Typed::Certificate(c) => Some(&c.spec.secret_name),
        _ => match entry.kind.as_str() {
            "ExternalSecret" => Some(entry.extract.target_name.as_deref().unwrap_or(entry.name())),
            "SealedSecret" => Some(entry.name()),
            _ => None,
        },
    }
}

/// The Secret an object creates, when it is one: itself, or what its operator creates — a
/// cert-manager Certificate (`spec.secretName`), an ExternalSecret (`spec.target.name`, else its
/// own name), a SealedSecret (its own name). Read from a rendered document, for `deploy`;
/// `provided_secret` is the same mapping over a checked entry.
pub fn provided_secret_of<'a>(kind: &str, name: &'a str, value: &'a Value) -> Option<&'a str> {
    match kind {
        "Secret" | "SealedSecret" => Some(name),
        "Certificate" => value.pointer("/spec/secretName").and_then(Value::as_str),
        "ExternalSecret" => Some(
            value
                .pointer("/spec/target/name")
                .and_then(Value::as_str)
                .unwrap_or(name),
        ),
        _ => None,
    }
}

pub struct IngressBackend<'a> {
    pub entry: &'a Entry,
    pub service: &'a str,
    pub port_name: Option<&'a str>,
    pub port_number: Option<i32>,
}

impl IngressBackend<'_> {
    pub fn service_port<'s>(&self, service: &'s Service) -> Option<&'s ServicePort> {
        service_ports(service).find(|p| match (self.port_name, self.port_number) {
            (Some(name), _) => p.name.as_deref() == Some(name),
            (None, Some(number)) => p.port == number,
            (None, None) => false,
        })
    }
}

pub fn service_ports(service: &Service) -> impl Iterator<Item = &ServicePort> {
    service.spec.iter().flat_map(|s| s.ports.iter().flatten())
}

/// The container-side target of a Service port (`targetPort`, defaulting to `port`).
pub fn target_of(port: &ServicePort) -> IntOrString {
    port.target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port))
}

/// A Service without selector selects nothing (its endpoints are managed by hand).
pub fn service_selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) if !selector.is_empty() => {
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
        _ => false,
    }
}

/// Label selector semantics of `matchLabels` and `matchExpressions`; an empty selector matches
/// everything.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Renders a selector for messages.
pub fn describe_selector(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(selector.match_expressions.iter().flatten().map(|e| {
        format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values.as_deref().unwrap_or_default().join(",")
        )
    }));
    if parts.is_empty() {
        "{}".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_parts() {
        assert_eq!(image_tag("redis:7.4.1"), Some("7.4.1"));
        assert_eq!(image_tag("registry:5000/team/app"), None);
        assert_eq!(
            image_tag("registry:5000/team/app:1.0@sha256:ab"),
            Some("1.0")
        );
        assert_eq!(
            image_repository("registry:5000/team/app:1.0"),
            "registry:5000/team/app"
        );
        assert_eq!(
            flavour("camunda/camunda-bpm-platform:run-7.24.0"),
            Flavour::Run(Fork::Camunda)
        );
        assert_eq!(
            flavour("camunda/camunda-bpm-platform:7.24.0"),
            Flavour::Tomcat(Fork::Camunda)
        );
        assert_eq!(flavour("camunda-conformance/camunda:7.24.0"), Flavour::Ours);
        assert_eq!(
            flavour("docker.io/operaton/operaton:1.0.0"),
            Flavour::Run(Fork::Operaton)
        );
        assert_eq!(
            flavour("operaton/tomcat:1.0.0"),
            Flavour::Tomcat(Fork::Operaton)
        );
        assert_eq!(
            flavour("cibseven/cibseven:run-2.0.0"),
            Flavour::Run(Fork::CibSeven)
        );
        assert_eq!(
            flavour("cibseven/cibseven:tomcat-2.0.0"),
            Flavour::Tomcat(Fork::CibSeven)
        );
        assert_eq!(
            flavour("registry.example.com/team/camunda:7.24.0"),
            Flavour::Unknown
        );
        assert!(is_camunda_image("operaton/tomcat:1.0.0"));
        assert!(!is_camunda_image("postgres:17.2"));
        assert!(!is_camunda_image("camunda-conformance/twemproxy:0.5.0"));
        assert!(is_camunda_image(
            "registry.example.com/platform/camunda:7.24.0"
        ));
    }
}
