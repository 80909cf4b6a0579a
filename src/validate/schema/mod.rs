//! Rule `schema`: every object deserialised into the typed structs of its kind, offline.
//!
//! Built-in kinds use `k8s-openapi`'s types. Their `Deserialize` skips unknown fields and
//! defaults missing required ones, so both are found by walking the JSON schema `k8s-openapi`
//! generates from the same types (its `schemars` feature, see [`required`]); wrong types come
//! from `serde_path_to_error`. The CRDs of the stack have hand-written types in [`crds`]: their
//! required fields are non-`Option` (serde reports them) and unknown fields are collected with
//! `serde_ignored`. Removed API versions are reported with their replacement.

pub mod crds;
mod required;

use std::sync::OnceLock;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling,
    batch::v1 as batch, core::v1 as core, networking::v1 as networking, policy::v1 as policy,
    rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::schemars::SchemaGenerator;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::input::RawObject;
use super::{Finding, Severity};

pub const RULE: &str = "schema";

/// The typed value of an object the rules reason about; `Other` for kinds they do not need
/// (still schema-checked when known) and for objects whose schema check failed on a type error.
/// Boxed: the typed structs are kilobytes each (every optional field inline), and an entry of
/// any other kind need not be.
pub enum Typed {
    Deployment(Box<apps::Deployment>),
    StatefulSet(Box<apps::StatefulSet>),
    DaemonSet(Box<apps::DaemonSet>),
    Service(Box<core::Service>),
    ConfigMap(Box<core::ConfigMap>),
    Secret(Box<core::Secret>),
    Ingress(Box<networking::Ingress>),
    Hpa(Box<autoscaling::HorizontalPodAutoscaler>),
    Pdb(Box<policy::PodDisruptionBudget>),
    ServiceMonitor(Box<crds::ServiceMonitor>),
    PodMonitor(Box<crds::PodMonitor>),
    Certificate(Box<crds::Certificate>),
    Issuer(Box<crds::Issuer>),
    HttpRoute(Box<crds::HttpRoute>),
    Gateway(Box<crds::Gateway>),
    NetworkPolicy(Box<networking::NetworkPolicy>),
    Other,
}

impl Typed {
    /// The object's metadata, for the kinds kept typed.
    pub fn metadata(&self) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
        Some(match self {
            Typed::Deployment(o) => &o.metadata,
            Typed::StatefulSet(o) => &o.metadata,
            Typed::DaemonSet(o) => &o.metadata,
            Typed::Service(o) => &o.metadata,
            Typed::ConfigMap(o) => &o.metadata,
            Typed::Secret(o) => &o.metadata,
            Typed::Ingress(o) => &o.metadata,
            Typed::Hpa(o) => &o.metadata,
            Typed::Pdb(o) => &o.metadata,
            Typed::ServiceMonitor(o) => &o.metadata,
            Typed::PodMonitor(o) => &o.metadata,
            Typed::Certificate(o) => &o.metadata,
            Typed::Issuer(o) => &o.metadata,
            Typed::HttpRoute(o) => &o.metadata,
            Typed::Gateway(o) => &o.metadata,
            Typed::NetworkPolicy(o) => &o.metadata,
            Typed::Other => return None,
        })
    }
}

type Checker = fn(&Value, &mut Problems) -> Typed;

struct Kind {
    api_version: &'static str,
    kind: &'static str,
    check: Checker,
    /// Built-in kinds: the JSON schema used for the required-field check.
    schema: Option<fn(&mut SchemaGenerator) -> k8s_openapi::schemars::Schema>,
}

/// Problems of one object, as field path + what is wrong.
#[derive(Default)]
pub struct Problems(Vec<String>);

macro_rules! builtin {
    ($ty:ty, $variant:expr) => {
        Kind {
            api_version: <$ty as k8s_openapi::Resource>::API_VERSION,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            check: |value, problems| match typed::<$ty>(value, problems, false) {
                Some(v) => $variant(Box::new(v)),
                None => Typed::Other,
            },
            schema: Some(|generator| generator.subschema_for::<$ty>()),
        }
    };
}

