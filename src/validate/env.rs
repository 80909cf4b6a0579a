//! What a container sees: its environment after `envFrom` and `env`, with values resolved from
//! the bundle's ConfigMaps, and the ConfigMap files mounted into it. Secret values are never
//! read; only where a variable comes from.

use k8s_openapi::api::core::v1::{Container, KeyToPath};

use super::bundle::{Bundle, Workload};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `value:` in the manifest.
    Literal,
    /// A ConfigMap key (value known when the ConfigMap is in the bundle).
    ConfigMap,
    Secret,
    /// fieldRef / resourceFieldRef.
    Field,
}

#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub source: Source,
    /// The text, when the bundle shows it (literal or ConfigMap value).
    pub value: Option<String>,
}

pub struct Env(Vec<Var>);

impl Env {
    /// `envFrom` first, then `env`: later definitions win, as in the kubelet.
    pub fn of(bundle: &Bundle, workload: &Workload, container: &Container) -> Env {
        let mut vars: Vec<Var> = Vec::new();
        let mut set = |var: Var| {
            vars.retain(|v| v.name != var.name);
            vars.push(var);
        };
        for from in container.env_from.iter().flatten() {
            let prefix = from.prefix.as_deref().unwrap_or("");
            if let Some(reference) = &from.config_map_ref {
                let data = bundle
                    .config_map(workload.entry, &reference.name)
                    .and_then(|c| c.data.as_ref());
                for (key, value) in data.into_iter().flatten() {
                    set(Var {
                        name: format!("{prefix}{key}"),
                        source: Source::ConfigMap,
                        value: Some(value.clone()),
                    });
                }
            }
            if let Some(reference) = &from.secret_ref {
                let keys = bundle.secret_keys(workload.entry, &reference.name);
                for key in keys.into_iter().flatten() {
                    set(Var {
                        name: format!("{prefix}{key}"),
                        source: Source::Secret,
                        value: None,
                    });
                }
            }
        }
        for var in container.env.iter().flatten() {
            let (source, value) = match &var.value_from {
                None => (Source::Literal, Some(var.value.clone().unwrap_or_default())),
                Some(from) => {
                    if from.secret_key_ref.is_some() {
                        (Source::Secret, None)
                    } else if let Some(key_ref) = &from.config_map_key_ref {
                        let value = bundle
                            .config_map(workload.entry, &key_ref.name)
                            .and_then(|c| c.data.as_ref())
                            .and_then(|d| d.get(&key_ref.key))
                            .cloned();
                        (Source::ConfigMap, value)
                    } else {
                        (Source::Field, None)
                    }
                }
            };
            set(Var {
                name: var.name.clone(),
                source,
                value,
            });
        }
        Env(vars)
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.0.iter().find(|v| v.name == name)
    }

    /// The visible text of a variable (`None` when unset or hidden in a Secret).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.value.as_deref())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Var> {
        self.0.iter()
    }
}

/// A ConfigMap key mounted as a file into a container.
pub struct MountedFile<'a> {
    pub path: String,
    pub content: &'a str,
}

/// Every ConfigMap file of the bundle mounted into `container` (configMap and projected
/// volumes, with `items` and `subPath`).
pub fn mounted_files<'a>(
    bundle: &'a Bundle,
    workload: &Workload<'a>,
    container: &Container,
) -> Vec<MountedFile<'a>> {
    let mut out = Vec::new();
    let volumes = workload
        .template
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref());
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = volumes.and_then(|v| v.iter().find(|v| v.name == mount.name)) else {
            continue;
        };
        let mut sources: Vec<(&str, Option<&Vec<KeyToPath>>)> = Vec::new();
        if let Some(cm) = &volume.config_map {
            sources.push((&cm.name, cm.items.as_ref()));
        }
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    sources.push((&cm.name, cm.items.as_ref()));
                }
            }
        }
        for (name, items) in sources {
            let Some(data) = bundle
                .config_map(workload.entry, name)
                .and_then(|c| c.data.as_ref())
            else {
                continue;
            };
            for (key, content) in data {
                let relative = match items {
                    Some(items) => match items.iter().find(|i| &i.key == key) {
                        Some(item) => item.path.clone(),
                        None => continue,
                    },
                    None => key.clone(),
                };
                let path = match mount.sub_path.as_deref() {
                    Some(sub) if sub == relative => mount.mount_path.clone(),
                    Some(_) => continue,
                    None => format!("{}/{}", mount.mount_path.trim_end_matches('/'), relative),
                };
                out.push(MountedFile { path, content });
            }
        }
    }
    out
}
