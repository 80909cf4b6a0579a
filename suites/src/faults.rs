//! The fault catalogue: real misconfigurations of a real stack, each with the checks it must
//! fail and why. `cargo xtask e2e --faults` injects them into the local stack one at a time;
//! `camunda-conformance checks` shows which faults prove each check able to fail.
//!
//! A fault is *detected* when every expected check fails and its message contains the
//! expected words, the symptom only that misconfiguration produces: a check failing for
//! another reason does not count.
//!
//! A *target fault* edits only the harness's view of the deployment (a replica listed that the
//! ingress does not route to, one JVM listed twice, a stop handle that also stops Redis): it
//! proves the harness reads what it is told, not that a broken deployment fails. Every check
//! also needs a fault that breaks a real component.

use serde::Serialize;

use crate::target::{Backend, SessionMode};

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
    /// Edits only the target description, not the deployment (see the module's notes).
    pub target: bool,
    /// The backends whose `--faults` inject it.
    pub backends: &'static [Backend],
    /// Neither its injection nor its symptom involves the session mode or the route (a pod
    /// template, a ServiceMonitor, an HPA, an addon): the node backend injects it once, in
    /// its sticky matrix, and not again behind the shared stack's Gateway route.
    pub once_per_node: bool,
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
        target: false,
        backends: &[Backend::Local],
        once_per_node: false,
    }
}

/// A fault that edits only the target description (see the module's notes).
const fn target_fault(
    id: &'static str,
    description: &'static str,
    mode: Option<SessionMode>,
    expects: &'static [Expect],
) -> FaultInfo {
    FaultInfo {
        target: true,
        ..fault(id, description, mode, expects)
    }
}

impl FaultInfo {
    /// Injected on these backends (default: local only).
    pub const fn on(self, backends: &'static [Backend]) -> Self {
        FaultInfo { backends, ..self }
    }

    /// See [`FaultInfo::once_per_node`].
    pub const fn once_per_node(self) -> Self {
        FaultInfo {
            once_per_node: true,
            ..self
        }
    }
}

use SessionMode::{Shared, Sticky};

