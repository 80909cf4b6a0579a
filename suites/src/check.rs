//! The check model: what a check is, what it reports, and the recorder that turns check bodies
//! into results and events.

use std::collections::HashSet;
use std::future::Future;
use std::time::Instant;

use serde::Serialize;

use crate::http::Http;
pub(crate) use crate::scrub::Scrubber;
use crate::target::{AllowedSkip, Secret, Target};
use crate::Suite;

/// One check of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckInfo {
    /// Stable id, `<suite>.<name>`.
    pub id: &'static str,
    pub suite: Suite,
    /// One line: what the check proves.
    pub description: &'static str,
    /// Stops replicas, writes to the engine database or loads the stack: runs only when the
    /// target allows disruption.
    pub disruptive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub suite: Suite,
    pub status: Status,
    pub duration_ms: u64,
    /// What was seen; on failure what was expected and what came instead, on skip why.
    pub message: String,
    /// Skipped because the target is read-only (a disruptive check, or one that needs a
    /// disruptive one): not run, which is neither a pass nor a skip the target allows.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_run: bool,
    /// Passed on load the harness simulated (kwok: CPU written into the pods' annotations):
    /// shows the HPA and the control plane reacting, not Camunda under real load.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

#[derive(Clone, Debug)]
pub enum RunEvent {
    SuiteStarted(Suite),
    CheckStarted { id: String, suite: Suite },
    CheckFinished(CheckResult),
}

/// Why a disruptive check is skipped.
pub(crate) const NOT_ALLOWED: &str =
    "disruptive check: the target does not allow disruption ([disruptive] allowed = false)";

/// What a check body decides.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass(String),
    Fail(String),
    Skip(String),
}

/// A check body: an error is a failure whose message is the error chain.
pub(crate) type Outcome = anyhow::Result<Verdict>;

/// Shared by the suites of one run.
pub(crate) struct Ctx<'t> {
    pub target: &'t Target,
    pub http: Http,
    password: Result<Secret, String>,
}

impl<'t> Ctx<'t> {
    pub fn new(target: &'t Target, password: anyhow::Result<Secret>) -> anyhow::Result<Self> {
        Ok(Self {
            target,
            http: Http::new(target)?,
            password: password.map_err(|err| format!("{err:#}")),
        })
    }

    /// The suites' password; an error names why it could not be read (never its value).
    pub fn password(&self) -> anyhow::Result<&Secret> {
        self.password
            .as_ref()
            .map_err(|reason| anyhow::anyhow!("the credentials could not be read: {reason}"))
    }

    pub fn username(&self) -> &str {
        &self.target.credentials.username
    }
}

/// How skips are judged: under `--strict` a skip fails unless the target allows it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SkipPolicy {
    pub strict: bool,
    pub allowed: Vec<AllowedSkip>,
}

impl SkipPolicy {
    /// The final status and message of a check that skipped for `reason`.
    fn judge(&self, id: &str, reason: String) -> (Status, String) {
        if !self.strict {
            return (Status::Skip, reason);
        }
        // An entry that states this very reason first, else any entry for the check.
        let entry = self
            .allowed
            .iter()
            .find(|allowed| allowed.covers(id) && allowed.reason == reason)
            .or_else(|| self.allowed.iter().find(|allowed| allowed.covers(id)));
        match entry {
            // The target usually states the check's own reason: no need to say it twice.
            Some(allowed) if allowed.reason == reason => {
                (Status::Skip, format!("{reason} (allowed by the target)"))
            }
            Some(allowed) => (
                Status::Skip,
                format!("{reason} (allowed by the target: {})", allowed.reason),
            ),
            None => (
                Status::Fail,
                format!(
                    "skipped, and --strict fails a skip the target does not list in [[allowed_skips]]: {reason}"
                ),
            ),
        }
    }
}

pub(crate) struct Recorder<'e> {
    on_event: &'e mut (dyn FnMut(RunEvent) + Send),
    disruption_allowed: bool,
    skips: SkipPolicy,
    /// Scrubs every message as a last line of defence.
    scrubber: Scrubber,
    reported: HashSet<&'static str>,
    results: Vec<CheckResult>,
}

impl<'e> Recorder<'e> {
    pub fn new(
        on_event: &'e mut (dyn FnMut(RunEvent) + Send),
        disruption_allowed: bool,
        skips: SkipPolicy,
        scrubber: Scrubber,
    ) -> Self {
        Self {
            on_event,
            disruption_allowed,
            skips,
            scrubber,
            reported: HashSet::new(),
            results: Vec::new(),
        }
    }

    pub fn suite_started(&mut self, suite: Suite) {
        (self.on_event)(RunEvent::SuiteStarted(suite));
    }

