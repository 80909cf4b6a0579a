//! `rest-auth` decides the image's flavour from evidence and never assumes auth on: official
//! images of Camunda 7, Operaton and CIB seven by name; a team's own image from a mounted
//! engine-rest web.xml, a Run configuration, the Run auth variable, or a declaration.

use camunda_conformance::validate::input::parse_documents;
use camunda_conformance::validate::{check, Finding, Severity};
use rstest::rstest;

fn deployment(image: &str, annotations: &str, env: &str, extra: &str) -> String {
    format!(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {{name: camunda, namespace: c}}
spec:
  selector: {{matchLabels: {{app: camunda}}}}
  template:
    metadata: {{labels: {{app: camunda}}, annotations: {{{annotations}}}}}
    spec:
      containers:
        - name: camunda
          image: {image}
          env: [{env}]
          volumeMounts: [{{name: config, mountPath: /mnt/config}}]
      volumes: [{{name: config, configMap: {{name: config}}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: config, namespace: c}}
data: {{{extra}}}
"
    )
}

fn rest_auth(yaml: &str) -> Vec<Finding> {
    let objects = parse_documents(yaml, "test.yaml", Some("test.yaml".into())).expect("parses");
    check(&objects)
        .into_iter()
        .filter(|f| f.rule == "rest-auth")
        .collect()
}

#[rstest]
#[case::team_image_no_evidence(
    "registry.example.com/team/camunda:1",
    "",
    "",
    "",
    Severity::Warning,
    "camunda-conformance.io/distribution"
)]
#[case::team_image_switched_off_with_0(
    "registry.example.com/team/camunda:1",
    "",
    "{name: CAMUNDA_BPM_RUN_AUTH_ENABLED, value: '0'}",
    "",
    Severity::Error,
    "CAMUNDA_BPM_RUN_AUTH_ENABLED=0"
)]
#[case::our_image_switched_off_with_no(
    "camunda-conformance/camunda:7.24.0",
    "",
    "{name: CAMUNDA_BPM_RUN_AUTH_ENABLED, value: 'no'}",
    "",
    Severity::Error,
    "CAMUNDA_BPM_RUN_AUTH_ENABLED=no"
)]
#[case::team_image_declared_tomcat(
    "registry.example.com/team/camunda:1",
    "camunda-conformance.io/distribution: tomcat",
    "",
    "",
    Severity::Error,
    "ProcessEngineAuthenticationFilter"
)]
#[case::team_image_with_run_configuration(
    "registry.example.com/team/camunda:1",
    "",
    "",
    "default.yml: 'camunda: {bpm: {run: {auth: {enabled: false}}}}'",
    Severity::Error,
    "camunda.bpm.run.auth.enabled"
)]
#[case::operaton_run_default(
    "operaton/operaton:1.0.0",
    "",
    "",
    "",
    Severity::Error,
    "OPERATON_BPM_RUN_AUTH_ENABLED=true"
)]
#[case::operaton_tomcat(
    "operaton/tomcat:1.0.0",
    "",
    "",
    "",
    Severity::Error,
    "/operaton/webapps/engine-rest/WEB-INF/web.xml"
)]
#[case::cibseven_pseudo("cibseven/cibseven:run-2.0.0", "", "{name: CAMUNDA_BPM_RUN_AUTH_ENABLED, value: 'true'}, {name: CAMUNDA_BPM_RUN_AUTH_AUTHENTICATION, value: pseudo}", "", Severity::Error, "pseudo")]
fn auth_is_never_assumed_on(
    #[case] image: &str,
    #[case] annotations: &str,
    #[case] env: &str,
    #[case] files: &str,
    #[case] severity: Severity,
    #[case] says: &str,
) {
    let findings = rest_auth(&deployment(image, annotations, env, files));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, severity, "{findings:#?}");
    assert!(findings[0].message.contains(says), "{findings:#?}");
}

#[rstest]
#[case::team_image_env_true(
    "registry.example.com/team/camunda:1",
    "",
    "{name: CAMUNDA_BPM_RUN_AUTH_ENABLED, value: 'true'}",
    ""
)]
#[case::team_image_declared_in_image(
    "registry.example.com/team/camunda:1",
    "camunda-conformance.io/distribution: in-image",
    "",
    ""
)]
#[case::operaton_run_on(
    "operaton/operaton:1.0.0",
    "",
    "{name: OPERATON_BPM_RUN_AUTH_ENABLED, value: 'true'}",
    ""
)]
#[case::operaton_run_config_on(
    "operaton/operaton:1.0.0",
    "",
    "",
    "application.yml: 'operaton: {bpm: {run: {auth: {enabled: true}}}}'"
)]
#[case::cibseven_basic("cibseven/cibseven:run-2.0.0", "", "{name: CAMUNDA_BPM_RUN_AUTH_ENABLED, value: 'true'}, {name: CAMUNDA_BPM_RUN_AUTH_AUTHENTICATION, value: basic}", "")]
#[case::our_image_default("camunda-conformance/camunda:7.24.0", "", "", "")]
fn auth_on_passes(
    #[case] image: &str,
    #[case] annotations: &str,
    #[case] env: &str,
    #[case] files: &str,
) {
    let findings = rest_auth(&deployment(image, annotations, env, files));
    assert!(findings.is_empty(), "{findings:#?}");
}
