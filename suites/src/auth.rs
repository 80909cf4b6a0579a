//! auth: engine-rest refuses requests without valid credentials with 401 and a Basic
//! challenge, through the ingress and on every replica, also through path variations; valid
//! credentials get 200.
//!
//! Camunda delays a user after a failed password check (3 s, doubling) and locks it after 10
//! failures (`loginMaxAttempts`), so the wrong-password check makes exactly one attempt, runs
//! last, and waits until valid credentials are accepted again. Unknown users are not counted.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode};

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Polled};
use crate::Suite;

const fn check(id: &'static str, description: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Auth,
        description,
        disruptive: false,
    }
}

const NO_CREDENTIALS: CheckInfo = check(
    "auth.no-credentials",
    "every protected endpoint answers 401 with a Basic challenge without credentials",
);
const UNKNOWN_USER: CheckInfo = check(
    "auth.unknown-user",
    "every protected endpoint answers 401 with a Basic challenge to an unknown user",
);
const MALFORMED: CheckInfo = check(
    "auth.malformed-credentials",
    "malformed Basic credentials and other schemes get 401 with a Basic challenge",
);
const PATH_VARIATIONS: CheckInfo = check(
    "auth.path-variations",
    "no path variation (slashes, percent-encoding, case, matrix parameters) serves data without credentials",
);
const VALID_CREDENTIALS: CheckInfo = check(
    "auth.valid-credentials",
    "every protected endpoint answers 200 to the suite's user",
);
const WRONG_PASSWORD: CheckInfo = check(
    "auth.wrong-password",
    "a wrong password for the suite's user gets 401 with a Basic challenge (one attempt)",
);

pub(crate) const CHECKS: &[CheckInfo] = &[
    NO_CREDENTIALS,
    UNKNOWN_USER,
    MALFORMED,
    PATH_VARIATIONS,
    VALID_CREDENTIALS,
    WRONG_PASSWORD,
];

/// Protected engine-rest endpoints (relative to rest_path), all plain GET lists. `/engine`
/// itself is open by design and therefore not here.
const PROTECTED: &[&str] = &[
    "/process-definition",
    "/process-instance",
    "/task",
    "/deployment",
    "/job",
    "/incident",
    "/history/process-instance",
    "/user",
    "/group",
    "/authorization",
    "/engine/default/process-definition",
];

/// Authorization headers that are not valid Basic credentials.
const MALFORMED_HEADERS: &[(&str, &str)] = &[
    ("Basic with a non-base64 payload", "Basic !!!not-base64!!!"),
    ("Basic without a colon", "Basic Y29uZm9ybWFuY2U="),
    ("Basic with nothing", "Basic "),
    ("a Bearer token", "Bearer conformance-token"),
];

#[derive(Clone, Copy)]
enum Creds<'a> {
    None,
    Basic(&'a str, &'a str),
    Header(&'a str),
}

/// A place engine-rest is reached through: the ingress, or one replica directly.
struct EntryPoint<'c> {
    label: String,
    client: &'c Client,
    /// Scheme, authority and nothing else.
    origin: String,
}

fn entry_points<'c>(ctx: &'c Ctx<'_>) -> Vec<EntryPoint<'c>> {
    let mut points = vec![EntryPoint {
        label: "ingress".into(),
        client: &ctx.http.ingress,
        origin: ctx
            .target
            .ingress
            .base_url
            .trim_end_matches('/')
            .to_string(),
    }];
    points.extend(ctx.target.replicas.iter().map(|r| EntryPoint {
        label: r.name.clone(),
        client: &ctx.http.direct,
        origin: r.http_url.trim_end_matches('/').to_string(),
    }));
    points
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
}

