use k8s_openapi::api::core::v1::Container;
use serde_json::Value;

use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::bundle::{flavour, Flavour, Workload};
use crate::validate::env::{mounted_files, Env};

pub const RULE: Rule = Rule {
    id: "rest-auth",
    severity: Severity::Error,
    description:
        "engine-rest requires HTTP basic auth, switched on the way the chosen image supports",
    check,
};

const AUTH_VARIABLE: &str = "CAMUNDA_BPM_RUN_AUTH_ENABLED";

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        if let Err(problem) = auth_enabled(bundle, &workload, container) {
            out.push(RULE.finding(
                workload.entry,
                format!("{} {problem}", container_label(container)),
            ));
        }
    }
}

fn auth_enabled(bundle: &Bundle, workload: &Workload, container: &Container) -> Result<(), String> {
    let env = Env::of(bundle, workload, container);
    let switch = env
        .value(AUTH_VARIABLE)
        .map(|v| v.trim().to_ascii_lowercase());
    match container
        .image
        .as_deref()
        .map(flavour)
        .unwrap_or(Flavour::Ours)
    {
        // Spring Boot builds following our image contract: on unless switched off.
        Flavour::Ours => match switch.as_deref() {
            Some("false") => Err(format!(
                "sets {AUTH_VARIABLE}=false: engine-rest answers without credentials; remove it"
            )),
            _ => Ok(()),
        },
        Flavour::Run => {
            let in_env = switch.as_deref() == Some("true");
            let in_file = mounted_files(bundle, workload, container)
                .iter()
                .any(|f| run_config_enables_auth(&f.path, f.content));
            if in_env || in_file {
                Ok(())
            } else {
                Err(format!(
                    "runs Camunda Run, whose engine-rest is open by default: set {AUTH_VARIABLE}=true (or camunda.bpm.run.auth.enabled: true in a mounted application.yaml)"
                ))
            }
        }
        Flavour::OfficialTomcat => {
            let filter_mounted = mounted_files(bundle, workload, container).iter().any(|f| {
                f.path.ends_with("engine-rest/WEB-INF/web.xml")
                    && without_xml_comments(f.content).contains("ProcessEngineAuthenticationFilter")
            });
            if filter_mounted {
                Ok(())
            } else {
                Err("runs the official Tomcat image, whose engine-rest web.xml has the ProcessEngineAuthenticationFilter commented out: mount a web.xml with the filter over /camunda/webapps/engine-rest/WEB-INF/web.xml".to_string())
            }
        }
    }
}

fn run_config_enables_auth(path: &str, content: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".properties") {
        return content.lines().any(|line| {
            line.split_once(['=', ':']).is_some_and(|(k, v)| {
                k.trim() == "camunda.bpm.run.auth.enabled" && v.trim() == "true"
            })
        });
    }
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return false;
    }
    let Ok(config) = serde_yaml::from_str::<Value>(content) else {
        return false;
    };
    let enabled = config
        .pointer("/camunda/bpm/run/auth/enabled")
        .or_else(|| config.get("camunda.bpm.run.auth.enabled"));
    matches!(enabled, Some(Value::Bool(true))) || enabled.and_then(Value::as_str) == Some("true")
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
    fn run_yaml_and_properties() {
        assert!(run_config_enables_auth(
            "/camunda/configuration/default.yml",
            "camunda:\n  bpm:\n    run:\n      auth:\n        enabled: true\n"
        ));
        assert!(run_config_enables_auth(
            "/x/application.properties",
            "camunda.bpm.run.auth.enabled=true\n"
        ));
        assert!(!run_config_enables_auth(
            "/x/application.yaml",
            "camunda: {bpm: {run: {auth: {enabled: false}}}}"
        ));
    }
}
