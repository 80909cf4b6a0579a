//! Routes other than ingress-nginx: Gateway API HTTPRoute session persistence, Traefik's sticky
//! cookie, and an ingress class validate does not know (said plainly, never passed as sticky).

use camunda_conformance::validate::input::parse_documents;
use camunda_conformance::validate::{check, Finding, Severity};
use rstest::rstest;

const STACK: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: camunda, namespace: c}
spec:
  replicas: 2
  selector: {matchLabels: {app: camunda}}
  template:
    metadata: {labels: {app: camunda}}
    spec:
      containers: [{name: camunda, image: camunda-conformance/camunda:7.24.0}]
---
apiVersion: v1
kind: Service
metadata: {name: camunda, namespace: c, annotations: {SERVICE_ANNOTATIONS}}
spec:
  selector: {app: camunda}
  ports: [{name: http, port: 8080}]
---
";

const HTTP_ROUTE: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: camunda, namespace: c}
spec:
  parentRefs: [{name: gateway}]
  rules:
    - backendRefs: [{name: camunda, port: 8080}]
      PERSISTENCE
";

fn ingress(class: &str, annotations: &str) -> String {
    format!(
        "
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: camunda, namespace: c, annotations: {{{annotations}}}}}
spec:
  ingressClassName: {class}
  tls: [{{hosts: [camunda.test], secretName: camunda-tls}}]
  rules:
    - host: camunda.test
      http:
        paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: camunda, port: {{name: http}}}}}}}}]
"
    )
}

fn findings(service_annotations: &str, route: &str) -> Vec<Finding> {
    let yaml = STACK.replace("SERVICE_ANNOTATIONS", service_annotations) + route;
    let objects = parse_documents(&yaml, "test.yaml", Some("test.yaml".into())).expect("parses");
    check(&objects)
        .into_iter()
        .filter(|f| {
            matches!(
                f.rule,
                "session-strategy" | "affinity-cookie-name" | "ingress-tls"
            )
        })
        .collect()
}

fn http_route(persistence: &str) -> String {
    HTTP_ROUTE.replace("PERSISTENCE", persistence)
}

#[rstest]
#[case::http_route_without_persistence("", &http_route(""), "session-strategy", Severity::Error, "HTTPRoute")]
#[case::http_route_jsessionid("", &http_route("sessionPersistence: {sessionName: JSESSIONID, type: Cookie}"), "affinity-cookie-name", Severity::Error, "sessionPersistence.sessionName")]
#[case::traefik_without_sticky("", &ingress("traefik", "cert-manager.io/cluster-issuer: ca"), "session-strategy", Severity::Error, "no cookie affinity")]
#[case::traefik_plain_http("traefik.ingress.kubernetes.io/service.sticky.cookie: 'true'", &ingress("traefik", "cert-manager.io/cluster-issuer: ca, traefik.ingress.kubernetes.io/router.entrypoints: 'web,websecure'"), "ingress-tls", Severity::Error, "redirectScheme")]
#[case::unknown_class_sessions("", &ingress("haproxy", "cert-manager.io/cluster-issuer: ca"), "session-strategy", Severity::Warning, "`haproxy` is not understood")]
#[case::unknown_class_redirect("", &ingress("haproxy", "cert-manager.io/cluster-issuer: ca"), "ingress-tls", Severity::Warning, "`haproxy` is not understood")]
fn routes_are_judged_in_their_controllers_terms(
    #[case] service_annotations: &str,
    #[case] route: &str,
    #[case] rule: &str,
    #[case] severity: Severity,
    #[case] says: &str,
) {
    let findings = findings(service_annotations, route);
    let fired: Vec<&Finding> = findings.iter().filter(|f| f.rule == rule).collect();
    assert_eq!(fired.len(), 1, "{findings:#?}");
    assert_eq!(fired[0].severity, severity, "{findings:#?}");
    assert!(fired[0].message.contains(says), "{findings:#?}");
}

#[rstest]
#[case::http_route_sticky("", &http_route("sessionPersistence: {sessionName: CAMUNDA_ROUTE, type: Cookie}"))]
#[case::traefik_sticky("traefik.ingress.kubernetes.io/service.sticky.cookie: 'true'", &ingress("traefik", "cert-manager.io/cluster-issuer: ca, traefik.ingress.kubernetes.io/router.entrypoints: websecure"))]
fn sticky_routes_pass(#[case] service_annotations: &str, #[case] route: &str) {
    let findings = findings(service_annotations, route);
    assert!(findings.is_empty(), "{findings:#?}");
}
