//! The fault catalogue: real misconfigurations of a real stack, each with the checks it must
//! fail and why. `cargo xtask e2e --faults` injects them into the local stack one at a time;
//! `camunda-conformance checks` shows which faults prove each check able to fail.
//!
//! A fault is *detected* when every expected check fails and its message contains the
//! expected words: a check failing for another reason does not count.

use serde::Serialize;

use crate::target::SessionMode;

/// One misconfiguration and what it must break.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FaultInfo {
    /// Stable id, kebab-case.
    pub id: &'static str,
    /// The misconfiguration, as a person would describe it.
    pub description: &'static str,
    /// The session mode the fault applies to; `None`: both.
    pub mode: Option<SessionMode>,
    pub expects: &'static [Expect],
}

/// A check that must fail, with words its message must contain.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Expect {
    pub check: &'static str,
    pub because: &'static str,
    /// Only in this session mode; `None`: whenever the fault applies.
    pub mode: Option<SessionMode>,
}

const fn expect(check: &'static str, because: &'static str) -> Expect {
    Expect {
        check,
        because,
        mode: None,
    }
}

const fn expect_in(mode: SessionMode, check: &'static str, because: &'static str) -> Expect {
    Expect {
        check,
        because,
        mode: Some(mode),
    }
}

const fn fault(
    id: &'static str,
    description: &'static str,
    mode: Option<SessionMode>,
    expects: &'static [Expect],
) -> FaultInfo {
    FaultInfo {
        id,
        description,
        mode,
        expects,
    }
}

use SessionMode::{Shared, Sticky};

pub const CATALOGUE: &[FaultInfo] = &[
    // metrics
    fault(
        "no-jmx-agent",
        "a replica runs without the jmx_exporter javaagent",
        None,
        &[expect("metrics.replica-endpoints", "")],
    ),
    fault(
        "jmx-rules-jvm-only",
        "a replica's jmx_exporter config exports only java.lang beans (no Tomcat, no Camunda rules)",
        None,
        &[expect("metrics.required-series", "missing")],
    ),
    fault(
        "not-scraped",
        "Prometheus does not scrape one replica",
        None,
        &[expect("metrics.prometheus-targets", "")],
    ),
    fault(
        "duplicate-scrape",
        "Prometheus scrapes every replica twice (a second job over the same targets)",
        None,
        &[expect("metrics.promql-per-replica", "")],
    ),
    fault(
        "ingress-outside-target",
        "the ingress sends traffic to a replica that is not one of the deployment's (a stale pod)",
        None,
        &[
            expect("metrics.counters-grow", "expected"),
            expect("scaling.load-generator", ""),
        ],
    ),
    fault(
        "metrics-path-through-ingress",
        "the ingress routes /metrics to a replica's metrics port",
        None,
        &[expect("metrics.not-public", "")],
    ),
    fault(
        "metrics-port-on-ingress",
        "the ingress address also serves a replica's metrics port (an exposed TCP port)",
        None,
        &[expect("metrics.not-public", "")],
    ),
    // auth
    fault(
        "rest-auth-off",
        "the ingress sends engine-rest to a replica with basic auth switched off",
        None,
        &[
            expect("auth.no-credentials", "expected 401"),
            expect("auth.write-methods", "expected 401"),
            expect("auth.unknown-user", "expected 401"),
            expect("auth.malformed-credentials", "expected 401"),
            expect("auth.path-variations", "without credentials"),
            expect("auth.wrong-password", "expected 401"),
        ],
    ),
    fault(
        "rest-auth-off-for-delete",
        "the ingress sends DELETE requests to a replica with basic auth switched off",
        None,
        &[expect("auth.write-methods", "DELETE")],
    ),
    fault(
        "suite-user-missing",
        "the suite's user does not exist in the engine (the target names a user nobody created)",
        None,
        &[expect("auth.valid-credentials", "expected 200")],
    ),
    // tls
    fault(
        "other-ca",
        "the ingress serves a certificate issued by another CA",
        None,
        &[expect("tls.certificate", "not issued by the target CA")],
    ),
    fault(
        "no-https-redirect",
        "plain HTTP is proxied to the replicas instead of redirected to HTTPS",
        None,
        &[expect("tls.http-redirect", "expected a redirect")],
    ),
    fault(
        "redirect-drops-port",
        "plain HTTP redirects to HTTPS on the default port instead of the ingress's",
        None,
        &[expect("tls.http-redirect", "expected a redirect")],
    ),
    // cluster
    fault(
        "same-jvm-twice",
        "the target lists one replica twice under two names",
        None,
        &[
            expect("cluster.distinct-replicas", "same JVM"),
            expect_in(Sticky, "sessions.sticky-one-replica", "exactly one replica"),
        ],
    ),
    fault(
        "suite-user-not-authorized",
        "the suite's user exists but has no authorizations (authorization is enabled)",
        None,
        &[expect("cluster.deploy", "403")],
    ),
    fault(
        "separate-databases",
        "one replica uses a database of its own",
        None,
        &[expect("cluster.start-other-replica", "one shared database")],
    ),
    fault(
        "ingress-other-database",
        "the ingress sends engine-rest to a replica with a database of its own",
        None,
        &[
            expect("cluster.history-through-ingress", "404"),
            expect("cluster.cleanup", "404"),
        ],
    ),
    fault(
        "job-executor-off",
        "the job executor is switched off on every replica",
        None,
        &[expect("cluster.job-executor", "in state ACTIVE")],
    ),
    // sessions
    fault(
        "single-upstream",
        "the ingress has a single upstream replica",
        None,
        &[
            expect("sessions.fresh-clients-spread", ""),
            expect_in(Sticky, "sessions.affinity-routing", ""),
        ],
    ),
    fault(
        "ip-hash",
        "the ingress balances by client address and sets no affinity cookie",
        Some(Sticky),
        &[
            expect("sessions.affinity-cookie", "expected the ingress to set"),
            expect("sessions.fresh-clients-spread", ""),
        ],
    ),
    fault(
        "round-robin-no-store",
        "round robin over replicas with neither cookie affinity nor a shared session store",
        Some(Sticky),
        &[expect("sessions.login", "XSRF token was refused")],
    ),
    fault(
        "auth-api-outside-cluster",
        "a second ingress route sends the webapp's user API to a replica outside the cluster",
        None,
        &[expect("sessions.ingress-requests", "not logged in")],
    ),
    fault(
        "logout-outside-cluster",
        "a second ingress route sends the webapp's logout to a replica outside the cluster",
        None,
        &[expect("sessions.logout", "logout")],
    ),
    fault(
        "login-csrf-exempt",
        "the webapp's login endpoint is exempt from CSRF protection (csrf entry points)",
        None,
        &[expect("sessions.login-requires-xsrf", "expected 403")],
    ),
    fault(
        "store-down",
        "the shared session store (Redis behind twemproxy) is down",
        Some(Shared),
        &[expect("sessions.login", "")],
    ),
    fault(
        "store-in-replica",
        "the session store lives and dies with one replica (Redis as a sidecar of camunda-0)",
        Some(Shared),
        &[expect("sessions.shared-survives-stop", "")],
    ),
    fault(
        "replica-without-store",
        "one replica keeps sessions in its own memory instead of the shared store",
        Some(Shared),
        &[expect("sessions.shared-every-replica", "expected the session on every replica")],
    ),
];