    /// Runs one check body, unless the check is disruptive and the target does not allow it.
    pub async fn check<F>(&mut self, info: &CheckInfo, body: F) -> Status
    where
        F: Future<Output = Outcome>,
    {
        if info.disruptive && !self.disruption_allowed {
            return self.skip(info, NOT_ALLOWED);
        }
        (self.on_event)(RunEvent::CheckStarted {
            id: info.id.to_string(),
            suite: info.suite,
        });
        let started = Instant::now();
        let verdict = body
            .await
            .unwrap_or_else(|err| Verdict::Fail(format!("{err:#}")));
        self.finish(info, verdict, started)
    }

    pub fn skip(&mut self, info: &CheckInfo, reason: &str) -> Status {
        self.report(info, Verdict::Skip(reason.to_string()))
    }

    pub fn fail(&mut self, info: &CheckInfo, reason: &str) -> Status {
        self.report(info, Verdict::Fail(reason.to_string()))
    }

    /// A result without a body, still announced so that progress shows every check.
    fn report(&mut self, info: &CheckInfo, verdict: Verdict) -> Status {
        (self.on_event)(RunEvent::CheckStarted {
            id: info.id.to_string(),
            suite: info.suite,
        });
        self.finish(info, verdict, Instant::now())
    }

    /// Skips every check of the suite that has no result yet.
    pub fn skip_rest(&mut self, suite: Suite, reason: &str) {
        for info in suite.checks() {
            if !self.reported.contains(info.id) {
                self.skip(info, reason);
            }
        }
    }

    /// Fails every check of the suite that has no result yet.
    pub fn fail_rest(&mut self, suite: Suite, reason: &str) {
        for info in suite.checks() {
            if !self.reported.contains(info.id) {
                self.fail(info, reason);
            }
        }
    }

    fn finish(&mut self, info: &CheckInfo, verdict: Verdict, started: Instant) -> Status {
        let not_run = matches!(&verdict, Verdict::Skip(m) if m == NOT_ALLOWED);
        let (status, message) = match verdict {
            Verdict::Pass(m) => (Status::Pass, m),
            Verdict::Fail(m) => (Status::Fail, m),
            // The target's own choice, counted apart: not a gap `--strict` judges.
            Verdict::Skip(m) if not_run => (Status::Skip, m),
            Verdict::Skip(m) => self.skips.judge(info.id, m),
        };
        let message = self.scrubber.scrub(&message);
        let result = CheckResult {
            id: info.id.to_string(),
            suite: info.suite,
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            message,
            not_run,
            simulated: false,
        };
        self.reported.insert(info.id);
        (self.on_event)(RunEvent::CheckFinished(result.clone()));
        self.results.push(result);
        status
    }

    pub fn into_results(self) -> Vec<CheckResult> {
        self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: CheckInfo = CheckInfo {
        id: "auth.test-plain",
        suite: Suite::Auth,
        description: "test",
        disruptive: false,
    };
    const DISRUPTIVE: CheckInfo = CheckInfo {
        id: "auth.test-disruptive",
        suite: Suite::Auth,
        description: "test",
        disruptive: true,
    };

    #[tokio::test]
    async fn disruptive_checks_skip_without_running_and_secrets_are_scrubbed() {
        let mut events = Vec::new();
        let mut on_event = |event: RunEvent| events.push(event);
        let mut recorder = Recorder::new(
            &mut on_event,
            false,
            SkipPolicy::default(),
            Scrubber::new("conformance", "s3cret"),
        );
        let mut ran = false;
        let status = recorder
            .check(&DISRUPTIVE, async {
                ran = true;
                Ok(Verdict::Pass(String::new()))
            })
            .await;
        assert_eq!(status, Status::Skip);
        assert!(!ran);
        // Not run is not a skip `--strict` judges: a strict policy with no entries still skips.
        let mut ignore = |_| {};
        let mut strict = Recorder::new(
            &mut ignore,
            false,
            SkipPolicy {
                strict: true,
                allowed: Vec::new(),
            },
            Scrubber::default(),
        );
        assert_eq!(
            strict.check(&DISRUPTIVE, async { unreachable!() }).await,
            Status::Skip
        );
        assert_eq!(strict.skip(&PLAIN, "no metrics_url"), Status::Fail);
        let results = strict.into_results();
        assert!(results[0].not_run && !results[1].not_run, "{results:?}");
        let status = recorder
            .check(&PLAIN, async { anyhow::bail!("server echoed s3cret") })
            .await;
        assert_eq!(status, Status::Fail);
        let results = recorder.into_results();
        assert_eq!(results[1].message, "server echoed ***");
        assert!(results[0].message.contains("allowed = false"));
        assert!(results[0].not_run);
        assert!(!results[1].not_run);
        let finished = events
            .iter()
            .filter(|e| matches!(e, RunEvent::CheckFinished(_)))
            .count();
        assert_eq!(finished, 2);
    }

    #[test]
    fn the_context_names_the_user_and_why_the_password_is_missing_never_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret-value").unwrap();
        let text = format!(
            r#"
name = "unit"
backend = "local"
[ingress]
base_url = "https://camunda.test:1"
ca_file = "{}/tests/data/test-ca.pem"
[sessions]
mode = "sticky"
[credentials]
username = "conformance-user"
password_file = "{}"
"#,
            env!("CARGO_MANIFEST_DIR"),
            password.display()
        );
        let target: Target = toml::from_str(&text).unwrap();
        let ctx = Ctx::new(&target, target.credentials.password()).unwrap();
        assert_eq!(ctx.username(), "conformance-user");
        assert_eq!(ctx.password().unwrap().expose(), "s3cret-value");
        let missing = Ctx::new(&target, Err(anyhow::anyhow!("no file /x/password"))).unwrap();
        let err = format!("{:#}", missing.password().unwrap_err());
        assert_eq!(
            err,
            "the credentials could not be read: no file /x/password"
        );
    }

