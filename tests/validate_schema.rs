//! The `schema` rule on plain YAML: unknown fields at nested paths, wrong types, missing
//! required fields (k8s-openapi itself defaults them), removed apiVersions, the CRDs, and values
//! never echoed in messages.

use camunda_conformance::validate::input::parse_documents;
use camunda_conformance::validate::{check, Finding, Severity};
use rstest::rstest;

fn schema_messages(yaml: &str) -> Vec<String> {
    let objects =
        parse_documents(yaml, "test.yaml", Some("test.yaml".to_string())).expect("parses");
    check(&objects)
        .into_iter()
        .filter(|f: &Finding| f.rule == "schema")
        .map(|f| f.message)
        .collect()
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27.3
          imagePullPolicy: IfNotPresent
          resources: {requests: {cpu: 0.5, memory: 128Mi}}
          ports: [{containerPort: 80}]
";

#[test]
fn valid_deployment_with_float_quantity_passes() {
    assert_eq!(schema_messages(DEPLOYMENT), Vec::<String>::new());
}

#[rstest]
#[case::nested_typo(
    "imagePullPolicy: IfNotPresent",
    "imagePullPolcy: IfNotPresent",
    "unknown field `spec.template.spec.containers[0].imagePullPolcy`"
)]
#[case::metadata_typo(
    "metadata: {name: web}",
    "metadata: {name: web, lables: {a: b}}",
    "unknown field `metadata.lables`"
)]
#[case::wrong_type("containerPort: 80", "containerPort: eighty", "wrong type at `spec.template.spec.containers[0].ports[0].containerPort`: found a string, expected an integer")]
#[case::missing_required_nested(
    "ports: [{containerPort: 80}]",
    "ports: [{name: http}]",
    "missing required field `spec.template.spec.containers[0].ports[0].containerPort`"
)]
#[case::missing_required_top(
    "  selector: {matchLabels: {app: web}}\n",
    "",
    "missing required field `spec.selector`"
)]
fn deployment_problems_name_the_field(
    #[case] from: &str,
    #[case] to: &str,
    #[case] expected: &str,
) {
    assert!(DEPLOYMENT.contains(from), "fixture drifted: {from}");
    let messages = schema_messages(&DEPLOYMENT.replacen(from, to, 1));
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "expected {expected:?} in {messages:#?}"
    );
}

#[rstest]
#[case(
    "extensions/v1beta1",
    "Ingress",
    "removed in 1.22: use networking.k8s.io/v1"
)]
#[case("networking.k8s.io/v1beta1", "Ingress", "removed in 1.22")]
#[case(
    "autoscaling/v2beta1",
    "HorizontalPodAutoscaler",
    "removed in 1.25: use autoscaling/v2"
)]
#[case(
    "autoscaling/v2beta2",
    "HorizontalPodAutoscaler",
    "removed in 1.26: use autoscaling/v2"
)]
#[case(
    "policy/v1beta1",
    "PodDisruptionBudget",
    "removed in 1.25: use policy/v1"
)]
#[case("apps/v1beta2", "Deployment", "removed in 1.16: use apps/v1")]
#[case("cert-manager.io/v1alpha2", "Certificate", "use cert-manager.io/v1")]
#[case(
    "monitoring.coreos.com/v1alpha1",
    "ServiceMonitor",
    "use monitoring.coreos.com/v1"
)]
fn removed_api_versions(#[case] api_version: &str, #[case] kind: &str, #[case] expected: &str) {
    let yaml =
        format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n");
    let messages = schema_messages(&yaml);
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "{messages:#?}"
    );
}

/// The community Helm chart's mistake: autoscaling/v1 with a v2beta1 body.
#[test]
fn hpa_v1_with_v2_body_is_caught() {
    let yaml = "
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: camunda}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: camunda}
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, targetAverageUtilization: 80}
";
    let messages = schema_messages(yaml);
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unknown field `spec.metrics`")),
        "{messages:#?}"
    );
}

#[rstest]
#[case::service_monitor_typo(
    "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec:\n  selector: {matchLabels: {a: b}}\n  endpoints: [{port: metrics, intervall: 15s}]\n",
    "unknown field `spec.endpoints[0].intervall`"
)]
#[case::service_monitor_missing_selector(
    "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec:\n  endpoints: [{port: metrics}]\n",
    "missing required field `spec.selector`"
)]
#[case::pod_monitor_wrong_type(
    "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: m}\nspec:\n  selector: {}\n  podMetricsEndpoints: [{port: [metrics]}]\n",
    "wrong type at `spec.podMetricsEndpoints[0].port`"
)]
#[case::certificate_missing_secret(
    "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c}\nspec:\n  issuerRef: {name: ca}\n  dnsNames: [a.test]\n",
    "missing required field `spec.secretName`"
)]
#[case::issuer_typo(
    "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: i}\nspec:\n  selfSigned: {}\n  acmee: {}\n",
    "unknown field `spec.acmee`"
)]
#[case::cluster_issuer_ca_without_secret(
    "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: i}\nspec:\n  ca: {}\n",
    "missing required field `spec.ca.secretName`"
)]
fn custom_resources(#[case] yaml: &str, #[case] expected: &str) {
    let messages = schema_messages(yaml);
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "{messages:#?}"
    );
}

