//! How traffic reaches a workload and whether it sticks to one replica: Ingresses (ingress-nginx
//! and Traefik understood, any other controller said to be not understood) and Gateway API
//! HTTPRoutes (`sessionPersistence`).

use super::bundle::{Bundle, Entry, Workload};
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
    pub entry: &'a Entry<'a>,
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

/// Every Ingress and HTTPRoute sending traffic to a Service that selects the workload's pods.
pub fn routes_for<'a>(bundle: &'a Bundle, workload: &Workload) -> Vec<Route<'a>> {
    let services = bundle.services_for(workload);
    let mut out: Vec<Route> = Vec::new();
    for backend in bundle.ingress_backends() {
        let Some((service, _)) = services.iter().find(|(service, _)| {
            service.name() == backend.service && service.same_namespace(backend.entry)
        }) else {
            continue;
        };
        if out.iter().any(|r| std::ptr::eq(r.entry, backend.entry)) {
            continue;
        }
        let class = match &backend.entry.typed {
            Typed::Ingress(i) => i.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()),
            _ => None,
        };
        let controller = controller(backend.entry, class);
        let affinity = match &controller {
            Controller::Nginx => match backend.entry.annotation(NGINX_AFFINITY) {
                Some("cookie") => Affinity::Cookie(
                    backend.entry.annotation(NGINX_COOKIE_NAME).map(str::to_string),
                ),
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
        out.push(Route {
            entry: backend.entry,
            controller,
            affinity,
        });
    }
    for entry in &bundle.entries {
        let Typed::HttpRoute(route) = &entry.typed else {
            continue;
        };
        let rules = route.spec.rules.iter().flatten();
        let mut reaches = false;
        let mut sticky: Option<Affinity> = None;
        for rule in rules {
            let here = rule.backend_refs.iter().flatten().any(|b| {
                b.kind.as_deref().is_none_or(|k| k == "Service")
                    && b.namespace.as_deref().is_none_or(|n| Some(n) == entry.raw.namespace.as_deref())
                    && services.iter().any(|(s, _)| s.name() == b.name && s.same_namespace(entry))
            });
            if !here {
                continue;
            }
            reaches = true;
            let rule_affinity = match &rule.session_persistence {
                Some(p) if p.type_.as_deref().is_none_or(|t| t == "Cookie") => {
                    Affinity::Cookie(p.session_name.clone())
                }
                _ => Affinity::None,
            };
            // Every rule reaching Camunda must stick; one without decides.
            if sticky.as_ref().is_none_or(|a| matches!(a, Affinity::Cookie(_))) {
                sticky = Some(rule_affinity);
            }
        }
        if reaches {
            out.push(Route {
                entry,
                controller: Controller::GatewayApi,
                affinity: sticky.unwrap_or(Affinity::None),
            });
        }
    }
    out
}