async fn get(point: &EntryPoint<'_>, path: &str, creds: Creds<'_>) -> Result<Answer> {
    let url = format!("{}{path}", point.origin);
    let mut request = point.client.get(&url);
    request = match creds {
        Creds::None => request,
        Creds::Basic(user, password) => request.basic_auth(user, Some(password)),
        Creds::Header(value) => request.header(AUTHORIZATION, value),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("{}: GET {path}", point.label))?;
    Ok(Answer {
        status: response.status(),
        challenge: response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    })
}

/// A refusal must be 401 with a Basic challenge.
fn judge_refusal(answer: &Answer) -> std::result::Result<(), String> {
    let basic = answer
        .challenge
        .as_deref()
        .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("basic"));
    match (answer.status, basic) {
        (StatusCode::UNAUTHORIZED, true) => Ok(()),
        (StatusCode::UNAUTHORIZED, false) => Err(format!(
            "401 without a Basic challenge (WWW-Authenticate: {})",
            answer.challenge.as_deref().unwrap_or("absent")
        )),
        (status, _) => Err(format!("expected 401, got {}", status.as_u16())),
    }
}

/// A path variation without credentials may be refused (401/403), unknown (404/400/405) or
/// redirected, but must never serve data (2xx) nor break (5xx).
fn judge_variation(status: StatusCode) -> std::result::Result<(), String> {
    if status.is_success() {
        Err(format!("answered {} without credentials", status.as_u16()))
    } else if status.is_server_error() {
        Err(format!(
            "answered {} (a server error is not a refusal)",
            status.as_u16()
        ))
    } else {
        Ok(())
    }
}

/// Path variations of `{rest}/task` that servlet containers or proxies may treat as it.
fn variations(rest: &str) -> Vec<String> {
    let mut out = vec![
        format!("{rest}/task/"),
        format!("{rest}//task"),
        format!("/{rest}/task"),
        format!("{rest}/%74ask"),
        format!("{rest}%2Ftask"),
        format!("{rest}/TASK"),
        format!("{rest}/Task"),
        format!("{}/task", rest.to_uppercase()),
        format!("{rest}/task;conformance=1"),
        format!("{rest};conformance=1/task"),
    ];
    // Percent-encode the first character of the rest path's first segment.
    if let Some(first) = rest.chars().nth(1) {
        out.push(format!(
            "/%{:02X}{}/task",
            u32::from(first),
            &rest[1 + first.len_utf8()..]
        ));
    }
    out
}

/// Sends one request per entry point and path; returns how many were sent and the problems.
async fn sweep(
    ctx: &Ctx<'_>,
    paths: &[String],
    creds: Creds<'_>,
    mut judge: impl FnMut(&Answer) -> std::result::Result<(), String>,
) -> Result<(usize, Vec<String>)> {
    let points = entry_points(ctx);
    let requests = points
        .iter()
        .flat_map(|point| paths.iter().map(move |path| (point, path)))
        .map(|(point, path)| async move { (point, path, get(point, path, creds).await) });
    // A few at a time: quicker than one by one, gentle on a small stack; answers stay in order.
    let answers: Vec<_> = futures::stream::iter(requests)
        .buffered(PARALLEL_REQUESTS)
        .collect()
        .await;
    let mut problems = Vec::new();
    for (point, path, answer) in &answers {
        if let Err(problem) = judge(answer.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?) {
            problems.push(format!("{} GET {path}: {problem}", point.label));
        }
    }
    Ok((answers.len(), problems))
}

fn protected_paths(ctx: &Ctx<'_>) -> Vec<String> {
    PROTECTED
        .iter()
        .map(|p| format!("{}{p}", ctx.target.ingress.rest_path))
        .collect()
}

/// Requests of one sweep in flight at once.
const PARALLEL_REQUESTS: usize = 6;

/// Failed requests listed in a message; the rest are counted.
const SHOWN_PROBLEMS: usize = 12;