    #[tokio::test]
    async fn suites_announce_themselves_and_rest_of_a_suite_is_reported_once() {
        let mut events = Vec::new();
        let mut on_event = |event: RunEvent| events.push(event);
        let mut recorder = Recorder::new(
            &mut on_event,
            true,
            SkipPolicy::default(),
            Scrubber::default(),
        );
        recorder.suite_started(Suite::Tls);
        let first = &Suite::Tls.checks()[0];
        recorder
            .check(first, async { Ok(Verdict::Pass("fine".into())) })
            .await;
        recorder.skip_rest(Suite::Tls, "no http_url");
        recorder.fail_rest(Suite::Tls, "unreachable: all reported");
        let results = recorder.into_results();
        assert_eq!(results.len(), Suite::Tls.checks().len());
        assert_eq!(results[0].status, Status::Pass);
        assert!(results[1..]
            .iter()
            .all(|r| r.status == Status::Skip && r.message == "no http_url"));
        assert!(matches!(events[0], RunEvent::SuiteStarted(Suite::Tls)));
        assert!(
            matches!(&events[1], RunEvent::CheckStarted { id, .. } if id == first.id),
            "{:?}",
            events[1]
        );
    }

    #[test]
    fn strict_fails_skips_the_target_does_not_allow() {
        let lenient = SkipPolicy::default();
        assert_eq!(
            lenient.judge("scaling.hpa", "needs Kubernetes".into()),
            (Status::Skip, "needs Kubernetes".into())
        );
        let strict = SkipPolicy {
            strict: true,
            allowed: vec![
                AllowedSkip::new("scaling.*", "no Kubernetes here"),
                AllowedSkip::new("sessions.logout", "tested elsewhere"),
            ],
        };
        let (status, message) = strict.judge("scaling.hpa", "needs Kubernetes".into());
        assert_eq!(status, Status::Skip);
        assert_eq!(
            message,
            "needs Kubernetes (allowed by the target: no Kubernetes here)"
        );
        assert_eq!(strict.judge("sessions.logout", "x".into()).0, Status::Skip);
        let (status, message) = strict.judge("sessions.login", "one replica".into());
        assert_eq!(status, Status::Fail);
        assert!(message.ends_with(": one replica"), "{message}");
        // The entry that states the very reason wins over an earlier one for the same check,
        // and an entry for another check never covers this one, whatever its reason.
        let strict = SkipPolicy {
            strict: true,
            allowed: vec![
                AllowedSkip::new("sessions.logout", "needs Kubernetes"),
                AllowedSkip::new("scaling.*", "no Kubernetes here"),
                AllowedSkip::new("scaling.hpa", "needs Kubernetes"),
            ],
        };
        assert_eq!(
            strict.judge("scaling.hpa", "needs Kubernetes".into()),
            (
                Status::Skip,
                "needs Kubernetes (allowed by the target)".into()
            )
        );
        assert_eq!(
            strict.judge("scaling.other", "needs Kubernetes".into()),
            (
                Status::Skip,
                "needs Kubernetes (allowed by the target: no Kubernetes here)".into()
            )
        );
        // `suite.*` covers that suite only, not a suite whose name starts the same.
        assert!(!AllowedSkip::new("scal.*", "r").covers("scaling.hpa"));
        assert!(!AllowedSkip::new("scaling.*", "r").covers("scalingx.hpa"));
    }
}
