use super::session_strategy::{has_cookie_affinity, COOKIE_NAME};
use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: "affinity-cookie-name",
    severity: Severity::Error,
    description: "the ingress affinity cookie is not named JSESSIONID (Tomcat's session cookie, renewed at login)",
    check,
};

const TRAEFIK_COOKIE_NAME: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.name";

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, _) in bundle.ingresses() {
        let name = entry.annotation(COOKIE_NAME);
        if has_cookie_affinity(entry) && name.is_some_and(|n| n.eq_ignore_ascii_case("JSESSIONID"))
        {
            out.push(RULE.finding(
                entry,
                format!("{COOKIE_NAME} is JSESSIONID, the name of Tomcat's own session cookie: the two overwrite each other; use another name such as INGRESSCOOKIE"),
            ));
        }
    }
    for (entry, _) in bundle.services() {
        if entry
            .annotation(TRAEFIK_COOKIE_NAME)
            .is_some_and(|n| n.eq_ignore_ascii_case("JSESSIONID"))
        {
            out.push(RULE.finding(
                entry,
                format!("{TRAEFIK_COOKIE_NAME} is JSESSIONID, the name of Tomcat's own session cookie: use another name"),
            ));
        }
    }
}
