//! How traffic reaches a workload and whether it sticks to one replica: Ingresses (ingress-nginx
//! and Traefik understood, any other controller said to be not understood) and Gateway API
//! HTTPRoutes (`sessionPersistence`).

use super::bundle::{Bundle, Entry, Workload};
use k8s_openapi::api::networking::v1::Ingress;

use super::schema::crds::HttpRoute;
use super::schema::Typed;

pub const NGINX_AFFINITY: &str = "nginx.ingress.kubernetes.io/affinity";
pub const NGINX_AFFINITY_MODE: &str = "nginx.ingress.kubernetes.io/affinity-mode";
pub const NGINX_COOKIE_NAME: &str = "nginx.ingress.kubernetes.io/session-cookie-name";
/// Traefik's Kubernetes Ingress provider reads stickiness from the backend Service.
pub const TRAEFIK_STICKY: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie";
pub const TRAEFIK_COOKIE_NAME: &str = "traefik.ingress.kubernetes.io/service.sticky.cookie.name";
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Controller {
    /// ingress-nginx (also an Ingress without class: the default the reference stack uses).
    Nginx,
    Traefik,
    GatewayApi,
    /// An ingress class whose annotations validate does not know.
    Other(String),
}

/// Whether a route pins a client to one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// A sticky cookie, with its name when set.
    Cookie(Option<String>),
    None,
    /// The controller is not understood: neither claimed nor denied.
    Unknown,
}

pub struct Route<'a> {
    pub entry: &'a Entry,
    pub controller: Controller,
    pub affinity: Affinity,
}

/// The controller of an Ingress by its class.
pub fn controller(ingress: &Entry, class_name: Option<&str>) -> Controller {
    let class = class_name.or_else(|| ingress.annotation(INGRESS_CLASS_ANNOTATION));
    match class {
        None => Controller::Nginx,
        Some(c) if c.contains("nginx") => Controller::Nginx,
        Some(c) if c.contains("traefik") => Controller::Traefik,
        Some(other) => Controller::Other(other.to_string()),
    }
}

/// The controller of an Ingress by its `spec.ingressClassName` or class annotation.
pub fn ingress_controller(entry: &Entry, ingress: &Ingress) -> Controller {
    let class = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref());
    controller(entry, class)
}

/// Every Ingress and HTTPRoute sending traffic to a Service that selects the workload's pods.
pub fn routes_for<'a>(bundle: &'a Bundle, workload: &Workload) -> Vec<Route<'a>> {
    let mut out: Vec<Route> = Vec::new();
    for (service, _) in bundle.services_for(workload) {
        for entry in bundle.routes_to(service.name()) {
            let known = out.iter().any(|r| std::ptr::eq(r.entry, entry));
            if known || !entry.same_namespace(service) {
                continue;
            }
            let route = match &entry.typed {
                Typed::Ingress(ingress) => {
                    ingress_route(entry, service, ingress_controller(entry, ingress))
                }
                Typed::HttpRoute(route) => http_route(entry, route, service.name()),
                _ => continue,
            };
            out.push(route);
        }
    }
    out
}

fn ingress_route<'a>(entry: &'a Entry, service: &Entry, controller: Controller) -> Route<'a> {
    let affinity = match &controller {
        Controller::Nginx => match entry.annotation(NGINX_AFFINITY) {
            Some("cookie") => {
                Affinity::Cookie(entry.annotation(NGINX_COOKIE_NAME).map(str::to_string))
            }
            _ => Affinity::None,
        },
        Controller::Traefik => match service.annotation(TRAEFIK_STICKY) {
            Some("true") => {
                Affinity::Cookie(service.annotation(TRAEFIK_COOKIE_NAME).map(str::to_string))
            }
            _ => Affinity::None,
        },
        Controller::GatewayApi | Controller::Other(_) => Affinity::Unknown,
    };
    Route {
        entry,
        controller,
        affinity,
    }
}

/// An HTTPRoute sticks when every rule reaching the Service has cookie session persistence.
fn http_route<'a>(entry: &'a Entry, route: &HttpRoute, service: &str) -> Route<'a> {
    let mut affinity = None;
    let reaching = route.spec.rules.iter().flatten().filter(|rule| {
        rule.backend_refs.iter().flatten().any(|b| {
            b.name == service
                && b.kind.as_deref().is_none_or(|k| k == "Service")
                && b.namespace
                    .as_deref()
                    .is_none_or(|n| Some(n) == entry.namespace.as_deref())
        })
    });
    for rule in reaching {
        let this = match &rule.session_persistence {
            Some(p) if p.type_.as_deref().is_none_or(|t| t == "Cookie") => {
                Affinity::Cookie(p.session_name.clone())
            }
            _ => Affinity::None,
        };
        if affinity
            .as_ref()
            .is_none_or(|a| matches!(a, Affinity::Cookie(_)))
        {
            affinity = Some(this);
        }
    }
    Route {
        entry,
        controller: Controller::GatewayApi,
        affinity: affinity.unwrap_or(Affinity::None),
    }
}
