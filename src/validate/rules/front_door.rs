//! Rule `front-door` (`validate --front-door ingress-nginx|traefik|gateway-api`): what moving the
//! bundle to that front door loses. Each table below is taken from the front door's own source
//! or documentation at the version named beside it; what an annotation did is ingress-nginx's
//! meaning of it (https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/).

use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::Entry;
use crate::validate::routes::{ingress_controller, Controller};

pub const RULE: Rule = Rule {
    id: "front-door",
    severity: Severity::Error,
    description: "with --front-door ingress-nginx|traefik|gateway-api: every annotation and setting the chosen front door ignores or reads differently, as what the team loses (stickiness, the cookie's name, a redirect, an auth gate)",
    check,
};

/// The front door the bundle is to be served by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrontDoor {
    /// ingress-nginx (retired in March 2026; its last release controller-v1.15.1).
    IngressNginx,
    /// Traefik v3.6 with its ingress-nginx provider reading the Ingresses as written.
    Traefik,
    /// Gateway API routes, the Ingresses converted by ingress2gateway v1.1.0.
    GatewayApi,
}

const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";
const TRAEFIK_PREFIX: &str = "traefik.ingress.kubernetes.io/";

/// The ingress-nginx annotations Traefik's ingress-nginx provider reads: the fields of its
/// `ingressConfig`, https://github.com/traefik/traefik/blob/v3.6.25/pkg/provider/kubernetes/ingress-nginx/annotations.go
/// (the version `cargo xtask e2e --backend node` runs); every other one is ignored, as its
/// documentation says (docs/content/reference/routing-configuration/kubernetes/ingress-nginx.md
/// at v3.6.25, "Unsupported Annotations" and "Not implemented; silently ignored").
const TRAEFIK_READS: [&str; 30] = [
    "auth-type",
    "auth-secret",
    "auth-realm",
    "auth-secret-type",
    "auth-url",
    "auth-response-headers",
    "force-ssl-redirect",
    "ssl-redirect",
    "ssl-passthrough",
    "use-regex",
    "affinity",
    "session-cookie-name",
    "session-cookie-secure",
    "session-cookie-path",
    "session-cookie-domain",
    "session-cookie-samesite",
    "session-cookie-max-age",
    "service-upstream",
    "backend-protocol",
    "proxy-ssl-secret",
    "proxy-ssl-verify",
    "proxy-ssl-name",
    "proxy-ssl-server-name",
    "enable-cors",
    "cors-allow-credentials",
    "cors-expose-headers",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-max-age",
];

/// The ingress-nginx annotations ingress2gateway v1.1.0 converts into Gateway API resources
/// with its standard emitter: `parsedAnnotations` of
/// https://github.com/kubernetes-sigs/ingress2gateway/blob/v1.1.0/pkg/i2gw/providers/ingressnginx/annotations.go
/// less the ones its README marks "Recognized but not converted" (canary-by-header-pattern,
/// canary-by-cookie, proxy-redirect-from/-to, custom-headers, proxy-ssl-verify-depth,
/// proxy-ssl-protocols) and `affinity` / `session-cookie-expires`, which session_affinity.go
/// passes on as "Session affinity is not supported" (the standard emitter logs it and drops
/// it). Any other annotation gets only its "Unsupported annotation" warning (converter.go).
const INGRESS2GATEWAY_CONVERTS: [&str; 33] = [
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "rewrite-target",
    "app-root",
    "permanent-redirect",
    "permanent-redirect-code",
    "temporal-redirect",
    "temporal-redirect-code",
    "x-forwarded-prefix",
    "upstream-vhost",
    "connection-proxy-header",
    "proxy-connect-timeout",
    "proxy-send-timeout",
    "proxy-read-timeout",
    "proxy-body-size",
    "client-body-buffer-size",
    "backend-protocol",
    "use-regex",
    "ssl-redirect",
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-credentials",
    "cors-expose-headers",
    "cors-max-age",
    "whitelist-source-range",
    "denylist-source-range",
    "proxy-ssl-verify",
    "ssl-passthrough",
];

