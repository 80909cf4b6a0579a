use super::{Bundle, Finding, Rule, Severity};
use crate::validate::bundle::Entry;
use crate::validate::routes::{controller, Controller};
use crate::validate::schema::crds::HttpRoute;
use crate::validate::schema::Typed;
use serde_json::Value;

pub const RULE: Rule = Rule {
    id: "ingress-tls",
    severity: Severity::Error,
    description: "every Ingress host (and every Gateway API route, at its Gateway) is served over TLS with a certificate source (cert-manager annotation, Certificate or Secret) and HTTP redirects to HTTPS",
    check,
};

const ISSUER_ANNOTATIONS: [&str; 2] = ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"];

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for (entry, ingress) in bundle.ingresses() {
        let Some(spec) = &ingress.spec else { continue };
        let tls = spec.tls.as_deref().unwrap_or_default();
        if tls.is_empty() {
            out.push(RULE.finding(
                entry,
                "has no spec.tls: add a tls entry for its hosts and a cert-manager.io/cluster-issuer annotation".to_string(),
            ));
            continue;
        }
        for host in spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.as_deref())
        {
            let covered = tls
                .iter()
                .flat_map(|t| t.hosts.iter().flatten())
                .any(|h| host_matches(h, host));
            if !covered {
                out.push(RULE.finding(
                    entry,
                    format!("host `{host}` is not listed in any spec.tls[].hosts: add it so its certificate covers it"),
                ));
            }
        }
        let issued = ISSUER_ANNOTATIONS
            .iter()
            .any(|a| entry.annotation(a).is_some());
        for (index, item) in tls.iter().enumerate() {
            let Some(secret) = item.secret_name.as_deref() else {
                out.push(RULE.finding(
                    entry,
                    format!("spec.tls[{index}] has no secretName: name the Secret that holds the certificate"),
                ));
                continue;
            };
            if !issued {
                out.extend(tls_secret_problem(bundle, entry, secret));
            }
        }
        let class = spec.ingress_class_name.as_deref();
        if let Some(problem) = redirect_problem(entry, controller(entry, class)) {
            out.push(problem);
        }
    }
    gateways(bundle, out);
}

