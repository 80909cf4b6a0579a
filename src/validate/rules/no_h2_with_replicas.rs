use super::{Bundle, Finding, Rule, Severity};
use crate::validate::env::Env;

pub const RULE: Rule = Rule {
    id: "no-h2-with-replicas",
    severity: Severity::Error,
    description: "Camunda with more than one replica (or an HPA above one) uses a shared database, not the embedded H2 of an empty DB_URL",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        let pods = bundle.max_pods(&workload);
        if pods <= 1 {
            continue;
        }
        let env = Env::of(bundle, &workload, container);
        let url = env
            .get("DB_URL")
            .or_else(|| env.get("SPRING_DATASOURCE_URL"));
        let h2_url = match url {
            // Unset: the image falls back to H2.
            None => Some("DB_URL is not set"),
            Some(var) => match var.value.as_deref().map(str::trim) {
                Some("") => Some("DB_URL is empty"),
                Some(v) if v.starts_with("jdbc:h2") => Some("DB_URL is an H2 URL"),
                _ => None,
            },
        };
        let h2_driver = env.value("DB_DRIVER") == Some("org.h2.Driver");
        let reason = h2_url.or(h2_driver.then_some("DB_DRIVER is org.h2.Driver"));
        if let Some(reason) = reason {
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "runs up to {pods} replicas on the embedded H2 database ({reason}): every replica would have its own engine; set DB_URL (and DB_DRIVER) to the shared PostgreSQL"
                ),
            ));
        }
    }
}