/// What an ingress-nginx annotation did, so what a front door that does not read it loses.
/// From ingress-nginx's annotation reference
/// (https://kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/annotations/,
/// the anchor beside each entry); an annotation not listed loses "what it configured", a warning.
const LOSSES: &[(&str, Severity, &str)] = &[
    // #session-affinity
    ("affinity", Severity::Error, "cookie affinity (stickiness): with several replicas and in-memory sessions a user is logged out whenever a request lands on another replica"),
    ("session-cookie-name", Severity::Error, "the affinity cookie's name (the default becomes INGRESSCOOKIE or the front door's own): clients and checks that look for the cookie by name, and keeping it apart from Tomcat's JSESSIONID"),
    ("upstream-hash-by", Severity::Error, "consistent hashing of each client to one replica (stickiness): with in-memory sessions users are logged out"),
    ("affinity-mode", Severity::Warning, "the affinity mode: sessions are kept on their replica (persistent), never rebalanced when the HPA scales out"),
    ("session-cookie-path", Severity::Warning, "the affinity cookie's Path attribute"),
    ("session-cookie-secure", Severity::Warning, "the affinity cookie's Secure attribute"),
    ("session-cookie-samesite", Severity::Warning, "the affinity cookie's SameSite attribute"),
    ("session-cookie-domain", Severity::Warning, "the affinity cookie's Domain attribute"),
    ("session-cookie-max-age", Severity::Warning, "the affinity cookie's lifetime (Max-Age)"),
    ("session-cookie-expires", Severity::Warning, "the affinity cookie's lifetime (Expires): it lasts only as long as the browser session"),
    ("session-cookie-change-on-failure", Severity::Warning, "a new affinity cookie when the pinned replica fails"),
    ("session-cookie-conditional-samesite-none", Severity::Warning, "SameSite=None only for browsers that support it"),
    ("affinity-canary-behavior", Severity::Warning, "how canaries honour affinity"),
    ("load-balance", Severity::Warning, "the balancing algorithm (round robin instead)"),
    // #authentication, #external-authentication
    ("auth-type", Severity::Error, "the basic/digest auth gate in front of the application: it is reachable without those credentials"),
    ("auth-secret", Severity::Error, "the basic/digest auth gate's users: the gate is gone"),
    ("auth-url", Severity::Error, "the external auth gate: requests reach the application without passing the auth service"),
    ("auth-signin", Severity::Error, "the redirect of unauthenticated users to the sign-in page: they get a bare 401 instead"),
    ("auth-tls-secret", Severity::Error, "client-certificate (mTLS) verification: clients without a certificate get in"),
    ("auth-tls-verify-client", Severity::Error, "client-certificate (mTLS) verification: clients without a certificate get in"),
    ("auth-realm", Severity::Warning, "the basic auth realm shown to users"),
    ("auth-response-headers", Severity::Warning, "the headers the auth service passes to the application (user identity)"),
    ("auth-snippet", Severity::Warning, "custom configuration of the external auth request"),
    ("auth-method", Severity::Warning, "the HTTP method of the external auth request"),
    ("auth-cache-key", Severity::Warning, "caching of external auth answers: every request asks the auth service"),
    ("auth-tls-match-cn", Severity::Warning, "the allowed client-certificate subjects"),
    ("enable-global-auth", Severity::Warning, "the opt-out of the controller-wide auth gate"),
    // #server-side-https-enforcement-through-redirect, #permanent-redirect, #app-root
    ("force-ssl-redirect", Severity::Error, "the redirect of plain HTTP to HTTPS: the application answers over plain HTTP"),
    ("ssl-redirect", Severity::Error, "the choice of redirecting plain HTTP to HTTPS"),
    ("permanent-redirect", Severity::Error, "the permanent redirect: requests reach the backend instead"),
    ("temporal-redirect", Severity::Error, "the temporary redirect: requests reach the backend instead"),
    ("app-root", Severity::Error, "the redirect of `/` to the application's root (e.g. /camunda/app/)"),
    ("from-to-www-redirect", Severity::Error, "the redirect between www. and the bare host"),
    // #whitelist-source-range, #denylist-source-range
    ("whitelist-source-range", Severity::Error, "the source-address allow list: the application is reachable from anywhere"),
    ("denylist-source-range", Severity::Error, "the source-address deny list: denied addresses get in"),
    // #rewrite
    ("rewrite-target", Severity::Error, "the path rewrite: requests reach Camunda under the unrewritten path (404s)"),
    // #custom-max-body-size, #custom-timeouts, #rate-limiting, #configuration-snippet
    ("proxy-body-size", Severity::Warning, "the request body limit (BPMN deployments and uploads)"),
    ("proxy-read-timeout", Severity::Warning, "the upstream read timeout (long REST calls)"),
    ("proxy-send-timeout", Severity::Warning, "the upstream send timeout"),
    ("proxy-connect-timeout", Severity::Warning, "the upstream connect timeout"),
    ("limit-rps", Severity::Warning, "the rate limit"),
    ("limit-connections", Severity::Warning, "the connection limit"),
    ("configuration-snippet", Severity::Warning, "custom nginx configuration"),
    ("server-snippet", Severity::Warning, "custom nginx configuration"),
];