/// A kind without a schema is not judged, but never passes silently: a `schema` warning says it
/// was not checked.
#[test]
fn unknown_custom_resources_are_reported_not_checked() {
    let yaml =
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {anything: 1}\n";
    let objects =
        parse_documents(yaml, "test.yaml", Some("test.yaml".to_string())).expect("parses");
    let findings = check(&objects);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].rule, "schema");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(findings[0].message.contains("not checked"), "{findings:#?}");
}

#[rstest]
#[case::external_secret_typo(
    "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: e}\nspec:\n  secretStoreRef: {name: vault, kind: ClusterSecretStore}\n  data: [{secretKey: password, remoteRef: {key: db, propertty: password}}]\n",
    "unknown field `spec.data[0].remoteRef.propertty`"
)]
#[case::sealed_secret_missing_data(
    "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: s}\nspec: {template: {}}\n",
    "missing required field `spec.encryptedData`"
)]
#[case::gateway_wrong_port(
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: eg\n  listeners: [{name: https, port: https, protocol: HTTPS}]\n",
    "wrong type at `spec.listeners[0].port`: found a string, expected an integer"
)]
#[case::http_route_typo(
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{name: camunda, prot: 8080}]}]\n",
    "unknown field `spec.rules[0].backendRefs[0].prot`"
)]
fn commonly_carried_custom_resources(#[case] yaml: &str, #[case] expected: &str) {
    let messages = schema_messages(yaml);
    assert!(
        messages.iter().any(|m| m.contains(expected)),
        "{messages:#?}"
    );
}

/// One schema failure does not cascade: the mistyped Deployment stays in the bundle view, so
/// its Service still finds its pods; a removed-apiVersion Ingress still shows its annotations.
#[rstest]
#[case::string_replicas("replicas: 2", "replicas: \"2\"")]
#[case::string_port("containerPort: 80", "containerPort: eighty")]
fn a_schema_failure_does_not_cascade(#[case] from: &str, #[case] to: &str) {
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n",
        DEPLOYMENT.replace("spec:\n  selector", "spec:\n  replicas: 2\n  selector").replace(from, to)
    );
    let objects =
        parse_documents(&yaml, "test.yaml", Some("test.yaml".to_string())).expect("parses");
    let findings = check(&objects);
    let schema: Vec<&Finding> = findings.iter().filter(|f| f.rule == "schema").collect();
    assert_eq!(schema.len(), 1, "{findings:#?}");
    assert!(
        !findings.iter().any(|f| f.rule == "reference"),
        "{findings:#?}"
    );
}

/// serde quotes offending values; a mistyped Secret value must not end up in the report.
#[test]
fn messages_do_not_echo_values() {
    let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: [hunter2-secret]}\n";
    let messages = schema_messages(yaml);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains("stringData.password"),
        "{}",
        messages[0]
    );
    assert!(!messages[0].contains("hunter2"), "{}", messages[0]);
}

/// A beta Ingress (removed API) is reported once and still read for its routes and
/// annotations: no follow-on "no Ingress with cookie affinity".
#[test]
fn a_removed_ingress_api_does_not_cascade() {
    let yaml = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: camunda, namespace: c}
spec:
  replicas: 2
  selector: {matchLabels: {app: camunda}}
  template:
    metadata: {labels: {app: camunda}}
    spec:
      containers: [{name: camunda, image: camunda/camunda-bpm-platform:7.24.0}]
---
apiVersion: v1
kind: Service
metadata: {name: camunda, namespace: c}
spec:
  selector: {app: camunda}
  ports: [{name: http, port: 8080}]
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: camunda
  namespace: c
  annotations: {nginx.ingress.kubernetes.io/affinity: cookie}
spec:
  rules:
    - host: camunda.test
      http:
        paths: [{path: /, backend: {serviceName: camunda, servicePort: 8080}}]
";
    let objects =
        parse_documents(yaml, "test.yaml", Some("test.yaml".to_string())).expect("parses");
    let findings = check(&objects);
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "schema" && f.message.contains("extensions/v1beta1")),
        "{findings:#?}"
    );
    assert!(
        !findings
            .iter()
            .any(|f| f.rule == "session-strategy" || f.rule == "reference"),
        "{findings:#?}"
    );
}
