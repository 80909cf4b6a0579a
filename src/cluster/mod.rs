//! A live cluster through kube-rs: what `run --kube-context` and `deploy` share.

pub mod apply;
pub mod deploy;
pub mod discover;
pub mod portforward;
pub mod wait;

use anyhow::{Context, Result};
use kube::config::KubeConfigOptions;
use kube::{Client, Config};

/// A client for a kubeconfig context (`None`: the kubeconfig's current context).
pub async fn connect(context: Option<&str>) -> Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let named = context.unwrap_or("the current context");
    let config = Config::from_kubeconfig(&options)
        .await
        .with_context(|| format!("loading kubeconfig context {named}"))?;
    Client::try_from(config).with_context(|| format!("building a client for context {named}"))
}

#[cfg(test)]
pub(crate) mod fixtures {
    /// A recorded API object from `fixtures/kube/`.
    pub fn load<T: serde::de::DeserializeOwned>(name: &str) -> T {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/kube")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}