pub const CATALOGUE: &[FaultInfo] = &[
    // metrics
    fault(
        "no-jmx-agent",
        "a replica behind the ingress runs without the jmx_exporter javaagent",
        None,
        &[expect("metrics.replica-endpoints", "camunda-noagent: GET")],
    ),
    fault(
        "jmx-rules-jvm-only",
        "a replica behind the ingress exports only java.lang beans (no Tomcat, no Camunda rules)",
        None,
        &[expect("metrics.required-series", "camunda-lax: missing")],
    ),
    fault(
        "not-scraped",
        "Prometheus does not scrape one replica",
        None,
        &[expect("metrics.prometheus-targets", "not a target of job")],
    ),
    fault(
        "duplicate-scrape",
        "Prometheus scrapes every replica twice (a second job over the same targets)",
        None,
        &[expect("metrics.promql-per-replica", "2 series, jobs [")],
    ),
    fault(
        "ingress-outside-target",
        "the ingress sends traffic to a replica that is not one of the deployment's (a stale pod)",
        None,
        &[
            expect("metrics.counters-grow", "the ingress sends the rest elsewhere"),
            expect("scaling.load-generator", "to drive the replicas' CPU"),
        ],
    ),
    fault(
        "metrics-path-through-ingress",
        "the ingress routes /metrics to a replica's metrics port",
        None,
        &[expect("metrics.not-public", "metrics served at https://")],
    ),
    fault(
        "metrics-port-on-ingress",
        "the ingress address also serves a replica's metrics port (an exposed TCP port)",
        None,
        &[expect("metrics.not-public", "metrics served at http://")],
    ),
    // auth
    fault(
        "rest-auth-off",
        "the ingress sends engine-rest to a replica with basic auth switched off",
        None,
        &[
            expect("auth.no-credentials", "expected 401, got 200"),
            expect("auth.write-methods", "expected 401, got 404"),
            expect("auth.unknown-user", "expected 401, got 200"),
            expect("auth.malformed-credentials", "expected 401, got 200"),
            expect("auth.path-variations", "answered 200"),
            expect("auth.wrong-password", "expected 401, got 200"),
        ],
    ),
    fault(
        "rest-auth-off-for-delete",
        "the ingress sends DELETE requests to a replica with basic auth switched off",
        None,
        &[expect(
            "auth.write-methods",
            "DELETE /engine-rest/deployment/camunda-conformance-none: expected 401, got 404",
        )],
    ),
    target_fault(
        "suite-user-missing",
        "the suite's user does not exist in the engine (the target names a user nobody created)",
        None,
        &[expect("auth.valid-credentials", "expected 200, got 401")],
    ),
    // tls
    fault(
        "other-ca",
        "the ingress serves a certificate issued by another CA",
        None,
        &[expect("tls.certificate", "not issued by the target CA")],
    )
    .on(&[Backend::Local, Backend::Node]),
    fault(
        "no-https-redirect",
        "plain HTTP is proxied to the replicas instead of redirected to HTTPS",
        None,
        &[expect("tls.http-redirect", "got HTTP 200")],
    ),
    fault(
        "redirect-drops-port",
        "plain HTTP redirects to HTTPS on the default port instead of the ingress's",
        None,
        &[expect(
            "tls.http-redirect",
            "got Location `https://camunda.test/",
        )],
    ),
    // cluster
    target_fault(
        "same-jvm-twice",
        "the target lists one replica twice under two names (the ingress routes to it)",
        None,
        &[
            expect("cluster.distinct-replicas", "same JVM"),
            expect_in(
                Sticky,
                "sessions.sticky-one-replica",
                "valid on [camunda-0, camunda-0-again]",
            ),
        ],
    ),
    target_fault(
        "suite-user-not-authorized",
        "the suite's user exists but has no authorizations (authorization is enabled)",
        None,
        &[expect("cluster.deploy", "expected 200, got 403")],
    ),
    fault(
        "separate-databases",
        "one replica behind the ingress uses a database of its own",
        None,
        &[expect(
            "cluster.start-other-replica",
            "Cannot instantiate process definition",
        )],
    ),
    fault(
        "ingress-other-database",
        "the ingress sends engine-rest to a replica with a database of its own",
        None,
        &[
            expect("cluster.history-through-ingress", "expected 200, got 404"),
            expect("cluster.cleanup", "expected 204, got 404"),
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
            expect(
                "sessions.fresh-clients-spread",
                "new clients; no share for camunda-",
            ),
            expect_in(Sticky, "sessions.affinity-routing", "to miss the session"),
        ],
    ),
    fault(
        "ip-hash",
        "the ingress balances by client address and sets no affinity cookie",
        Some(Sticky),
        &[
            expect("sessions.affinity-cookie", "expected the ingress to set"),
            expect(
                "sessions.fresh-clients-spread",
                "new clients; no share for camunda-",
            ),
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
        &[expect("sessions.ingress-requests", "not logged in (404)")],
    ),
    fault(
        "logout-outside-cluster",
        "a second ingress route sends the webapp's logout to a replica outside the cluster",
        None,
        &[expect("sessions.logout", "logout: expected 2xx, got 403")],
    ),
    fault(
        "login-csrf-exempt",
        "the webapp's login endpoint is exempt from CSRF protection (csrf entry points)",
        None,
        &[expect(
            "sessions.login-requires-xsrf",
            "expected 403, got 200",
        )],
    ),
    fault(
        "store-down",
        "the shared session store (Redis behind twemproxy) is down",
        Some(Shared),
        &[expect("sessions.login", "got 500")],
    ),
    target_fault(
        "store-in-replica",
        "the session store lives and dies with one replica (Redis as a sidecar of camunda-0)",
        Some(Shared),
        // The surviving replica cannot reach the store that went with camunda-0: its session
        // lookup fails (500), it does not merely miss the session.
        &[expect("sessions.shared-survives-stop", "(not), got 500")],
    ),
    target_fault(
        "replica-without-store",
        "the target lists a replica that keeps sessions in its own memory, not in the shared store",
        Some(Shared),
        &[expect(
            "sessions.shared-every-replica",
            "expected the session on every replica; not on [camunda-outsider]",
        )],
    ),
    fault(
        "third-replica-own-database",
        "a third replica runs on a database of its own (two share one, the third does not)",
        None,
        &[expect(
            "cluster.start-other-replica",
            "camunda-outsider does not know definition",
        )],
    ),
    fault(
        "stale-upstream-under-probes",
        "the ingress sends half its traffic to a stale pod while kubelet-like probes keep every replica's counter moving",
        None,
        &[
            expect(
                "metrics.counters-grow",
                "the ingress sends the rest elsewhere",
            ),
            expect("sessions.fresh-clients-spread", "no share for camunda-1"),
        ],
    ),
    fault(
        "ready-replica-outside-ingress",
        "a Ready, probed replica takes no ingress traffic (a pod the Service does not select)",
        None,
        &[expect(
            "sessions.fresh-clients-spread",
            "no share for camunda-outsider",
        )],
    ),
    fault(
        "affinity-cookie-lax",
        "the affinity cookie lacks Secure and HttpOnly and its Path (/api) does not cover the webapp",
        Some(Sticky),
        &[expect(
            "sessions.affinity-cookie-attributes",
            "Path=/api does not cover the webapp",
        )],
    ),
    fault(
        "affinity-cookie-ignored",
        "the ingress hands out the affinity cookie but balances round robin",
        Some(Sticky),
        &[expect(
            "sessions.affinity-persists",
            "expected every request carrying `INGRESSCOOKIE` to reach one replica",
        )],
    ),
];

/// Checks only a Kubernetes cluster can run besides the scaling suite's: proven by node faults
/// instead of local ones.
pub const KUBERNETES_ONLY_CHECKS: &[&str] = &["cluster.all-replicas-ready"];

/// A node fault whose injection and symptom involve neither the session mode nor the route
/// (see [`FaultInfo::once_per_node`]).
const fn node_fault_once(
    id: &'static str,
    description: &'static str,
    expects: &'static [Expect],
) -> FaultInfo {
    node_fault(id, description, None, expects).once_per_node()
}

/// A fault the node backend's `--faults` injects into the real cluster (kubectl-style edits of
/// the deployed objects, a Service added, an addon scaled to zero, the node cordoned), undoes,
/// and proves healed.
const fn node_fault(
    id: &'static str,
    description: &'static str,
    mode: Option<SessionMode>,
    expects: &'static [Expect],
) -> FaultInfo {
    fault(id, description, mode, expects).on(&[Backend::Node])
}

/// Faults whose symptom only a real cluster produces (kubelet probes, crash loops, HPA
/// metrics, Services, the scheduler): the node backend injects them, the local matrix does not.
pub const NODE: &[FaultInfo] = &[
    node_fault_once(
        "crash-looping-replica",
        "a rollout whose new pod crash-loops (its container command exits 1) beside the Ready ones",
        &[expect("cluster.all-replicas-ready", "waiting CrashLoopBackOff")],
    ),
    node_fault_once(
        "readiness-never-passes",
        "a rollout whose new pod's readiness probe asks for a path that does not exist",
        &[expect(
            "cluster.all-replicas-ready",
            "not Ready (phase Running; container camunda running",
        )],
    ),
    node_fault_once(
        "admin-secret-wrong-key",
        "the admin Secret holds the password under another key than the Deployment reads (a rollout's new pod cannot start)",
        &[expect(
            "cluster.all-replicas-ready",
            "waiting CreateContainerConfigError",
        )],
    ),
    node_fault_once(
        "servicemonitor-selects-nothing",
        "the ServiceMonitor's selector matches no Service (a label value that differs)",
        &[expect("metrics.prometheus-targets", "not a target of job")],
    ),
    node_fault_once(
        "servicemonitor-wrong-port",
        "the ServiceMonitor's endpoint names a port the Service lacks",
        &[expect("metrics.prometheus-targets", "not a target of job")],
    ),
    node_fault(
        "affinity-annotation-removed",
        "the Ingress loses its cookie-affinity annotation",
        Some(Sticky),
        &[expect(
            "sessions.affinity-cookie",
            "expected the ingress to set the affinity cookie",
        )],
    ),
    node_fault(
        "ready-pod-outside-service",
        "the Service selects only one of the Deployment's Ready pods (a label only that pod has)",
        None,
        &[expect(
            "sessions.fresh-clients-spread",
            "expected every replica to serve at least",
        )],
    ),
    node_fault_once(
        "metrics-nodeport",
        "a NodePort Service exposes the replicas' metrics port on every node",
        &[expect("metrics.not-public", "metrics served at http://")],
    ),
    node_fault(
        "redis-gone",
        "the Redis pod is deleted and not replaced (its Deployment scaled to zero)",
        Some(Shared),
        &[expect("sessions.login", "got 500")],
    ),
    node_fault_once(
        "metrics-server-stopped",
        "metrics-server is stopped (its Deployment scaled to zero): the resource metrics API has no backend",
        &[
            expect("scaling.metrics-api", "Error from server (ServiceUnavailable)"),
            expect("scaling.hpa-metrics", "FailedGetResourceMetric"),
        ],
    ),
    node_fault_once(
        "hpa-metric-unresolved",
        "the HPA has a second metric (a Pods metric no adapter serves) beside cpu",
        &[expect(
            "scaling.hpa-metrics",
            "no current value for 1 of the HPA's metrics",
        )],
    ),
    node_fault_once(
        "hpa-targets-other-deployment",
        "the HPA's scaleTargetRef names another Deployment (left from a rename)",
        &[expect(
            "scaling.hpa-metrics",
            "the HPA scales Deployment/camunda-old, not the target's Deployment/camunda",
        )],
    ),
    node_fault_once(
        "hpa-max-equals-min",
        "the HPA's maxReplicas equals its minReplicas",
        &[expect(
            "scaling.scale-out",
            "maxReplicas 2 is not above minReplicas 2",
        )],
    ),
];

/// Every fault, whichever backend injects it.
pub fn all() -> impl Iterator<Item = &'static FaultInfo> {
    CATALOGUE.iter().chain(NODE)
}

