//! The run's test CA and the ingress certificate it issues, generated in memory with rcgen.
//! Only the CA certificate may leave the temp dir; the keys never do.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
}

impl Pki {
    /// A fresh CA (its key dropped once the leaf is signed) and a server certificate for `host`.
    pub fn generate(host: &str) -> Result<Self> {
        let ca_key = KeyPair::generate().context("generating the test CA key")?;
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name("camunda-conformance test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params
            .self_signed(&ca_key)
            .context("self-signing the test CA")?;

        let leaf_key = KeyPair::generate().context("generating the ingress key")?;
        let mut leaf_params = CertificateParams::new(vec![host.to_string()])
            .with_context(|| format!("certificate parameters for {host}"))?;
        leaf_params.distinguished_name = name(host);
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca, &ca_key)
            .with_context(|| format!("signing the certificate for {host}"))?;
        Ok(Self {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What nginx serves: the leaf, then the CA that issued it.
    pub fn leaf_chain_pem(&self) -> String {
        format!("{}{}", self.leaf_pem, self.ca_pem)
    }

    pub fn leaf_key_pem(&self) -> &str {
        &self.leaf_key_pem
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_gets_its_own_ca() {
        let a = Pki::generate("camunda.test").unwrap();
        let b = Pki::generate("camunda.test").unwrap();
        assert_ne!(a.ca_pem(), b.ca_pem());
        assert!(a
            .leaf_chain_pem()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(a.leaf_chain_pem().matches("BEGIN CERTIFICATE").count(), 2);
        assert!(a.leaf_key_pem().contains("PRIVATE KEY"));
        assert!(!a.ca_pem().contains("PRIVATE KEY"));
    }
}