macro_rules! crd {
    ($api_version:literal, $kind:literal, $ty:ty, $variant:expr) => {
        Kind {
            api_version: $api_version,
            kind: $kind,
            check: |value, problems| match typed::<$ty>(value, problems, true) {
                Some(v) => $variant(Box::new(v)),
                None => Typed::Other,
            },
            schema: None,
        }
    };
}

fn other<T>(_: Box<T>) -> Typed {
    Typed::Other
}

/// An autoscaling/v1 HPA as the API server stores it (v2): its bounds and target feed the rules
/// like a v2 one's. Whatever its body also carries that v1 does not serve (a v2 `metrics` list,
/// as a public chart ships) is reported by the schema walk and, as on the server, dropped: an
/// unset `targetCPUUtilizationPercentage` is the default 80% CPU target, as empty v2 metrics are.
fn hpa_v1_as_v2(v1: Box<autoscaling_v1::HorizontalPodAutoscaler>) -> Typed {
    let v1 = *v1;
    let spec = v1
        .spec
        .map(|spec| autoscaling::HorizontalPodAutoscalerSpec {
            scale_target_ref: autoscaling::CrossVersionObjectReference {
                api_version: spec.scale_target_ref.api_version,
                kind: spec.scale_target_ref.kind,
                name: spec.scale_target_ref.name,
            },
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            metrics: spec.target_cpu_utilization_percentage.map(|percent| {
                vec![autoscaling::MetricSpec {
                    type_: "Resource".to_string(),
                    resource: Some(autoscaling::ResourceMetricSource {
                        name: "cpu".to_string(),
                        target: autoscaling::MetricTarget {
                            type_: "Utilization".to_string(),
                            average_utilization: Some(percent),
                            ..Default::default()
                        },
                    }),
                    ..Default::default()
                }]
            }),
            behavior: None,
        });
    Typed::Hpa(Box::new(autoscaling::HorizontalPodAutoscaler {
        metadata: v1.metadata,
        spec,
        status: None,
    }))
}

fn kinds() -> &'static [Kind] {
    static KINDS: OnceLock<Vec<Kind>> = OnceLock::new();
    KINDS.get_or_init(|| {
        vec![
            builtin!(apps::Deployment, Typed::Deployment),
            builtin!(apps::StatefulSet, Typed::StatefulSet),
            builtin!(apps::DaemonSet, Typed::DaemonSet),
            builtin!(apps::ReplicaSet, other),
            builtin!(core::Service, Typed::Service),
            builtin!(core::ConfigMap, Typed::ConfigMap),
            builtin!(core::Secret, Typed::Secret),
            builtin!(core::Namespace, other),
            builtin!(core::ServiceAccount, other),
            builtin!(core::PersistentVolumeClaim, other),
            builtin!(core::Pod, other),
            builtin!(core::LimitRange, other),
            builtin!(core::ResourceQuota, other),
            builtin!(networking::Ingress, Typed::Ingress),
            builtin!(networking::IngressClass, other),
            builtin!(networking::NetworkPolicy, Typed::NetworkPolicy),
            builtin!(autoscaling::HorizontalPodAutoscaler, Typed::Hpa),
            builtin!(autoscaling_v1::HorizontalPodAutoscaler, hpa_v1_as_v2),
            builtin!(policy::PodDisruptionBudget, Typed::Pdb),
            builtin!(batch::Job, other),
            builtin!(batch::CronJob, other),
            builtin!(rbac::Role, other),
            builtin!(rbac::RoleBinding, other),
            builtin!(rbac::ClusterRole, other),
            builtin!(rbac::ClusterRoleBinding, other),
            builtin!(apiextensions::CustomResourceDefinition, other),
            crd!(
                "monitoring.coreos.com/v1",
                "ServiceMonitor",
                crds::ServiceMonitor,
                Typed::ServiceMonitor
            ),
            crd!(
                "monitoring.coreos.com/v1",
                "PodMonitor",
                crds::PodMonitor,
                Typed::PodMonitor
            ),
            crd!(
                "cert-manager.io/v1",
                "Certificate",
                crds::Certificate,
                Typed::Certificate
            ),
            crd!("cert-manager.io/v1", "Issuer", crds::Issuer, Typed::Issuer),
            crd!(
                "external-secrets.io/v1",
                "ExternalSecret",
                crds::ExternalSecret,
                other
            ),
            crd!(
                "external-secrets.io/v1beta1",
                "ExternalSecret",
                crds::ExternalSecret,
                other
            ),
            crd!(
                "bitnami.com/v1alpha1",
                "SealedSecret",
                crds::SealedSecret,
                other
            ),
            crd!(
                "gateway.networking.k8s.io/v1",
                "Gateway",
                crds::Gateway,
                Typed::Gateway
            ),
            crd!(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                crds::HttpRoute,
                Typed::HttpRoute
            ),
            crd!(
                "cert-manager.io/v1",
                "ClusterIssuer",
                crds::Issuer,
                Typed::Issuer
            ),
        ]
    })
}

