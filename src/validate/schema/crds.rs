//! Typed schemas of the custom resources the stack uses, written from the projects' API
//! references: prometheus-operator `monitoring.coreos.com/v1` ServiceMonitor and PodMonitor,
//! cert-manager `cert-manager.io/v1` Certificate, Issuer and ClusterIssuer, External Secrets
//! Operator `external-secrets.io/v1` ExternalSecret, Bitnami `bitnami.com/v1alpha1` SealedSecret,
//! and Gateway API `gateway.networking.k8s.io/v1` Gateway and HTTPRoute.
//!
//! Required fields are plain (non-`Option`) fields so serde reports them missing. Sub-trees the
//! rules never read and that vary between operator releases (TLS/auth settings, ACME solvers,
//! Vault/Venafi) are kept as `Value`: their types are not checked below that point.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;

/// `apiVersion`, `kind`, `metadata`, `spec`, `status` of every custom resource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    pub status: Option<Value>,
}

pub type ServiceMonitor = Resource<ServiceMonitorSpec>;
pub type PodMonitor = Resource<PodMonitorSpec>;
pub type Certificate = Resource<CertificateSpec>;
/// Issuer and ClusterIssuer share their spec.
pub type Issuer = Resource<IssuerSpec>;
pub type ExternalSecret = Resource<ExternalSecretSpec>;
pub type SealedSecret = Resource<SealedSecretSpec>;
pub type Gateway = Resource<GatewaySpec>;
pub type HttpRoute = Resource<HttpRouteSpec>;

/// Fields shared by ServiceMonitor and PodMonitor specs (kept in one macro so both stay alike).
macro_rules! monitor_spec {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub selector: LabelSelector,
            pub namespace_selector: Option<NamespaceSelector>,
            pub selector_mechanism: Option<String>,
            pub job_label: Option<String>,
            pub pod_target_labels: Option<Vec<String>>,
            pub sample_limit: Option<u64>,
            pub target_limit: Option<u64>,
            pub label_limit: Option<u64>,
            pub label_name_length_limit: Option<u64>,
            pub label_value_length_limit: Option<u64>,
            pub keep_dropped_targets: Option<u64>,
            pub scrape_protocols: Option<Vec<String>>,
            pub fallback_scrape_protocol: Option<String>,
            pub scrape_classic_histograms: Option<bool>,
            pub convert_classic_histograms_to_nhcb: Option<bool>,
            pub native_histogram_bucket_limit: Option<u64>,
            pub native_histogram_min_bucket_factor: Option<IntOrString>,
            pub attach_metadata: Option<AttachMetadata>,
            pub scrape_class: Option<String>,
            pub body_size_limit: Option<String>,
            $(pub $field: $ty),*
        }
    };
}

monitor_spec!(ServiceMonitorSpec {
    endpoints: Vec<ServiceMonitorEndpoint>,
    target_labels: Option<Vec<String>>,
    service_discovery_role: Option<String>,
});

monitor_spec!(PodMonitorSpec {
    pod_metrics_endpoints: Option<Vec<PodMetricsEndpoint>>,
});

/// Fields shared by ServiceMonitor endpoints and PodMonitor podMetricsEndpoints.
macro_rules! scrape_endpoint {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub port: Option<String>,
            pub target_port: Option<IntOrString>,
            pub path: Option<String>,
            pub scheme: Option<String>,
            pub params: Option<BTreeMap<String, Vec<String>>>,
            pub interval: Option<String>,
            pub scrape_timeout: Option<String>,
            pub honor_labels: Option<bool>,
            pub honor_timestamps: Option<bool>,
            pub track_timestamps_staleness: Option<bool>,
            pub metric_relabelings: Option<Vec<RelabelConfig>>,
            pub relabelings: Option<Vec<RelabelConfig>>,
            pub tls_config: Option<Value>,
            pub basic_auth: Option<Value>,
            pub authorization: Option<Value>,
            pub oauth2: Option<Value>,
            pub bearer_token_secret: Option<Value>,
            pub proxy_url: Option<String>,
            pub no_proxy: Option<String>,
            pub proxy_from_environment: Option<bool>,
            pub proxy_connect_header: Option<Value>,
            pub follow_redirects: Option<bool>,
            pub enable_http2: Option<bool>,
            pub filter_running: Option<bool>,
            $(pub $field: $ty),*
        }
    };
}