fn verdict(sent: usize, problems: Vec<String>, expectation: &str) -> Verdict {
    if problems.is_empty() {
        Verdict::Pass(format!("{sent} requests: {expectation}"))
    } else {
        let more = problems.len().saturating_sub(SHOWN_PROBLEMS);
        let mut lines = problems[..problems.len().min(SHOWN_PROBLEMS)].join("\n");
        if more > 0 {
            lines.push_str(&format!("\n… and {more} more"));
        }
        Verdict::Fail(format!(
            "expected {expectation}; {} of {sent} requests did not:\n{lines}",
            problems.len()
        ))
    }
}

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    let paths = protected_paths(ctx);
    let points = entry_points(ctx).len();
    let refusal = "401 with WWW-Authenticate: Basic";

    rec.check(&NO_CREDENTIALS, async {
        let (sent, problems) = sweep(ctx, &paths, Creds::None, judge_refusal).await?;
        Ok(verdict(
            sent,
            problems,
            &format!(
                "{refusal} ({} endpoints × {points} entry points)",
                paths.len()
            ),
        ))
    })
    .await;

    rec.check(&UNKNOWN_USER, async {
        let user = format!("conformance-unknown-{}", unique());
        let (sent, problems) = sweep(
            ctx,
            &paths,
            Creds::Basic(&user, "not-the-password"),
            judge_refusal,
        )
        .await?;
        Ok(verdict(
            sent,
            problems,
            &format!("{refusal} for user `{user}`"),
        ))
    })
    .await;

    rec.check(&MALFORMED, async {
        let task = vec![format!("{}/task", ctx.target.ingress.rest_path)];
        let mut sent = 0;
        let mut problems = Vec::new();
        for (what, header) in MALFORMED_HEADERS {
            let (n, found) = sweep(ctx, &task, Creds::Header(header), judge_refusal).await?;
            sent += n;
            problems.extend(found.into_iter().map(|p| format!("{what}: {p}")));
        }
        Ok(verdict(sent, problems, refusal))
    })
    .await;

    rec.check(&PATH_VARIATIONS, async {
        let paths = variations(&ctx.target.ingress.rest_path);
        let mut statuses = Vec::new();
        let (sent, problems) = sweep(ctx, &paths, Creds::None, |answer| {
            statuses.push(answer.status.as_u16());
            judge_variation(answer.status)
        })
        .await?;
        statuses.sort_unstable();
        statuses.dedup();
        let seen: Vec<String> = statuses.iter().map(u16::to_string).collect();
        Ok(verdict(
            sent,
            problems,
            &format!(
                "no 2xx or 5xx without credentials (401/403/404/400/405 and redirects are fine; seen: {})",
                seen.join(", ")
            ),
        ))
    })
    .await;

    rec.check(&VALID_CREDENTIALS, async {
        let password = ctx.password()?.expose();
        let (sent, problems) = sweep(
            ctx,
            &paths,
            Creds::Basic(ctx.username(), password),
            |answer| {
                if answer.status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(format!("expected 200, got {}", answer.status.as_u16()))
                }
            },
        )
        .await?;
        Ok(verdict(
            sent,
            problems,
            &format!("200 for user `{}`", ctx.username()),
        ))
    })
    .await;

    rec.check(&WRONG_PASSWORD, wrong_password(ctx)).await;
}