/// Traefik annotations ingress-nginx does not read: it reads `nginx.ingress.kubernetes.io/*`
/// only (its `--annotations-prefix`,
/// https://kubernetes.github.io/ingress-nginx/user-guide/cli-arguments/), on Ingresses of its
/// own class.
const TRAEFIK_LOSSES: &[(&str, Severity, &str)] = &[
    // https://doc.traefik.io/traefik/v3.6/reference/routing-configuration/kubernetes/ingress/
    ("service.sticky.cookie", Severity::Error, "Traefik's sticky cookie (stickiness): with several replicas and in-memory sessions users are logged out"),
    ("service.sticky.cookie.name", Severity::Error, "the sticky cookie's name"),
    ("router.middlewares", Severity::Error, "the Traefik middlewares of the route (redirects, auth, headers)"),
];

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    let Some(door) = bundle.front_door else {
        return;
    };
    match door {
        FrontDoor::IngressNginx => to_ingress_nginx(bundle, out),
        FrontDoor::Traefik => from_nginx_annotations(bundle, door, out),
        FrontDoor::GatewayApi => {
            from_nginx_annotations(bundle, door, out);
            session_persistence(bundle, out);
        }
    }
}

/// The loss of an annotation (`name` without its prefix) from `table`, or the default.
fn loss(table: &[(&str, Severity, &'static str)], name: &str) -> (Severity, &'static str) {
    table
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or((Severity::Warning, "what it configured"), |(_, s, l)| {
            (*s, *l)
        })
}

/// The ingress-nginx annotations of each Ingress ingress-nginx would serve that the new front
/// door does not read (or reads otherwise).
fn from_nginx_annotations(bundle: &Bundle, door: FrontDoor, out: &mut Vec<Finding>) {
    for (entry, ingress) in bundle.ingresses() {
        if ingress_controller(entry, ingress) != Controller::Nginx {
            continue;
        }
        for (key, value) in entry.annotations() {
            let Some(name) = key.strip_prefix(NGINX_PREFIX) else {
                continue;
            };
            let (severity, message) = match door {
                FrontDoor::Traefik if name == "affinity-mode" => {
                    if value == "persistent" {
                        continue;
                    }
                    (
                        Severity::Warning,
                        format!("`{key}: {value}` is ignored by Traefik v3.6's ingress-nginx provider (only persistent mode is supported): sessions stay on their replica and are never rebalanced when the HPA scales out"),
                    )
                }
                FrontDoor::Traefik if name == "auth-url" => (
                    Severity::Warning,
                    format!("`{key}` is read differently by Traefik v3.6's ingress-nginx provider: forward auth sends the original request (not an nginx sub-request) and caches nothing; make sure the auth service answers it"),
                ),
                FrontDoor::Traefik if TRAEFIK_READS.contains(&name) => continue,
                FrontDoor::GatewayApi if INGRESS2GATEWAY_CONVERTS.contains(&name) => continue,
                FrontDoor::Traefik => {
                    let (severity, lost) = loss(LOSSES, name);
                    (
                        severity,
                        format!("`{key}` is ignored by Traefik v3.6's ingress-nginx provider: the team loses {lost}"),
                    )
                }
                FrontDoor::GatewayApi => {
                    let (severity, lost) = loss(LOSSES, name);
                    (
                        severity,
                        format!("`{key}` is dropped by ingress2gateway v1.1.0 with only a warning: the team loses {lost}; carry it over by hand (HTTPRoute filter, sessionPersistence, the implementation's policy)"),
                    )
                }
                FrontDoor::IngressNginx => continue,
            };
            out.push(entry.finding(RULE.id, severity, message));
        }
    }
}

/// GEP-1619 session persistence is in the experimental channel and of Extended support
/// (https://github.com/kubernetes-sigs/gateway-api/blob/v1.4.0/apis/v1/httproute_types.go,
/// `SessionPersistence`: `Support: Extended`, `<gateway:experimental>`): the standard-channel
/// CRDs prune it and an implementation without it (Traefik v3.6) ignores it.
fn session_persistence(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, route) in bundle.http_routes() {
        let sticky = route
            .spec
            .rules
            .iter()
            .flatten()
            .any(|r| r.session_persistence.is_some());
        if sticky {
            out.push(entry.finding(
                RULE.id,
                Severity::Warning,
                "relies on sessionPersistence (GEP-1619) for stickiness: it is experimental-channel and Extended support in Gateway API v1.4, so the standard-channel CRDs drop it and a Gateway implementation without it (Traefik v3.6) ignores it; install the experimental CRDs and check your implementation supports it, or share sessions".to_string(),
            ));
        }
    }
}

/// What ingress-nginx does not serve: Traefik annotations, Ingresses of another class, Gateway
/// API routes (it is an Ingress controller only, https://github.com/kubernetes/ingress-nginx).
fn to_ingress_nginx(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, ingress) in bundle.ingresses() {
        if let Controller::Traefik = ingress_controller(entry, ingress) {
            out.push(entry.finding(
                RULE.id,
                Severity::Error,
                "has ingress class traefik: ingress-nginx serves only Ingresses of its own class, so this route is lost; set ingressClassName: nginx".to_string(),
            ));
        }
        traefik_annotations(entry, out);
    }
    // Traefik reads stickiness from the backend Service.
    for backend in bundle.ingress_backends() {
        if let Some((service, _)) = bundle.service_named(backend.entry, backend.service) {
            traefik_annotations(service, out);
        }
    }
    for entry in &bundle.entries {
        if matches!(entry.kind.as_str(), "HTTPRoute" | "Gateway") {
            out.push(entry.finding(
                RULE.id,
                Severity::Error,
                format!("is a Gateway API {}: ingress-nginx implements Ingress only, so nothing serves it; route through an Ingress", entry.kind),
            ));
        }
    }
}

fn traefik_annotations(entry: &Entry, out: &mut Vec<Finding>) {
    for (key, _) in entry.annotations() {
        let Some(name) = key.strip_prefix(TRAEFIK_PREFIX) else {
            continue;
        };
        let (severity, lost) = loss(TRAEFIK_LOSSES, name);
        let finding = entry.finding(
            RULE.id,
            severity,
            format!("`{key}` is ignored by ingress-nginx (it reads nginx.ingress.kubernetes.io/* only): the team loses {lost}"),
        );
        if !out.contains(&finding) {
            out.push(finding);
        }
    }
}