/// TLS at the Gateway (https://gateway-api.sigs.k8s.io/reference/spec/#listener): each HTTPS
/// listener names a certificate Secret the bundle makes or that must exist (cert-manager's
/// gateway-shim issues it from the Gateway's issuer annotation); a route with backends attached
/// to a plain HTTP listener serves the application unencrypted; an HTTP listener answers with a
/// redirect only when a route with a RequestRedirect filter is attached to it.
fn gateways(bundle: &Bundle, out: &mut Vec<Finding>) {
    let routes: Vec<(&Entry, &HttpRoute)> = bundle.http_routes().collect();
    for (entry, gateway) in bundle.gateways() {
        let issued = ISSUER_ANNOTATIONS
            .iter()
            .any(|a| entry.annotation(a).is_some());
        for listener in &gateway.spec.listeners {
            let attached: Vec<&(&Entry, &HttpRoute)> = routes
                .iter()
                .filter(|(route_entry, route)| attaches(route_entry, route, entry, &listener.name))
                .collect();
            match listener.protocol.as_str() {
                "HTTPS" => {
                    let secrets: Vec<&str> = listener
                        .tls
                        .as_ref()
                        .and_then(|t| t.get("certificateRefs"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|r| {
                            r.get("kind")
                                .and_then(Value::as_str)
                                .is_none_or(|k| k == "Secret")
                        })
                        .filter_map(|r| r.get("name").and_then(Value::as_str))
                        .collect();
                    if secrets.is_empty() {
                        out.push(RULE.finding(
                            entry,
                            format!("HTTPS listener `{}` has no tls.certificateRefs: name the Secret that holds the certificate", listener.name),
                        ));
                    }
                    if !issued {
                        for secret in secrets {
                            out.extend(tls_secret_problem(bundle, entry, secret));
                        }
                    }
                }
                "HTTP" => {
                    for (route_entry, _) in attached.iter().filter(|(_, r)| !redirects_only(r)) {
                        out.push(RULE.finding(
                            route_entry,
                            format!("is attached to plain HTTP listener `{}` of Gateway `{}` with backends: the application is served unencrypted; attach it to the HTTPS listener (parentRefs sectionName) and answer HTTP with a RequestRedirect route", listener.name, entry.name()),
                        ));
                    }
                    if !attached.iter().any(|(_, r)| redirects_only(r)) {
                        out.push(RULE.finding(
                            entry,
                            format!("plain HTTP listener `{}` has no HTTPRoute redirecting to HTTPS: add one whose rules have a RequestRedirect filter with scheme https", listener.name),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether `route` attaches to listener `listener` of `gateway` (a parentRef naming the Gateway,
/// with that sectionName or none).
fn attaches(route_entry: &Entry, route: &HttpRoute, gateway: &Entry, listener: &str) -> bool {
    route.spec.parent_refs.iter().flatten().any(|p| {
        p.kind.as_deref().is_none_or(|k| k == "Gateway")
            && p.name == gateway.name()
            && p.namespace
                .as_deref()
                .map_or(route_entry.same_namespace(gateway), |n| {
                    Some(n) == gateway.namespace.as_deref()
                })
            && p.section_name.as_deref().is_none_or(|s| s == listener)
    })
}

/// Every rule of the route answers with a redirect to https (and sends nowhere).
fn redirects_only(route: &HttpRoute) -> bool {
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    !rules.is_empty()
        && rules.iter().all(|rule| {
            rule.backend_refs.as_ref().is_none_or(Vec::is_empty)
                && rule.filters.iter().flatten().any(|f| {
                    f.pointer("/requestRedirect/scheme").and_then(Value::as_str) == Some("https")
                })
        })
}

/// Whether the bundle makes TLS Secret `secret` for `entry`: a Certificate, an ExternalSecret or
/// SealedSecret, or a Secret object of type `kubernetes.io/tls`. A Secret the bundle does not
/// make may come from elsewhere (a platform team, a wildcard certificate, a reflector): like any
/// out-of-band Secret (rule `reference`) a warning that it must exist before rollout.
fn tls_secret_problem(bundle: &Bundle, entry: &Entry, secret: &str) -> Option<Finding> {
    let object = bundle
        .named("Secret", secret, entry)
        .into_iter()
        .find_map(|e| match &e.typed {
            Typed::Secret(s) => Some(s.type_.as_deref().unwrap_or("Opaque")),
            _ => None,
        });
    match object {
        Some("kubernetes.io/tls") => None,
        Some(other) => Some(RULE.finding(
            entry,
            format!("TLS Secret `{secret}` is a Secret of type {other} in the bundle: a certificate Secret has type kubernetes.io/tls (keys tls.crt and tls.key)"),
        )),
        None if bundle.provides_secret(entry, secret) => None,
        None => Some(entry.finding(
            RULE.id,
            Severity::Warning,
            format!("TLS Secret `{secret}` is not created by the bundle: it must exist in the cluster before rollout (or add a cert-manager.io/cluster-issuer annotation or a Certificate with secretName `{secret}`)"),
        )),
    }
}

const NGINX_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const TRAEFIK_ENTRYPOINTS: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
const TRAEFIK_MIDDLEWARES: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// Whether plain HTTP redirects to HTTPS, in the terms of the Ingress's controller.
fn redirect_problem(entry: &Entry, controller: Controller) -> Option<Finding> {
    match controller {
        Controller::Nginx => (entry.annotation(NGINX_REDIRECT) == Some("false")).then(|| {
            RULE.finding(
                entry,
                format!("{NGINX_REDIRECT}: \"false\" serves the application over plain HTTP: remove the annotation so HTTP redirects to HTTPS"),
            )
        }),
        Controller::Traefik => {
            let plain = entry
                .annotation(TRAEFIK_ENTRYPOINTS)
                .is_some_and(|e| e.split(',').any(|p| p.trim() == "web"));
            (plain && entry.annotation(TRAEFIK_MIDDLEWARES).is_none()).then(|| {
                RULE.finding(
                    entry,
                    format!("{TRAEFIK_ENTRYPOINTS} includes `web` (plain HTTP) with no {TRAEFIK_MIDDLEWARES}: add a redirectScheme middleware or serve on `websecure` only"),
                )
            })
        }
        Controller::GatewayApi => None,
        Controller::Other(class) => Some(entry.finding(
            RULE.id,
            Severity::Warning,
            format!("ingress class `{class}` is not understood by validate: whether HTTP redirects to HTTPS is not checked; make sure it does"),
        )),
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => pattern == host,
    }
}
