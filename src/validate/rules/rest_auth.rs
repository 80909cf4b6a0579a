use k8s_openapi::api::core::v1::Container;

use super::{container_label, spring_property, Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{flavour, image_repository, Flavour, Fork, Workload};
use crate::validate::env::{mounted_files, Env, MountedFile};

pub const RULE: Rule = Rule {
    id: "rest-auth",
    severity: Severity::Error,
    description:
        "engine-rest requires HTTP basic auth, switched on the way the chosen image supports",
    check,
};

/// The pod-template annotation a team puts on a workload whose image name tells nothing: how that
/// image switches REST auth on.
pub const DISTRIBUTION_ANNOTATION: &str = "camunda-conformance.io/distribution";
const DISTRIBUTIONS: &str = "tomcat, run, operaton-run, conformance or in-image";

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        match auth_enabled(bundle, &workload, container) {
            Verdict::On => {}
            Verdict::Off(problem) => out.push(RULE.finding(
                workload.entry,
                format!("{} {problem}", container_label(container)),
            )),
            Verdict::Unknown(problem) => out.push(workload.entry.finding(
                RULE.id,
                Severity::Warning,
                format!("{} {problem}", container_label(container)),
            )),
        }
    }
}

enum Verdict {
    On,
    Off(String),
    /// Nothing tells how the image switches auth on: never assumed on.
    Unknown(String),
}

/// What the pod shows about the distribution inside an image whose name tells nothing.
fn evidence(workload: &Workload, files: &[MountedFile], env: &Env, image: &str) -> Flavour {
    match workload.pod_annotation(DISTRIBUTION_ANNOTATION) {
        Some("tomcat") => return Flavour::Tomcat(Fork::Camunda),
        Some("run") => return Flavour::Run(Fork::Camunda),
        Some("operaton-run") => return Flavour::Run(Fork::Operaton),
        Some("conformance") => return Flavour::Ours,
        _ => {}
    }
    if files.iter().any(|f| f.path.ends_with(WEB_XML)) {
        return Flavour::Tomcat(fork_of_paths(files, image));
    }
    let run_config = files
        .iter()
        .find(|f| f.path.contains("/configuration/") || run_property(f).is_some());
    if let Some(file) = run_config {
        return Flavour::Run(
            if file.path.starts_with("/operaton/") || file.content.contains("operaton:") {
                Fork::Operaton
            } else {
                Fork::Camunda
            },
        );
    }
    // The property set through the environment (Spring's relaxed binding): the image reads it.
    if env.get(OPERATON_VARIABLE).is_some() {
        return Flavour::Run(Fork::Operaton);
    }
    if env.get(CAMUNDA_VARIABLE).is_some() {
        return Flavour::Ours;
    }
    Flavour::Unknown
}

fn fork_of_paths(files: &[MountedFile], image: &str) -> Fork {
    if files.iter().any(|f| f.path.starts_with("/operaton/")) || image.contains("operaton") {
        Fork::Operaton
    } else {
        Fork::Camunda
    }
}

const WEB_XML: &str = "engine-rest/WEB-INF/web.xml";
const CAMUNDA_VARIABLE: &str = "CAMUNDA_BPM_RUN_AUTH_ENABLED";
const OPERATON_VARIABLE: &str = "OPERATON_BPM_RUN_AUTH_ENABLED";

