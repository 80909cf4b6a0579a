//! The control plane's PKI, generated per run with rcgen into a private folder (0700, outside
//! the artifacts): a cluster CA whose key never touches the disk, the serving certificates of
//! kube-apiserver, metrics-server and kwok, the admin and front-proxy client certificates, and
//! the service-account signing key; for a real node (the node backend) also the kubelet's
//! serving and client certificates and kube-proxy's client certificate.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::cmd::write_private;

/// The files the components are started with.
pub struct Pki {
    pub ca: PathBuf,
    pub apiserver: (PathBuf, PathBuf),
    pub admin: (PathBuf, PathBuf),
    pub front_proxy: (PathBuf, PathBuf),
    pub metrics_server: (PathBuf, PathBuf),
    pub kwok: (PathBuf, PathBuf),
    pub service_account_key: PathBuf,
    /// Its public half: what kube-apiserver verifies tokens with.
    pub service_account_pub: PathBuf,
    /// Present when generated for a real node.
    pub node: Option<NodeCerts>,
}

/// A real node's name and address: the kubelet's certificates name both, and the API server's
/// names the address it serves on.
pub struct NodeIdentity<'a> {
    pub name: &'a str,
    pub ip: &'a str,
}

/// The certificates of a real node's components.
pub struct NodeCerts {
    /// `system:node:<name>` in `system:nodes`: what the Node authorizer expects of a kubelet.
    pub kubelet_client: (PathBuf, PathBuf),
    /// The kubelet's HTTPS endpoint (logs, exec, port-forward, metrics) at the node's address.
    pub kubelet_serving: (PathBuf, PathBuf),
    /// `system:kube-proxy`, bound to its ClusterRole by the API server's bootstrap policy.
    pub kube_proxy: (PathBuf, PathBuf),
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

struct Issuer {
    cert: Certificate,
    key: KeyPair,
}

impl Issuer {
    /// A leaf for `names` (DNS names or IP addresses), written as `<file>.crt` and `<file>.key`.
    fn issue(
        &self,
        dir: &Path,
        file: &str,
        common_name: &str,
        organization: Option<&str>,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<(PathBuf, PathBuf)> {
        let key = KeyPair::generate().with_context(|| format!("generating the {file} key"))?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .with_context(|| format!("certificate parameters for {file}"))?;
        params.distinguished_name = name(common_name, organization);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing the {file} certificate"))?;
        let crt = dir.join(format!("{file}.crt"));
        let pem = dir.join(format!("{file}.key"));
        std::fs::write(&crt, cert.pem()).with_context(|| format!("writing {}", crt.display()))?;
        write_private(&pem, key.serialize_pem().as_bytes())?;
        Ok((crt, pem))
    }
}

impl Pki {
    pub fn generate(dir: &Path) -> Result<Self> {
        Self::generate_for(dir, None)
    }

    /// The PKI, with a real node's certificates when `node` is given.
    pub fn generate_for(dir: &Path, node: Option<&NodeIdentity>) -> Result<Self> {
        let key = KeyPair::generate().context("generating the cluster CA key")?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name("camunda-conformance kwok cluster CA", None);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .context("self-signing the cluster CA")?;
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, cert.pem()).with_context(|| format!("writing {}", ca.display()))?;
        let issuer = Issuer { cert, key };
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let mut apiserver_names = vec![
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            crate::SERVICE_IP,
        ];
        apiserver_names.extend(node.map(|n| n.ip));
        let apiserver = issuer.issue(
            dir,
            "apiserver",
            "kube-apiserver",
            None,
            &apiserver_names,
            server.clone(),
        )?;
        // system:masters: the harness and every controller act as cluster admin, as kwokctl does.
        let admin = issuer.issue(
            dir,
            "admin",
            "kubernetes-admin",
            Some("system:masters"),
            &["kubernetes-admin"],
            client.clone(),
        )?;
        let front_proxy = issuer.issue(
            dir,
            "front-proxy-client",
            crate::FRONT_PROXY_NAME,
            None,
            &[crate::FRONT_PROXY_NAME],
            client.clone(),
        )?;
        // The aggregator verifies the service's DNS name; metrics-server answers on loopback.
        let metrics_server = issuer.issue(
            dir,
            "metrics-server",
            "metrics-server",
            None,
            &["metrics-server.kube-system.svc", "localhost", "127.0.0.1"],
            server.clone(),
        )?;
        // metrics-server reaches kwok's simulated kubelet at the node's InternalIP.
        let kwok = issuer.issue(
            dir,
            "kwok",
            crate::NODE_NAME,
            None,
            &["127.0.0.1", "localhost"],
            server.clone(),
        )?;
        let node = match node {
            None => None,
            Some(node) => {
                let user = format!("system:node:{}", node.name);
                Some(NodeCerts {
                    kubelet_client: issuer.issue(
                        dir,
                        "kubelet-client",
                        &user,
                        Some("system:nodes"),
                        &[node.name],
                        client.clone(),
                    )?,
                    kubelet_serving: issuer.issue(
                        dir,
                        "kubelet-serving",
                        node.name,
                        None,
                        &[node.name, node.ip],
                        server,
                    )?,
                    kube_proxy: issuer.issue(
                        dir,
                        "kube-proxy",
                        "system:kube-proxy",
                        None,
                        &["kube-proxy"],
                        client,
                    )?,
                })
            }
        };
        let service_account_key = dir.join("service-account.key");
        let sa = KeyPair::generate().context("generating the service-account key")?;
        write_private(&service_account_key, sa.serialize_pem().as_bytes())?;
        let service_account_pub = dir.join("service-account.pub");
        std::fs::write(&service_account_pub, sa.public_key_pem())
            .with_context(|| format!("writing {}", service_account_pub.display()))?;
        Ok(Self {
            ca,
            apiserver,
            admin,
            front_proxy,
            metrics_server,
            kwok,
            service_account_key,
            service_account_pub,
            node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_and_the_ca_key_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(dir.path()).unwrap();
        for (_, key) in [&pki.apiserver, &pki.admin, &pki.metrics_server, &pki.kwok] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is readable by others", key.display());
        }
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!files.iter().any(|f| f == "ca.key"), "{files:?}");
        let ca = std::fs::read_to_string(&pki.ca).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----") && !ca.contains("PRIVATE"));
    }
}
