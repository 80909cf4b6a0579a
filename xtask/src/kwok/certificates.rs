//! The cert-manager stand-in of the kwok backend. cert-manager's controller does not build from
//! the Go module proxy, so nothing would ever issue the stack's certificates: the harness does
//! it with a per-run test CA, writes what cert-manager's CA issuer writes (`tls.crt`, `tls.key`,
//! `ca.crt` in the certificate's Secret) and marks existing Certificate objects Ready with a
//! reason that says who did it. Secret values are never printed.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::local::tls::Pki;
use camunda_conformance::cluster::apply::{Applier, FIELD_MANAGER};

/// The reason on the Ready condition the stand-in sets.
pub const REASON: &str = "IssuedByHarness";

/// Issues every `(namespace, name)` of `certificates`: an explicit Certificate object (its
/// Secret, then its status), or the TLS Secret an Ingress names (what ingress-shim would
/// have created a Certificate for).
pub async fn stand_in(
    applier: &mut Applier,
    client: &kube::Client,
    host: &str,
    certificates: &[(String, String)],
) -> Result<()> {
    let pki = Pki::generate(host)?;
    for (namespace, name) in certificates {
        let probe = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"namespace": namespace}});
        let api = applier.api_for(&probe).await?;
        let certificate = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading Certificate {namespace}/{name}"))?;
        let Some(certificate) = certificate else {
            if issued_before(client, namespace, name).await? {
                println!("  cert-manager stand-in: Secret {namespace}/{name} was issued by an earlier run on this cluster (--reuse); kept, as cert-manager keeps a certificate that is still valid");
            } else {
                write_secret(client, namespace, name, &pki).await?;
                println!("  cert-manager stand-in: issued {host} into Secret {namespace}/{name} (the Ingress's TLS Secret) with the run's test CA");
            }
            continue;
        };
        let spec = &certificate.data["spec"];
        if spec["isCA"].as_bool() == Some(true) {
            println!("  cert-manager stand-in: CA Certificate {namespace}/{name} marked Ready without key material (no cert-manager issuer runs on this cluster)");
        } else {
            let secret = spec["secretName"].as_str().unwrap_or(name);
            if issued_before(client, namespace, secret).await? {
                println!("  cert-manager stand-in: Secret {namespace}/{secret} of Certificate {namespace}/{name} was issued by an earlier run on this cluster (--reuse); kept");
            } else {
                write_secret(client, namespace, secret, &pki).await?;
                println!("  cert-manager stand-in: issued {host} into Secret {namespace}/{secret} for Certificate {namespace}/{name}");
            }
        }
        let generation = certificate.metadata.generation.unwrap_or(1);
        let status = json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "True",
            "reason": REASON,
            "message": "kwok backend: cert-manager's controller does not run here; camunda-conformance issued this certificate with its test CA",
            "observedGeneration": generation,
        }]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .with_context(|| format!("marking Certificate {namespace}/{name} Ready"))?;
    }
    Ok(())
}

/// A TLS Secret this harness wrote in an earlier run (a kept cluster): certificate, key and CA.
async fn issued_before(client: &kube::Client, namespace: &str, name: &str) -> Result<bool> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading Secret {namespace}/{name}"))?
    else {
        return Ok(false);
    };
    let complete = ["tls.crt", "tls.key", "ca.crt"].iter().all(|key| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(*key))
            .is_some_and(|value| !value.0.is_empty())
    });
    let ours = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|entry| entry.manager.as_deref() == Some(FIELD_MANAGER));
    Ok(complete && ours)
}

async fn write_secret(client: &kube::Client, namespace: &str, name: &str, pki: &Pki) -> Result<()> {
    let data: BTreeMap<String, ByteString> = [
        ("tls.crt", pki.leaf_chain_pem()),
        ("tls.key", pki.leaf_key_pem().to_string()),
        ("ca.crt", pki.ca_pem().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    });
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .with_context(|| format!("writing Secret {namespace}/{name}"))?;
    Ok(())
}