scrape_endpoint!(ServiceMonitorEndpoint {
    bearer_token_file: Option<String>,
});

scrape_endpoint!(PodMetricsEndpoint {
    port_number: Option<i32>,
});

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub any: Option<bool>,
    pub match_names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachMetadata {
    pub node: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    pub source_labels: Option<Vec<String>>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub issuer_ref: IssuerRef,
    pub common_name: Option<String>,
    pub dns_names: Option<Vec<String>>,
    pub ip_addresses: Option<Vec<String>>,
    pub uris: Option<Vec<String>>,
    pub email_addresses: Option<Vec<String>>,
    pub other_names: Option<Value>,
    pub duration: Option<String>,
    pub renew_before: Option<String>,
    pub renew_before_percentage: Option<i32>,
    #[serde(rename = "isCA")]
    pub is_ca: Option<bool>,
    pub usages: Option<Vec<String>>,
    pub private_key: Option<CertificatePrivateKey>,
    pub subject: Option<Value>,
    pub literal_subject: Option<String>,
    pub secret_template: Option<SecretTemplate>,
    pub keystores: Option<Value>,
    pub revision_history_limit: Option<i32>,
    pub encode_usages_in_request: Option<bool>,
    pub additional_output_formats: Option<Value>,
    pub name_constraints: Option<Value>,
    pub signature_algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    pub name: String,
    pub kind: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    pub rotation_policy: Option<String>,
    pub encoding: Option<String>,
    pub algorithm: Option<String>,
    pub size: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    pub annotations: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    pub self_signed: Option<SelfSignedIssuer>,
    pub ca: Option<CaIssuer>,
    pub acme: Option<Value>,
    pub vault: Option<Value>,
    pub venafi: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfSignedIssuer {
    pub crl_distribution_points: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    pub secret_name: String,
    pub crl_distribution_points: Option<Vec<String>>,
    pub ocsp_servers: Option<Vec<String>>,
    #[serde(rename = "issuingCertificateURLs")]
    pub issuing_certificate_urls: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    pub secret_store_ref: Option<SecretStoreRef>,
    pub target: Option<ExternalSecretTarget>,
    pub refresh_interval: Option<String>,
    pub refresh_policy: Option<String>,
    pub data: Option<Vec<ExternalSecretData>>,
    pub data_from: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    pub name: Option<String>,
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    pub name: Option<String>,
    pub creation_policy: Option<String>,
    pub deletion_policy: Option<String>,
    pub template: Option<Value>,
    pub immutable: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    pub secret_key: String,
    pub remote_ref: RemoteRef,
    pub source_ref: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    pub key: String,
    pub property: Option<String>,
    pub version: Option<String>,
    pub metadata_policy: Option<String>,
    pub conversion_strategy: Option<String>,
    pub decoding_strategy: Option<String>,
    pub null_bytes_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    pub encrypted_data: BTreeMap<String, String>,
    pub template: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    pub listeners: Vec<Listener>,
    pub addresses: Option<Vec<Value>>,
    pub infrastructure: Option<Value>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<Value>,
    pub allowed_listeners: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    pub hostname: Option<String>,
    pub port: i32,
    pub protocol: String,
    pub tls: Option<Value>,
    pub allowed_routes: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    pub parent_refs: Option<Vec<ParentRef>>,
    pub hostnames: Option<Vec<String>>,
    pub rules: Option<Vec<HttpRouteRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    pub name: Option<String>,
    pub matches: Option<Vec<Value>>,
    pub filters: Option<Vec<Value>>,
    pub backend_refs: Option<Vec<BackendRef>>,
    pub timeouts: Option<Value>,
    pub retry: Option<Value>,
    pub session_persistence: Option<SessionPersistence>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
    pub weight: Option<i32>,
    pub filters: Option<Vec<Value>>,
}

/// Gateway API session persistence (`type: Cookie` is the sticky cookie).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPersistence {
    pub session_name: Option<String>,
    pub absolute_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub cookie_config: Option<Value>,
}