/// API versions removed from Kubernetes (or from cert-manager) with what replaces them.
const REMOVED: &[(&str, &str, &str)] = &[
    (
        "extensions/v1beta1",
        "1.22",
        "networking.k8s.io/v1 (Ingress, NetworkPolicy) or apps/v1",
    ),
    ("apps/v1beta1", "1.16", "apps/v1"),
    ("apps/v1beta2", "1.16", "apps/v1"),
    ("networking.k8s.io/v1beta1", "1.22", "networking.k8s.io/v1"),
    ("autoscaling/v2beta1", "1.25", "autoscaling/v2"),
    ("autoscaling/v2beta2", "1.26", "autoscaling/v2"),
    ("policy/v1beta1", "1.25", "policy/v1"),
    ("batch/v1beta1", "1.25", "batch/v1"),
    (
        "rbac.authorization.k8s.io/v1beta1",
        "1.22",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "apiextensions.k8s.io/v1beta1",
        "1.22",
        "apiextensions.k8s.io/v1",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "1.22",
        "admissionregistration.k8s.io/v1",
    ),
    ("scheduling.k8s.io/v1beta1", "1.22", "scheduling.k8s.io/v1"),
    ("storage.k8s.io/v1beta1", "1.27", "storage.k8s.io/v1"),
    ("discovery.k8s.io/v1beta1", "1.25", "discovery.k8s.io/v1"),
    ("events.k8s.io/v1beta1", "1.25", "events.k8s.io/v1"),
    ("node.k8s.io/v1beta1", "1.25", "node.k8s.io/v1"),
    (
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "1.29",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "1.32",
        "flowcontrol.apiserver.k8s.io/v1",
    ),
    (
        "cert-manager.io/v1alpha2",
        "cert-manager 1.7",
        "cert-manager.io/v1",
    ),
    (
        "cert-manager.io/v1alpha3",
        "cert-manager 1.7",
        "cert-manager.io/v1",
    ),
    (
        "cert-manager.io/v1beta1",
        "cert-manager 1.7",
        "cert-manager.io/v1",
    ),
    (
        "certmanager.k8s.io/v1alpha1",
        "cert-manager 0.11",
        "cert-manager.io/v1",
    ),
];

/// Groups whose every served kind/version we know: anything else in them is an error rather
/// than an unknown custom resource.
const KNOWN_GROUPS: &[&str] = &[
    "",
    "apps",
    "networking.k8s.io",
    "autoscaling",
    "policy",
    "batch",
    "rbac.authorization.k8s.io",
    "monitoring.coreos.com",
    "cert-manager.io",
    "gateway.networking.k8s.io",
];

