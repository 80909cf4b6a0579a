//! The live conformance suites of camunda-conformance and the target description they run
//! against.
//!
//! The runner ([`run`]) only produces [`CheckResult`]s and [`RunEvent`]s; reporters live with
//! the CLI. Every check has a stable id listed by [`catalog`].

mod auth;
mod check;
mod cluster;
pub mod faults;
mod http;
mod metrics;
mod prom;
mod scaling;
pub mod scrub;
mod sessions;
mod stop;
mod target;
mod tls;
mod webapp;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use check::{CheckInfo, CheckResult, RunEvent, Status};
pub use scaling::{
    load, HpaCondition, HpaStatus, KubeFuture, KubeOps, PodState, PortForward,
    SIMULATED_SCALING_SKIPS,
};
pub use target::{
    AllowedSkip, Backend, Bounds, Credentials, Disruptive, Ingress, Kubernetes, Metrics,
    MetricsPreset, Prometheus, Replica, SessionMode, Sessions, StopHandle, Target,
};

/// A live suite. The declaration order is the order [`run`] executes them in: cluster runs
/// before sessions because the shared-session check stops a replica that cluster needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    Metrics,
    Auth,
    Tls,
    Cluster,
    Sessions,
    Scaling,
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::Metrics,
        Suite::Auth,
        Suite::Tls,
        Suite::Cluster,
        Suite::Sessions,
        Suite::Scaling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Metrics => "metrics",
            Suite::Auth => "auth",
            Suite::Tls => "tls",
            Suite::Cluster => "cluster",
            Suite::Sessions => "sessions",
            Suite::Scaling => "scaling",
        }
    }

    fn checks(self) -> &'static [CheckInfo] {
        match self {
            Suite::Metrics => metrics::CHECKS,
            Suite::Auth => auth::CHECKS,
            Suite::Tls => tls::CHECKS,
            Suite::Cluster => cluster::CHECKS,
            Suite::Sessions => sessions::CHECKS,
            Suite::Scaling => scaling::CHECKS,
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that reporters can align columns with `{:<9}`.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Suite {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        Suite::ALL
            .into_iter()
            .find(|suite| suite.as_str() == name.trim())
            .ok_or_else(|| {
                let known: Vec<_> = Suite::ALL.iter().map(|s| s.as_str()).collect();
                anyhow::anyhow!("unknown suite `{name}` (known: {})", known.join(", "))
            })
    }
}

/// Checks that apply in one session mode only; the sessions suite skips them in the other.
pub fn mode_specific_checks(mode: SessionMode) -> &'static [&'static str] {
    match mode {
        SessionMode::Sticky => &[
            "sessions.affinity-cookie",
            "sessions.affinity-cookie-attributes",
            "sessions.affinity-persists",
            "sessions.affinity-routing",
            "sessions.sticky-one-replica",
        ],
        SessionMode::Shared => &[
            "sessions.shared-every-replica",
            "sessions.shared-survives-stop",
        ],
    }
}

/// What any target of this session mode may skip under `--strict`: the other mode's checks.
pub fn session_mode_skips(mode: SessionMode) -> Vec<AllowedSkip> {
    let (other, name) = match mode {
        SessionMode::Sticky => (SessionMode::Shared, "sticky"),
        SessionMode::Shared => (SessionMode::Sticky, "shared"),
    };
    mode_specific_checks(other)
        .iter()
        .map(|id| {
            AllowedSkip::new(
                *id,
                format!("the target runs {name} sessions; these checks are for the other mode"),
            )
        })
        .collect()
}

/// What a Kubernetes target may skip under `--strict`: the other session mode's checks, and the
/// load generator's CPU measurement, which only the local backend can make.
pub fn kubernetes_skips(mode: SessionMode) -> Vec<AllowedSkip> {
    let mut skips = session_mode_skips(mode);
    skips.push(AllowedSkip::new(
        scaling::LOAD_GENERATOR_ID,
        scaling::LOAD_GENERATOR_ON_KUBERNETES,
    ));
    skips
}