async fn wrong_password(ctx: &Ctx<'_>) -> Outcome {
    let password = ctx.password()?.expose();
    let wrong = if password == "conformance-wrong-password" {
        "conformance-wrong-password-2"
    } else {
        "conformance-wrong-password"
    };
    let points = entry_points(ctx);
    let ingress = &points[0];
    let path = format!("{}/task", ctx.target.ingress.rest_path);
    let answer = get(ingress, &path, Creds::Basic(ctx.username(), wrong)).await?;
    let refused = judge_refusal(&answer);
    // Whatever the answer, wait out Camunda's login delay so that later checks can log in.
    let started = Instant::now();
    let recovered = poll(
        Duration::from_secs(ctx.target.bounds.settle_s),
        Duration::from_millis(500),
        || async {
            match get(ingress, &path, Creds::Basic(ctx.username(), password)).await {
                Ok(a) if a.status == StatusCode::OK => Polled::Done(()),
                Ok(a) => Polled::Pending(format!("valid credentials got {}", a.status.as_u16())),
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        },
    )
    .await;
    let waited = started.elapsed().as_secs_f64();
    Ok(match (refused, recovered) {
        (Ok(()), Ok(())) => Verdict::Pass(format!(
            "GET {path} with a wrong password for `{}`: 401 with a Basic challenge; valid credentials accepted again after {waited:.1} s (Camunda's login delay)",
            ctx.username()
        )),
        (Err(problem), _) => Verdict::Fail(format!(
            "GET {path} with a wrong password for `{}`: {problem}",
            ctx.username()
        )),
        (Ok(()), Err(err)) => Verdict::Fail(format!(
            "the wrong password was refused, but valid credentials were not accepted again: {err:#}"
        )),
    })
}

/// Distinguishes this run's made-up names from earlier runs'.
fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn answer(status: u16, challenge: Option<&str>) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            challenge: challenge.map(str::to_string),
        }
    }

    #[rstest]
    #[case(401, Some("Basic realm=\"default\""), true)]
    #[case(401, Some("basic realm=\"x\""), true)]
    #[case(401, None, false)]
    #[case(401, Some("Bearer"), false)]
    #[case(200, None, false)]
    #[case(403, Some("Basic realm=\"default\""), false)]
    #[case(404, None, false)]
    fn refusals(#[case] status: u16, #[case] challenge: Option<&str>, #[case] ok: bool) {
        assert_eq!(judge_refusal(&answer(status, challenge)).is_ok(), ok);
    }

    #[test]
    fn refusal_messages_say_what_was_seen() {
        let err = judge_refusal(&answer(200, None)).unwrap_err();
        assert_eq!(err, "expected 401, got 200");
        let err = judge_refusal(&answer(401, None)).unwrap_err();
        assert!(err.contains("absent"), "{err}");
    }

    #[rstest]
    #[case(401, true)]
    #[case(403, true)]
    #[case(404, true)]
    #[case(400, true)]
    #[case(308, true)]
    #[case(200, false)]
    #[case(204, false)]
    #[case(500, false)]
    fn variations_never_serve_data(#[case] status: u16, #[case] ok: bool) {
        assert_eq!(
            judge_variation(StatusCode::from_u16(status).unwrap()).is_ok(),
            ok
        );
    }

    #[test]
    fn long_failure_lists_are_cut_and_counted() {
        let problems: Vec<String> = (0..20).map(|i| format!("problem {i}")).collect();
        let Verdict::Fail(message) = verdict(33, problems, "401") else {
            panic!("expected a failure");
        };
        assert!(
            message.starts_with("expected 401; 20 of 33 requests did not:"),
            "{message}"
        );
        assert!(message.contains("problem 11\n… and 8 more"), "{message}");
        assert!(!message.contains("problem 12"), "{message}");
        assert!(matches!(verdict(3, Vec::new(), "401"), Verdict::Pass(_)));
    }

    #[test]
    fn variations_follow_the_rest_path() {
        let v = variations("/engine-rest");
        assert!(v.contains(&"/engine-rest//task".to_string()));
        assert!(v.contains(&"/%65ngine-rest/task".to_string()));
        assert!(v.contains(&"/ENGINE-REST/task".to_string()));
        assert!(v.contains(&"/engine-rest;conformance=1/task".to_string()));
        let v = variations("/api/rest");
        assert!(v.contains(&"/%61pi/rest/task".to_string()));
        // Every variation stays a path the URL parser keeps as is (no dot segments).
        for path in variations("/engine-rest") {
            let url = reqwest::Url::parse(&format!("https://camunda.test{path}")).unwrap();
            assert_eq!(url.path(), path.split('?').next().unwrap());
        }
    }
}