/// Checks one object; returns its typed value for the rules and its `schema` findings.
pub fn check(raw: &RawObject) -> (Typed, Vec<Finding>) {
    let finding = |message: String| Finding {
        rule: RULE,
        severity: Severity::Error,
        resource: format!("{}/{}", raw.kind, raw.name),
        namespace: raw.namespace.clone(),
        file: raw.file.clone(),
        line: raw.line,
        message,
        input: None,
    };
    if let Some((_, since, replacement)) = REMOVED.iter().find(|(v, ..)| *v == raw.api_version) {
        let served = served_versions(&raw.kind);
        let replacement = if served.is_empty() {
            replacement.to_string()
        } else {
            served.join(" or ")
        };
        let message = format!(
            "apiVersion {} of {} was removed in {since}: use {replacement} (and its field layout)",
            raw.api_version, raw.kind
        );
        return (as_served(raw), vec![finding(message)]);
    }
    let Some(kind) = kinds()
        .iter()
        .find(|k| k.api_version == raw.api_version && k.kind == raw.kind)
    else {
        let group = raw.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if !KNOWN_GROUPS.contains(&group) {
            // A custom resource we have no schema for: not judged, but never passed silently.
            let message = format!(
                "no schema known for {} of {}: not checked (check it with --api-server, which installs the CRDs of the stack, or against its operator's CRD)",
                raw.kind, raw.api_version
            );
            let mut warning = finding(message);
            warning.severity = Severity::Warning;
            return (Typed::Other, vec![warning]);
        }
        let served = served_versions(&raw.kind);
        let message = if served.is_empty() {
            format!(
                "kind {} is not served by apiVersion {} (no schema known for it)",
                raw.kind, raw.api_version
            )
        } else {
            format!(
                "apiVersion {} does not serve {}: use {}",
                raw.api_version,
                raw.kind,
                served.join(" or ")
            )
        };
        return (as_served(raw), vec![finding(message)]);
    };
    let mut problems = Problems::default();
    let typed = (kind.check)(&raw.value, &mut problems);
    if kind.schema.is_some() {
        required::check(&raw.value, kind.api_version, kind.kind, &mut problems.0);
    }
    let findings = problems.0.into_iter().map(finding).collect();
    (typed, findings)
}

/// An object in a removed apiVersion (or one that does not serve its kind), typed as the served
/// version of its kind where the fields allow (unknown ones dropped), so that the rules still see
/// it and report no follow-on "missing" findings; its problems in that layout are not reported
/// twice.
fn as_served(raw: &RawObject) -> Typed {
    let mut value = raw.value.clone();
    if raw.kind == "Ingress" {
        legacy_ingress_backends(&mut value);
    }
    kinds()
        .iter()
        .filter(|k| k.kind == raw.kind)
        .map(|k| {
            value["apiVersion"] = Value::String(k.api_version.to_string());
            (k.check)(&value, &mut Problems::default())
        })
        .find(|typed| !matches!(typed, Typed::Other))
        .unwrap_or(Typed::Other)
}

/// `backend: {serviceName, servicePort}` of the beta Ingress APIs in the layout of
/// networking.k8s.io/v1 (`defaultBackend`, `service: {name, port}`).
fn legacy_ingress_backends(ingress: &mut Value) {
    let Some(spec) = ingress.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(mut backend) = spec.remove("backend") {
        legacy_backend(&mut backend);
        spec.insert("defaultBackend".to_string(), backend);
    }
    let paths = spec
        .get_mut("rules")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            rule.pointer_mut("/http/paths")
                .and_then(Value::as_array_mut)
        })
        .flatten();
    for backend in paths.filter_map(|path| path.get_mut("backend")) {
        legacy_backend(backend);
    }
}

fn legacy_backend(backend: &mut Value) {
    let Some(name) = backend.get("serviceName").cloned() else {
        return;
    };
    let port = match backend.get("servicePort") {
        Some(Value::Number(n)) => serde_json::json!({ "number": n }),
        Some(Value::String(name)) => serde_json::json!({ "name": name }),
        _ => Value::Null,
    };
    *backend = serde_json::json!({ "service": { "name": name, "port": port } });
}

fn served_versions(kind: &str) -> Vec<&'static str> {
    kinds()
        .iter()
        .filter(|k| k.kind == kind)
        .map(|k| k.api_version)
        .collect()
}

pub(crate) fn unknown_field(path: &str) -> String {
    format!("unknown field `{path}`: remove it or fix its spelling")
}