/// What a read-only target (`[disruptive] allowed = false`, e.g. somebody's existing
/// deployment) may skip under `--strict`: the checks that would disturb it.
pub fn read_only_skips() -> Vec<AllowedSkip> {
    catalog()
        .into_iter()
        .filter(|check| check.disruptive)
        .map(|check| AllowedSkip::new(check.id, check::NOT_ALLOWED))
        .collect()
}

/// Every check of every suite, in run order: for documentation and `checks` listings.
pub fn catalog() -> Vec<CheckInfo> {
    Suite::ALL
        .iter()
        .flat_map(|suite| suite.checks().iter().cloned())
        .collect()
}

/// Why the suites that talk to Camunda skip on the kwok backend.
pub const SIMULATED_PODS: &str =
    "talks to Camunda itself: on kwok the pods are simulated and no container runs";

/// Runs the given suites (all when empty) against the target, in the canonical order of
/// [`Suite::ALL`], reporting progress through `on_event`. Never fails as a whole: a problem
/// that stops a suite becomes failed checks with the reason. With `strict`, a skip the target
/// does not list in `allowed_skips` is a failure.
pub async fn run(
    target: &Target,
    suites: &[Suite],
    strict: bool,
    on_event: &mut (dyn FnMut(RunEvent) + Send),
) -> Vec<CheckResult> {
    let selected: Vec<Suite> = Suite::ALL
        .into_iter()
        .filter(|suite| suites.is_empty() || suites.contains(suite))
        .collect();
    let password = target.credentials.password();
    let mut recorder = check::Recorder::new(
        on_event,
        target.disruptive.allowed,
        check::SkipPolicy {
            strict,
            allowed: target.allowed_skips.clone(),
        },
        password
            .as_ref()
            .map(|secret| check::Scrubber::new(&target.credentials.username, secret.expose()))
            .unwrap_or_default(),
    );
    let ctx = match check::Ctx::new(target, password) {
        Ok(ctx) => ctx,
        Err(err) => {
            let reason = format!("the target could not be prepared: {err:#}");
            for suite in selected {
                recorder.suite_started(suite);
                recorder.fail_rest(suite, &reason);
            }
            return recorder.into_results();
        }
    };
    for suite in selected {
        recorder.suite_started(suite);
        if target.backend == Backend::Kwok && suite != Suite::Scaling {
            recorder.skip_rest(suite, SIMULATED_PODS);
            continue;
        }
        match suite {
            Suite::Metrics => metrics::run(&ctx, &mut recorder).await,
            Suite::Auth => auth::run(&ctx, &mut recorder).await,
            Suite::Tls => tls::run(&ctx, &mut recorder).await,
            Suite::Cluster => cluster::run(&ctx, &mut recorder).await,
            Suite::Sessions => sessions::run(&ctx, &mut recorder).await,
            Suite::Scaling => scaling::run(&ctx, &mut recorder).await,
        }
        // A suite that ended early must not drop checks silently.
        recorder.fail_rest(
            suite,
            "the check did not run: the suite ended before reaching it",
        );
    }
    recorder.into_results()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalog_ids_are_unique_prefixed_and_described() {
        let catalog = catalog();
        let mut seen = HashSet::new();
        for check in &catalog {
            assert!(seen.insert(check.id), "duplicate check id {}", check.id);
            assert!(
                check.id.starts_with(&format!("{}.", check.suite)),
                "{} is not prefixed by its suite",
                check.id
            );
            assert!(!check.description.is_empty());
        }
        for suite in Suite::ALL {
            assert!(
                catalog.iter().any(|c| c.suite == suite),
                "{suite} has no checks"
            );
        }
    }

    fn target(ca_file: &str, extra: &str) -> Target {
        let text = format!(
            r#"
name = "unit"
backend = "local"
[ingress]
base_url = "https://camunda.test:1"
connect_to = "127.0.0.1:1"
ca_file = "{ca_file}"
[sessions]
mode = "sticky"
[credentials]
username = "conformance"
password_env = "CAMUNDA_CONFORMANCE_UNIT_UNSET"
[[replicas]]
name = "a"
http_url = "http://127.0.0.1:1"
[[replicas]]
name = "b"
http_url = "http://127.0.0.1:1"
{extra}
"#
        );
        let target: Target = toml::from_str(&text).unwrap();
        target.validate().unwrap();
        target
    }

    async fn run_collecting(target: &Target, suites: &[Suite]) -> (Vec<CheckResult>, usize) {
        let mut finished = 0;
        let results = run(target, suites, false, &mut |event| {
            if matches!(event, RunEvent::CheckFinished(_)) {
                finished += 1;
            }
        })
        .await;
        (results, finished)
    }

    #[tokio::test]
    async fn every_check_is_reported_once_even_when_the_target_cannot_be_prepared() {
        let target = target("/nonexistent/ca.pem", "");
        let (results, finished) = run_collecting(&target, &[]).await;
        assert_eq!(results.len(), catalog().len());
        assert_eq!(finished, results.len());
        for (result, info) in results.iter().zip(catalog()) {
            assert_eq!(result.id, info.id);
            assert_eq!(result.status, Status::Fail);
            assert!(
                result.message.contains("ingress.ca_file"),
                "{}",
                result.message
            );
        }
    }

    #[tokio::test]
    async fn scaling_skips_on_local_and_disruptive_suites_skip_without_permission() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem");
        let target = target(ca, "");
        let (results, _) = run_collecting(&target, &[Suite::Scaling, Suite::Cluster]).await;
        // Canonical order whatever the order asked for: cluster before scaling.
        assert_eq!(results.first().map(|r| r.suite), Some(Suite::Cluster));
        for result in &results {
            assert_eq!(result.status, Status::Skip, "{result:?}");
            // The local load-generator check loads the stack: disruptive.
            let expected = match result.suite {
                Suite::Scaling if result.id != "scaling.load-generator" => {
                    "needs Kubernetes (backend local)"
                }
                // Not disruptive: it runs, and skips for want of metrics_url.
                Suite::Cluster if result.id == "cluster.distinct-replicas" => {
                    "needs a metrics_url for every replica; none for a, b"
                }
                Suite::Cluster if result.id == "cluster.all-replicas-ready" => {
                    "needs Kubernetes: the target has no [kubernetes] section"
                }
                _ => check::NOT_ALLOWED,
            };
            assert_eq!(result.message, expected);
        }
        assert_eq!(results.len(), scaling::CHECKS.len() + cluster::CHECKS.len());
    }

    #[tokio::test]
    async fn missing_credentials_fail_the_checks_that_need_them_and_say_why() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-ca.pem");
        let target = target(ca, "[disruptive]\nallowed = true\n");
        let (results, _) = run_collecting(&target, &[Suite::Cluster]).await;
        assert!(!results.is_empty());
        // cluster.distinct-replicas and cluster.all-replicas-ready need no credentials (they
        // skip here for want of metrics_url and of Kubernetes).
        for result in results
            .iter()
            .filter(|r| r.id != "cluster.distinct-replicas" && r.id != "cluster.all-replicas-ready")
        {
            assert_eq!(result.status, Status::Fail);
            assert!(
                result.message.contains("CAMUNDA_CONFORMANCE_UNIT_UNSET"),
                "{}",
                result.message
            );
        }
    }

    #[test]
    fn suites_parse_and_print() {
        assert_eq!("tls".parse::<Suite>().unwrap(), Suite::Tls);
        assert!("tsl".parse::<Suite>().is_err());
        assert_eq!(format!("{:<9}|", Suite::Auth), "auth     |");
        assert_eq!(
            serde_json::to_string(&Suite::Scaling).unwrap(),
            "\"scaling\""
        );
    }
}