fn auth_enabled(bundle: &Bundle, workload: &Workload, container: &Container) -> Verdict {
    let env = Env::of(bundle, workload, container);
    let files = mounted_files(bundle, workload, container);
    let image = container.image.as_deref().unwrap_or("");
    if workload.pod_annotation(DISTRIBUTION_ANNOTATION) == Some("in-image") {
        // Declared: the image enables the filter itself (the live auth suite proves it).
        return Verdict::On;
    }
    let flavour = match flavour(image) {
        Flavour::Unknown => evidence(workload, &files, &env, image),
        known => known,
    };
    match flavour {
        // Our image: on unless switched off; anything but unset or `true` switches it off.
        Flavour::Ours => match env.value(CAMUNDA_VARIABLE).map(str::trim) {
            None => Verdict::On,
            Some(v) if v.eq_ignore_ascii_case("true") => Verdict::On,
            Some(other) => Verdict::Off(format!(
                "sets {CAMUNDA_VARIABLE}={other}: engine-rest answers without credentials; set it to true or remove it"
            )),
        },
        Flavour::Run(fork) => run_auth(fork, &env, &files),
        Flavour::Tomcat(fork) => {
            let filter_mounted = files.iter().any(|f| {
                f.path.ends_with(WEB_XML)
                    && without_xml_comments(f.content).contains("ProcessEngineAuthenticationFilter")
            });
            if filter_mounted {
                Verdict::On
            } else {
                Verdict::Off(format!(
                    "runs {}'s Tomcat distribution, whose engine-rest web.xml has the ProcessEngineAuthenticationFilter commented out: mount a web.xml with the filter over {}/webapps/{WEB_XML}",
                    fork.name(),
                    fork.home()
                ))
            }
        }
        Flavour::Unknown => Verdict::Unknown(format!(
            "runs image `{}`, and nothing tells how it switches engine-rest basic auth on (no mounted engine-rest web.xml, no Run configuration, no *_BPM_RUN_AUTH_ENABLED): declare it with the pod annotation `{DISTRIBUTION_ANNOTATION}` ({DISTRIBUTIONS})",
            image_repository(image)
        )),
    }
}

/// Run: off unless its auth property is `true` (environment or mounted configuration); CIB
/// seven Run also lets every request in with `authentication: pseudo`.
fn run_auth(fork: Fork, env: &Env, files: &[MountedFile]) -> Verdict {
    let variable = match fork {
        Fork::Operaton => OPERATON_VARIABLE,
        Fork::Camunda | Fork::CibSeven => CAMUNDA_VARIABLE,
    };
    let property = fork.run_auth_property();
    let in_env = env
        .value(variable)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let in_file = files
        .iter()
        .any(|f| spring_property(&f.path, f.content, property).as_deref() == Some("true"));
    if !(in_env || in_file) {
        return Verdict::Off(format!(
            "runs {} Run, whose engine-rest is open by default: set {variable}=true (or {property}: true in a mounted {}/configuration/default.yml)",
            fork.name(),
            fork.home()
        ));
    }
    let method_variable = variable.replace("ENABLED", "AUTHENTICATION");
    let method_property = property.replace("enabled", "authentication");
    let pseudo = env
        .value(&method_variable)
        .map(|v| v.trim().to_ascii_lowercase())
        .or_else(|| {
            files
                .iter()
                .find_map(|f| spring_property(&f.path, f.content, &method_property))
        })
        .is_some_and(|m| m == "pseudo");
    if pseudo {
        return Verdict::Off(format!(
            "sets {method_property} to pseudo, which lets every request in: use basic"
        ));
    }
    Verdict::On
}

/// A Run auth property of either fork set in a mounted file.
fn run_property(file: &MountedFile) -> Option<String> {
    [Fork::Camunda, Fork::Operaton]
        .iter()
        .find_map(|fork| spring_property(&file.path, file.content, fork.run_auth_property()))
}

fn without_xml_comments(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_filter_does_not_count() {
        let xml = "<web-app><!-- <filter><filter-class>org.camunda.bpm.engine.rest.security.auth.ProcessEngineAuthenticationFilter</filter-class></filter> --></web-app>";
        assert!(!without_xml_comments(xml).contains("ProcessEngineAuthenticationFilter"));
    }

    #[test]
    fn spring_yaml_and_properties() {
        let property = "camunda.bpm.run.auth.enabled";
        assert_eq!(
            spring_property(
                "/camunda/configuration/default.yml",
                "camunda:\n  bpm:\n    run:\n      auth:\n        enabled: true\n",
                property
            )
            .as_deref(),
            Some("true")
        );
        assert_eq!(
            spring_property(
                "/x/application.properties",
                "camunda.bpm.run.auth.enabled=true\n",
                property
            )
            .as_deref(),
            Some("true")
        );
        assert_eq!(
            spring_property(
                "/x/application.yaml",
                "camunda: {bpm: {run: {auth: {enabled: false}}}}",
                property
            )
            .as_deref(),
            Some("false")
        );
        assert_eq!(
            spring_property(
                "/operaton/configuration/default.yml",
                "operaton: {bpm: {run: {auth: {enabled: true}}}}",
                "operaton.bpm.run.auth.enabled"
            )
            .as_deref(),
            Some("true")
        );
    }
}