/// Deserialises `value` as `T`. Wrong types are located with `serde_path_to_error` on a second
/// pass (only for objects that fail, keeping the common path fast); unknown fields are collected
/// with `serde_ignored` when `track_unknown` (the CRDs; built-ins get them from the schema walk).
/// Numbers where Kubernetes takes a quantity string (`cpu: 0.5`) are accepted as the API server
/// does.
fn typed<T: DeserializeOwned>(
    value: &Value,
    problems: &mut Problems,
    track_unknown: bool,
) -> Option<T> {
    if !track_unknown {
        if let Ok(typed) = T::deserialize(value) {
            return Some(typed);
        }
    }
    let mut patched: Option<Value> = None;
    let mut removed = false;
    // Each retry fixes one float quantity; a manifest has few of them.
    for _ in 0..64 {
        let current = patched.as_ref().unwrap_or(value);
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path| unknown.push(ignored_path(&path));
        let result: Result<T, _> = if track_unknown {
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(current, &mut record))
        } else {
            serde_path_to_error::deserialize(current)
        };
        // A retry after a removed field sees the same unknown fields again: each is said once.
        for message in unknown.iter().map(|p| unknown_field(p)) {
            if !problems.0.contains(&message) {
                problems.0.push(message);
            }
        }
        let err = match result {
            Ok(typed) => return Some(typed),
            Err(err) => err,
        };
        let inner = err.inner().to_string();
        if inner.contains("expected Quantity") {
            let mut copy = current.clone();
            if let Some(slot @ Value::Number(_)) = copy.pointer_mut(&json_pointer(err.path())) {
                *slot = Value::String(slot.to_string());
                patched = Some(copy);
                continue;
            }
        }
        let missing = inner.starts_with("missing field");
        if missing && removed {
            // The field removed below was a required one: already reported as mistyped.
            return None;
        }
        problems
            .0
            .push(describe_error(&error_path(err.path()), &inner));
        if missing {
            return None;
        }
        // Keep the object for the other rules without the field at fault (a `replicas: "2"`
        // is reported once, here, not again as "matches no pod template").
        let mut copy = current.clone();
        if !remove_at(&mut copy, &json_pointer(err.path())) {
            return None;
        }
        patched = Some(copy);
        removed = true;
    }
    None
}

/// Removes the value at a JSON pointer; false when there is nothing to remove (the root, or a
/// missing field).
fn remove_at(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return false;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&key).is_some(),
        Some(Value::Array(items)) => match key.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// serde's messages quote the offending value; values may be secrets, so only their type is
/// kept.
fn describe_error(path: &str, inner: &str) -> String {
    if let Some(field) = inner
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        return format!("missing required field `{}`", join(path, field));
    }
    if let Some(rest) = inner
        .strip_prefix("invalid type: ")
        .or_else(|| inner.strip_prefix("invalid value: "))
    {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let found = found.split([' ', '`']).next().unwrap_or(found);
        let found = match found {
            "floating" => "floating point number",
            "map" => "mapping",
            other => other,
        };
        return format!(
            "wrong type at `{path}`: found a {found}, expected {}",
            plain_type(expected)
        );
    }
    if inner.starts_with("unknown variant") {
        let expected = inner.split_once("expected ").map_or("", |(_, e)| e);
        return format!("invalid value at `{path}`: expected {expected}");
    }
    format!("invalid value at `{path}`: {inner}")
}

/// What serde calls the expected type, in the words of a manifest's author ("an integer", not
/// `i32`).
fn plain_type(expected: &str) -> &str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a borrowed string" => "a string",
        "a sequence" => "a list",
        "a map" => "a mapping",
        other if other.starts_with("struct ") => "a mapping",
        other => other,
    }
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() || parent == "." {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

fn error_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn json_pointer(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("/{index}")),
            serde_path_to_error::Segment::Map { key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn ignored_path(path: &serde_ignored::Path) -> String {
    match path {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        serde_ignored::Path::Map { parent, key } => join(&ignored_path(parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}
