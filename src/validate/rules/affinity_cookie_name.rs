use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::Entry;
use crate::validate::routes::{
    routes_for, Affinity, Controller, NGINX_COOKIE_NAME, TRAEFIK_COOKIE_NAME,
};

pub const RULE: Rule = Rule {
    id: "affinity-cookie-name",
    severity: Severity::Error,
    description: "the affinity cookie (ingress-nginx, Traefik, Gateway API sessionName) is not named JSESSIONID (Tomcat's session cookie, renewed at login)",
    check,
};

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    let mut seen: Vec<&Entry> = Vec::new();
    for workload in bundle.workloads() {
        for route in routes_for(bundle, &workload) {
            let Affinity::Cookie(Some(name)) = &route.affinity else {
                continue;
            };
            let reported = seen.iter().any(|e| std::ptr::eq(*e, route.entry));
            if !name.eq_ignore_ascii_case("JSESSIONID") || reported {
                continue;
            }
            seen.push(route.entry);
            let setting = match route.controller {
                Controller::Nginx => NGINX_COOKIE_NAME,
                Controller::Traefik => TRAEFIK_COOKIE_NAME,
                Controller::GatewayApi | Controller::Other(_) => "sessionPersistence.sessionName",
            };
            out.push(RULE.finding(
                route.entry,
                format!("{setting} is JSESSIONID, the name of Tomcat's own session cookie: the two overwrite each other; use another name such as INGRESSCOOKIE"),
            ));
        }
    }
}