/// The faults that prove a check able to fail.
pub fn proving(check_id: &str) -> Vec<&'static FaultInfo> {
    all()
        .filter(|fault| fault.expects.iter().any(|e| e.check == check_id))
        .collect()
}

impl FaultInfo {
    pub fn applies_to(&self, mode: SessionMode) -> bool {
        self.mode.is_none_or(|m| m == mode)
    }

    /// Injected by this backend's `--faults`.
    pub fn injected_on(&self, backend: Backend) -> bool {
        self.backends.contains(&backend)
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
        for fault in all() {
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

    /// The failure text of every check when the whole stack is broken in the most generic way:
    /// the ingress, the plain HTTP entry, every replica, metrics port and Prometheus answer
    /// `502 Bad Gateway` (an nginx with nothing behind it); then the same with nothing listening.
    /// What these texts contain cannot be a fault's symptom.
    async fn generic_failures() -> Vec<(String, String)> {
        let (ca, tls) = bad_gateway(true).await;
        let (_, plain) = bad_gateway(false).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        std::fs::write(dir.path().join("password"), "generic-pw").unwrap();
        let mut failures = Vec::new();
        for (mode, ingress, backend) in [
            ("sticky", tls, plain),
            ("shared", tls, plain),
            ("sticky", free_port(), free_port()),
        ] {
            let replica = |name: &str| {
                format!(
                    "[[replicas]]\nname = \"{name}\"\nhttp_url = \"http://127.0.0.1:{backend}\"\nmetrics_url = \"http://127.0.0.1:{backend}/metrics\"\n"
                )
            };
            let text = format!(
                r#"
name = "generic"
backend = "local"
[ingress]
base_url = "https://camunda.test:{ingress}"
connect_to = "127.0.0.1:{ingress}"
http_url = "http://camunda.test:{backend}"
ca_file = "{ca}"
[sessions]
mode = "{mode}"
[credentials]
username = "conformance"
password_file = "{password}"
[prometheus]
url = "http://127.0.0.1:{backend}"
job = "camunda"
[disruptive]
allowed = true
[bounds]
prometheus_s = 1
settle_s = 1
job_s = 1
scale_out_s = 1
scale_in_s = 1
{a}{b}"#,
                ca = dir.path().join("ca.pem").display(),
                password = dir.path().join("password").display(),
                a = replica("camunda-0"),
                b = replica("camunda-1"),
            );
            let target: crate::Target = toml::from_str(&text).unwrap();
            target.validate().unwrap();
            let results = crate::run(&target, &[], false, &mut |_| {}).await;
            failures.extend(
                results
                    .into_iter()
                    .filter(|r| r.status == crate::Status::Fail)
                    .map(|r| (r.id, r.message)),
            );
        }
        failures
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A loopback server answering 502 to every request (TLS for `camunda.test` from a fresh CA,
    /// or plain HTTP); returns the CA's PEM and the port.
    async fn bad_gateway(tls: bool) -> (String, u16) {
        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
            let mut received = Vec::new();
            let mut chunk = [0u8; 4096];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                }
            }
            let body = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
            let head = format!("HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        let (ca_pem, acceptor) = crate::http::raw::camunda_test_acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if !tls {
                        answer(socket).await;
                    } else if let Ok(stream) = acceptor.accept(socket).await {
                        answer(stream).await;
                    }
                });
            }
        });
        (ca_pem, port)
    }

    /// Every expectation names a symptom: not nothing, and nothing that a check says whenever
    /// the stack is broken at all (a 502 everywhere, or nothing listening).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_expectation_names_a_symptom_no_generic_failure_shows() {
        let failures = generic_failures().await;
        // The generic run must really fail checks of every suite the catalogue expects.
        for fault in CATALOGUE {
            for expect in fault.expects {
                let words = expect.because.to_lowercase();
                // A bare number also matches a port or an id in a URL.
                assert!(
                    words.trim().len() >= 4 && words.chars().any(char::is_alphabetic),
                    "{} -> {}: no symptom named",
                    fault.id,
                    expect.check
                );
                for (id, message) in failures.iter().filter(|(id, _)| id == expect.check) {
                    assert!(
                        !message.to_lowercase().contains(&words),
                        "{} -> {}: `{}` also shows when the stack is just broken: {id}: {message}",
                        fault.id,
                        expect.check,
                        expect.because
                    );
                }
            }
        }
        let suites: HashSet<&str> = failures
            .iter()
            .filter_map(|(id, _)| id.split('.').next())
            .collect();
        for suite in ["metrics", "auth", "tls", "cluster", "sessions"] {
            assert!(
                suites.contains(suite),
                "no generic failure in {suite}: {failures:?}"
            );
        }
    }

    /// The checks whose only faults are target faults (they still need one that breaks a real
    /// component); the list may only shrink.
    const ONLY_TARGET_FAULTS: &[&str] = &[
        "auth.valid-credentials",
        "cluster.deploy",
        "cluster.distinct-replicas",
        "sessions.shared-every-replica",
        "sessions.shared-survives-stop",
        "sessions.sticky-one-replica",
    ];

    #[test]
    fn every_check_with_a_fault_has_one_that_breaks_a_real_component() {
        let mut lacking: Vec<&str> = catalog()
            .iter()
            .map(|c| c.id)
            .filter(|id| {
                let faults = proving(id);
                !faults.is_empty() && faults.iter().all(|f| f.target)
            })
            .collect();
        lacking.sort_unstable();
        assert_eq!(lacking, ONLY_TARGET_FAULTS);
        let by_id = |id: &str| CATALOGUE.iter().find(|f| f.id == id).unwrap();
        assert!(by_id("same-jvm-twice").target);
        assert!(!by_id("separate-databases").target);
        assert!(by_id("other-ca").injected_on(Backend::Local));
        assert!(by_id("other-ca").injected_on(Backend::Node));
        assert!(!by_id("no-jmx-agent").injected_on(Backend::Node));
        let node = by_id("no-jmx-agent").on(&[Backend::Node]);
        assert!(node.injected_on(Backend::Node) && !node.target);
        let twice = by_id("same-jvm-twice").on(&[Backend::Node]);
        assert!(twice.target && !twice.injected_on(Backend::Local));
    }

    #[test]
    fn faults_apply_to_their_session_mode_and_prove_the_checks_they_expect() {
        let proving_tls: Vec<&str> = proving("tls.certificate").iter().map(|f| f.id).collect();
        assert_eq!(proving_tls, ["other-ca"]);
        assert!(proving("tls.no-such-check").is_empty());
        let by_id = |id: &str| CATALOGUE.iter().find(|f| f.id == id).unwrap();
        let store_down = by_id("store-down");
        assert!(store_down.applies_to(Shared));
        assert!(!store_down.applies_to(Sticky));
        let twice = by_id("same-jvm-twice");
        assert!(twice.applies_to(Sticky) && twice.applies_to(Shared));
        let checks = |mode| twice.expected(mode).map(|e| e.check).collect::<Vec<_>>();
        assert_eq!(
            checks(Sticky),
            ["cluster.distinct-replicas", "sessions.sticky-one-replica"]
        );
        assert_eq!(checks(Shared), ["cluster.distinct-replicas"]);
    }

    /// Every check that can run on the local backend is proven able to fail, in each session
    /// mode where it applies. The Kubernetes-only scaling checks are proven on kwok/kind.
    #[test]
    fn every_local_check_has_a_fault_in_each_mode_it_applies_to() {
        for check in catalog() {
            if check.suite == Suite::Scaling && check.id != "scaling.load-generator" {
                continue;
            }
            if KUBERNETES_ONLY_CHECKS.contains(&check.id) {
                assert!(
                    NODE.iter()
                        .any(|f| f.expects.iter().any(|e| e.check == check.id)),
                    "{} has no node fault",
                    check.id
                );
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
