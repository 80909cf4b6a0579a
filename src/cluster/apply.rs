//! Server-side apply through kube-rs (idempotent: applying the same objects again changes
//! nothing), shared by `deploy` and the harness's kind/kwok/existing backends.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::{Api, Client};
use serde_json::Value;

use super::wait;

/// How long a kind may take to appear in discovery after its CRD is Established.
const DISCOVERY_GRACE: Duration = Duration::from_secs(15);

/// The field manager of every object the harness applies.
pub const FIELD_MANAGER: &str = "camunda-conformance";

/// Every document of a multi-document YAML stream, `List`s flattened, empty documents dropped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for (i, document) in crate::validate::yaml::Documents::new(text).enumerate() {
        let value = document.map_err(|err| {
            anyhow::anyhow!("parsing YAML document {}: {}", err.document, err.message)
        })?;
        match value {
            Value::Null => {}
            Value::Object(ref map)
                if map
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List")) =>
            {
                docs.extend(
                    map.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            Value::Object(_) => docs.push(value),
            other => bail!("YAML document {} is not an object: {other}", i + 1),
        }
    }
    Ok(docs)
}

/// `kind namespace/name` for messages.
pub fn describe(doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or("?");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn gvk_of(doc: &Value) -> Result<GroupVersionKind> {
    let api_version = doc["apiVersion"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no apiVersion", describe(doc)))?;
    let kind = doc["kind"]
        .as_str()
        .ok_or_else(|| anyhow!("a document has no kind"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

/// What server-side apply does with a field another field manager owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflicts {
    /// Stop with an error naming the object, the owning manager and the field: a cluster
    /// somebody else also manages (`deploy` without `--force-conflicts`).
    Refuse,
    /// Take the fields over: the harness's own clusters, where an earlier run or kubectl left
    /// them, so that re-applying converges (`deploy --force-conflicts`).
    Force,
}

/// Applies documents with server-side apply, resolving each kind through discovery once.
pub struct Applier {
    client: Client,
    conflicts: Conflicts,
    resolved: HashMap<(String, String, String), (ApiResource, ApiCapabilities)>,
}

impl Applier {
    pub fn new(client: Client, conflicts: Conflicts) -> Self {
        Self {
            client,
            conflicts,
            resolved: HashMap::new(),
        }
    }

    /// Namespaces first, then CRDs (awaited Established, so their kinds resolve), then the rest in
    /// the given order.
    pub async fn apply(&mut self, docs: &[Value]) -> Result<()> {
        let rank = |doc: &Value| match doc["kind"].as_str() {
            Some("Namespace") => 0,
            Some("CustomResourceDefinition") => 1,
            _ => 2,
        };
        let mut ordered: Vec<&Value> = docs.iter().collect();
        ordered.sort_by_key(|doc| rank(doc));
        let mut crds = Vec::new();
        let mut crds_awaited = false;
        for doc in ordered {
            if rank(doc) == 2 && !crds_awaited {
                self.await_crds(&crds).await?;
                crds_awaited = true;
            }
            self.apply_one(doc).await?;
            if rank(doc) == 1 {
                crds.push(
                    doc["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        if !crds_awaited {
            self.await_crds(&crds).await?;
        }
        Ok(())
    }

    async fn await_crds(&self, names: &[String]) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in names {
            let what = format!("CRD {name} Established");
            wait::watch_until(
                api.clone(),
                name,
                &what,
                Duration::from_secs(60),
                wait::crd_established,
            )
            .await?;
        }
        Ok(())
    }

    async fn resolve(&mut self, gvk: &GroupVersionKind) -> Result<(ApiResource, ApiCapabilities)> {
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        if let Some(found) = self.resolved.get(&key) {
            return Ok(found.clone());
        }
        // A CRD reported Established may still be missing from discovery for a moment (seen on a
        // real API server): ask again for a few seconds before calling the kind unserved.
        let started = std::time::Instant::now();
        let found = loop {
            match discovery::pinned_kind(&self.client, gvk).await {
                Ok(found) => break found,
                Err(_) if started.elapsed() < DISCOVERY_GRACE => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "the cluster does not serve {}/{} {} (asked for {}s)",
                            gvk.group,
                            gvk.version,
                            gvk.kind,
                            DISCOVERY_GRACE.as_secs()
                        )
                    })
                }
            }
        };
        self.resolved.insert(key, found.clone());
        Ok(found)
    }

    /// The typed handle of the document's kind, in its namespace.
    pub async fn api_for(&mut self, doc: &Value) -> Result<Api<DynamicObject>> {
        let (resource, caps) = self.resolve(&gvk_of(doc)?).await?;
        Ok(match caps.scope {
            Scope::Cluster => Api::all_with(self.client.clone(), &resource),
            Scope::Namespaced => {
                let namespace = doc["metadata"]["namespace"].as_str().unwrap_or("default");
                Api::namespaced_with(self.client.clone(), namespace, &resource)
            }
        })
    }

    pub async fn apply_one(&mut self, doc: &Value) -> Result<()> {
        let what = describe(doc);
        let name = doc["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow!("{what} has no name"))?;
        let api = self.api_for(doc).await?;
        let params = match self.conflicts {
            Conflicts::Force => PatchParams::apply(FIELD_MANAGER).force(),
            Conflicts::Refuse => PatchParams::apply(FIELD_MANAGER),
        };
        match api.patch(name, &params, &Patch::Apply(doc)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 409 => {
                Err(anyhow!(conflict_message(&what, &response.message)))
            }
            Err(err) => Err(err).with_context(|| format!("applying {what}")),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The API server's conflict text names the managers and fields (`conflict with "kubectl-edit"
/// using apps/v1: .spec.replicas`); the error says which object and what to do about it.
fn conflict_message(what: &str, server: &str) -> String {
    let managers: Vec<&str> = server
        .split("conflict with \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let owners = if managers.is_empty() {
        "another field manager".to_string()
    } else {
        format!("field manager {}", managers.join(", "))
    };
    format!(
        "applying {what}: {owners} owns fields this apply sets ({server}); not taking them over: \
         pass --force-conflicts to make {FIELD_MANAGER} their owner"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_names_the_object_the_owner_and_the_way_out() {
        let text = conflict_message(
            "Deployment camunda/camunda",
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.template.spec.containers[name=\"camunda\"].image",
        );
        assert!(
            text.starts_with(
                "applying Deployment camunda/camunda: field manager kubectl-edit owns fields"
            ),
            "{text}"
        );
        assert!(
            text.contains(".image") && text.contains("--force-conflicts"),
            "{text}"
        );
    }

    #[test]
    fn documents_are_split_lists_flattened_and_blanks_dropped() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: a}}\n";
        let docs = parse_documents(text).unwrap();
        let names: Vec<String> = docs.iter().map(describe).collect();
        assert_eq!(names, ["Namespace a", "ConfigMap a/b", "ConfigMap a/c"]);
        assert!(parse_documents("- just\n- a list\n").is_err());
    }

    #[test]
    fn group_version_kind_is_read_from_api_version() {
        let gvk = gvk_of(
            &serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer"}),
        )
        .unwrap();
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()),
            ("cert-manager.io", "v1", "ClusterIssuer")
        );
        let core = gvk_of(&serde_json::json!({"apiVersion": "v1", "kind": "Secret"})).unwrap();
        assert_eq!((core.group.as_str(), core.version.as_str()), ("", "v1"));
    }
}
