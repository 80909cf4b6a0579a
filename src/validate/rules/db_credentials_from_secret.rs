use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::env::{Env, Source};

pub const RULE: Rule = Rule {
    id: "db-credentials-from-secret",
    severity: Severity::Error,
    description: "passwords (DB_PASSWORD, POSTGRES_PASSWORD, …) come from a Secret, never a literal or a ConfigMap; JDBC URLs carry no password",
    check,
};

const URL_VARIABLES: [&str; 2] = ["DB_URL", "SPRING_DATASOURCE_URL"];

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        for container in workload.containers() {
            let env = Env::of(bundle, &workload, container);
            for var in env.iter() {
                let is_password = var.name.ends_with("PASSWORD");
                let visible = match var.source {
                    Source::Literal => var.value.as_deref().is_some_and(|v| !v.is_empty()),
                    Source::ConfigMap => true,
                    Source::Secret | Source::Field => false,
                };
                if is_password && visible {
                    let origin = if var.source == Source::Literal {
                        "a literal value"
                    } else {
                        "a ConfigMap"
                    };
                    out.push(RULE.finding(
                        workload.entry,
                        format!(
                            "{} takes {} from {origin}: use valueFrom.secretKeyRef (or a *_FILE variable on a mounted Secret)",
                            container_label(container),
                            var.name
                        ),
                    ));
                }
                let url_with_password = URL_VARIABLES.contains(&var.name.as_str())
                    && var
                        .value
                        .as_deref()
                        .is_some_and(|v| v.to_ascii_lowercase().contains("password="));
                if url_with_password {
                    out.push(RULE.finding(
                        workload.entry,
                        format!(
                            "{} has a password inside {}: remove it from the URL and pass DB_PASSWORD from a Secret",
                            container_label(container),
                            var.name
                        ),
                    ));
                }
            }
        }
    }
}
