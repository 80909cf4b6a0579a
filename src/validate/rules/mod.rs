//! The policy rules of `validate`. Each rule lives in its own file as a small function over the
//! indexed [`Bundle`]; [`catalog`] lists them with id, severity and a one-line description (the
//! ids are part of the CLI contract).

mod affinity_cookie_name;
mod camunda_workload;
mod db_connection_budget;
mod db_credentials_from_secret;
mod duplicate;
mod front_door;
mod hpa_replicas_field;
mod hpa_target;
mod image_tag;
mod ingress_tls;
mod memory_limit;
mod metrics_exposed;
mod metrics_not_public;
mod metrics_scraped;
mod network_policy;
mod no_h2_with_replicas;
mod pdb;
mod probes;
mod reference;
mod resource_requests;
mod rest_auth;
mod schema;
mod service_account_token;
mod session_strategy;
mod spread;
mod statefulset_service;

pub use front_door::FrontDoor;

use super::bundle::{Bundle, Entry};
use super::{Finding, Severity};

pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub description: &'static str,
    pub check: fn(&Bundle, &mut Vec<Finding>),
}

impl Rule {
    fn finding(&self, entry: &Entry, message: String) -> Finding {
        entry.finding(self.id, self.severity, message)
    }
}

/// The id of the `duplicate` rule, also used by the bundle that finds them.
pub const DUPLICATE: &str = "duplicate";

const CATALOG: [Rule; 26] = [
    schema::RULE,
    camunda_workload::RULE,
    db_credentials_from_secret::RULE,
    no_h2_with_replicas::RULE,
    resource_requests::RULE,
    memory_limit::RULE,
    probes::RULE,
    metrics_exposed::RULE,
    metrics_scraped::RULE,
    metrics_not_public::RULE,
    ingress_tls::RULE,
    session_strategy::RULE,
    affinity_cookie_name::RULE,
    hpa_target::RULE,
    hpa_replicas_field::RULE,
    db_connection_budget::RULE,
    rest_auth::RULE,
    pdb::RULE,
    image_tag::RULE,
    reference::RULE,
    duplicate::RULE,
    network_policy::RULE,
    spread::RULE,
    statefulset_service::RULE,
    service_account_token::RULE,
    front_door::RULE,
];

/// Every rule, in the order of the product brief.
pub fn catalog() -> &'static [Rule] {
    &CATALOG
}

/// A container's name for messages.
fn container_label(container: &k8s_openapi::api::core::v1::Container) -> String {
    format!("container `{}`", container.name)
}

/// The value of a dotted Spring property in a mounted `.properties` or YAML file, lower-cased.
fn spring_property(path: &str, content: &str, property: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".properties") {
        return content.lines().find_map(|line| {
            let (k, v) = line.split_once(['=', ':'])?;
            (k.trim() == property).then(|| v.trim().to_ascii_lowercase())
        });
    }
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return None;
    }
    let config = crate::validate::yaml::Documents::new(content)
        .next()?
        .ok()?;
    let pointer = format!("/{}", property.replace('.', "/"));
    let value = config.pointer(&pointer).or_else(|| config.get(property))?;
    match value {
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::String(s) => Some(s.trim().to_ascii_lowercase()),
        _ => None,
    }
}