/// The faults that prove a check able to fail.
pub fn proving(check_id: &str) -> Vec<&'static FaultInfo> {
    CATALOGUE
        .iter()
        .filter(|fault| fault.expects.iter().any(|e| e.check == check_id))
        .collect()
}

impl FaultInfo {
    pub fn applies_to(&self, mode: SessionMode) -> bool {
        self.mode.is_none_or(|m| m == mode)
    }

    /// What this fault must break in this session mode.
    pub fn expected(&self, mode: SessionMode) -> impl Iterator<Item = &'static Expect> {
        self.expects
            .iter()
            .filter(move |e| e.mode.is_none_or(|m| m == mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{catalog, mode_specific_checks, Suite};
    use std::collections::HashSet;

    #[test]
    fn every_fault_names_real_checks_and_ids_are_unique() {
        let ids: HashSet<&str> = catalog().iter().map(|c| c.id).collect();
        let mut seen = HashSet::new();
        for fault in CATALOGUE {
            assert!(seen.insert(fault.id), "duplicate fault id {}", fault.id);
            assert!(!fault.expects.is_empty(), "{} expects nothing", fault.id);
            for expect in fault.expects {
                assert!(
                    ids.contains(expect.check),
                    "{} expects unknown check {}",
                    fault.id,
                    expect.check
                );
            }
        }
    }

    /// Every check that can run on the local backend is proven able to fail, in each session
    /// mode where it applies. The Kubernetes-only scaling checks are proven on kwok/kind.
    #[test]
    fn every_local_check_has_a_fault_in_each_mode_it_applies_to() {
        for check in catalog() {
            if check.suite == Suite::Scaling && check.id != "scaling.load-generator" {
                continue;
            }
            for mode in [Sticky, Shared] {
                let other = match mode {
                    Sticky => Shared,
                    Shared => Sticky,
                };
                let applies = !mode_specific_checks(other).contains(&check.id);
                if !applies {
                    continue;
                }
                let proven = CATALOGUE.iter().any(|fault| {
                    fault.applies_to(mode) && fault.expected(mode).any(|e| e.check == check.id)
                });
                assert!(proven, "{} has no fault in {mode:?} mode", check.id);
            }
        }
    }
}
