use k8s_openapi::api::core::v1::Container;

use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::Workload;
use crate::validate::env::{mounted_files, Env};
use crate::validate::routes::{
    routes_for, Affinity, Controller, NGINX_AFFINITY as AFFINITY,
    NGINX_AFFINITY_MODE as AFFINITY_MODE,
};

pub const RULE: Rule = Rule {
    id: "session-strategy",
    severity: Severity::Error,
    description: "Camunda with more than one replica (or an HPA above one) has cookie affinity on every route to it (ingress-nginx, Traefik, Gateway API sessionPersistence) or a shared session manager",
    check,
};

/// Tomcat session managers that share sessions between replicas, by class name in a mounted
/// configuration file (context.xml).
const TOMCAT_SHARED_MANAGERS: [&str; 3] = [
    "RedissonSessionManager",
    "de.javakaffee.web.msm",
    "MemcachedBackupSessionManager",
];

/// Spring Session's store; `none` keeps sessions in memory.
const SPRING_STORE_TYPE: &str = "spring.session.store-type";
/// Spring Session's Redis settings (Spring Boot 3 picks the store from the classpath, without
/// a store type).
const SPRING_SESSION_REDIS: &str = "spring.session.redis";

/// How the container shares sessions, if it does.
fn shared_sessions(bundle: &Bundle, workload: &Workload, container: &Container) -> Option<String> {
    let env = Env::of(bundle, workload, container);
    if let Some(store) = env
        .value("SESSION_STORE")
        .filter(|s| matches!(s.to_ascii_lowercase().as_str(), "redis" | "memcached"))
    {
        return Some(format!("SESSION_STORE={store}"));
    }
    let files = mounted_files(bundle, workload, container);
    if let Some(file) = files
        .iter()
        .find(|f| TOMCAT_SHARED_MANAGERS.iter().any(|m| f.content.contains(m)))
    {
        return Some(format!("the session manager configured in {}", file.path));
    }
    // The environment overrides the files, as in Spring Boot. The value is read: a store type
    // of `none` is the property present and sessions in memory.
    let store = env
        .value("SPRING_SESSION_STORE_TYPE")
        .map(|v| {
            (
                v.trim().to_ascii_lowercase(),
                "SPRING_SESSION_STORE_TYPE".to_string(),
            )
        })
        .or_else(|| {
            files.iter().find_map(|f| {
                super::spring_property(&f.path, f.content, SPRING_STORE_TYPE)
                    .map(|v| (v, format!("{SPRING_STORE_TYPE} in {}", f.path)))
            })
        });
    match store {
        Some((value, _)) if value.is_empty() || value == "none" => None,
        Some((value, source)) => Some(format!("{source}={value}")),
        None => files
            .iter()
            .find(|f| f.content.contains(SPRING_SESSION_REDIS))
            .map(|f| format!("Spring Session's Redis store configured in {}", f.path)),
    }
}

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (workload, container) in bundle.camunda_workloads() {
        let pods = bundle.max_pods(&workload);
        if pods <= 1 || shared_sessions(bundle, &workload, container).is_some() {
            continue;
        }
        let routes = routes_for(bundle, &workload);
        let without: Vec<&str> = routes
            .iter()
            .filter(|r| r.affinity == Affinity::None)
            .map(|r| r.entry.name())
            .collect();
        if routes.is_empty() || !without.is_empty() {
            let place = if routes.is_empty() {
                "no Ingress or HTTPRoute with cookie affinity routes to it".to_string()
            } else {
                format!("{} has no cookie affinity", without.join(", "))
            };
            out.push(RULE.finding(
                workload.entry,
                format!(
                    "runs up to {pods} replicas with in-memory sessions and {place}: add `{AFFINITY}: cookie` (component sessions-sticky), Traefik's sticky cookie on the Service, or an HTTPRoute sessionPersistence; or share sessions (SESSION_STORE=redis, component sessions-shared-redis)"
                ),
            ));
            continue;
        }
        for route in &routes {
            if let Controller::Other(class) = &route.controller {
                out.push(route.entry.finding(
                    RULE.id,
                    Severity::Warning,
                    format!(
                        "ingress class `{class}` is not understood by validate: whether it pins sessions to a replica is not checked; make sure it has cookie affinity, or share sessions"
                    ),
                ));
            }
        }
        if bundle.hpa_for(&workload).is_some() {
            for route in routes.iter().filter(|r| r.controller == Controller::Nginx) {
                if route.entry.annotation(AFFINITY_MODE) != Some("persistent") {
                    out.push(RULE.finding(
                        route.entry,
                        format!(
                            "sticky sessions with an HPA need `{AFFINITY_MODE}: persistent`: the default `balanced` moves sessions to new replicas when the HPA scales out, logging users out"
                        ),
                    ));
                }
            }
        }
    }
}
