//! auth: engine-rest refuses requests without valid credentials with 401 and a Basic
//! challenge, through the ingress and on every replica, also through path variations; valid
//! credentials get 200.
//!
//! Camunda delays a user after a failed password check (3 s, doubling) and locks it after 10
//! failures (`loginMaxAttempts`), so the wrong-password check makes exactly one attempt, runs
//! last, and waits until valid credentials are accepted again. Unknown users are not counted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Client, Method, StatusCode, Url};
use serde_json::json;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::raw::{Origin, RawAnswer};
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
const WRITE_METHODS: CheckInfo = check(
    "auth.write-methods",
    "POST, PUT and DELETE on protected endpoints answer 401 with a Basic challenge without credentials",
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
    "no path variation (slashes, dot segments, percent-encoding, case, matrix parameters), sent as written, serves data without credentials",
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
    WRITE_METHODS,
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

/// Made-up id: even if auth were broken, the write calls would find nothing to change.
const NONE: &str = "camunda-conformance-none";

/// Protected write calls (relative to rest_path) on ids that cannot exist.
fn write_calls(rest: &str) -> Vec<Call> {
    let call = |method, path: String, body| Call { method, path, body };
    vec![
        call(
            Method::POST,
            format!("{rest}/process-definition/key/{NONE}/start"),
            Some(json!({})),
        ),
        call(
            Method::PUT,
            format!("{rest}/user/{NONE}/profile"),
            Some(json!({ "id": NONE, "firstName": "none" })),
        ),
        call(Method::DELETE, format!("{rest}/deployment/{NONE}"), None),
        call(
            Method::DELETE,
            format!("{rest}/process-instance/{NONE}"),
            None,
        ),
        call(
            Method::POST,
            format!("{rest}/message"),
            Some(json!({ "messageName": NONE })),
        ),
    ]
}

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

/// One request of a sweep: method, path and JSON body.
struct Call {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl Call {
    fn get(path: String) -> Self {
        Self {
            method: Method::GET,
            path,
            body: None,
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

fn gets(paths: &[String]) -> Vec<Call> {
    paths.iter().cloned().map(Call::get).collect()
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
}

async fn send(point: &EntryPoint<'_>, call: &Call, creds: Creds<'_>) -> Result<Answer> {
    let url = format!("{}{}", point.origin, call.path);
    let mut request = point.client.request(call.method.clone(), &url);
    if let Some(body) = &call.body {
        request = request.json(body);
    }
    request = match creds {
        Creds::None => request,
        Creds::Basic(user, password) => request.basic_auth(user, Some(password)),
        Creds::Header(value) => request.header(AUTHORIZATION, value),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("{}: {call}", point.label))?;
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
/// redirected on the same origin, but must never serve data (2xx) nor break (5xx). `Ok(Some)`
/// is a same-origin redirect to follow once: the request-target to send.
fn judge_variation(
    origin: &Origin,
    sent: &str,
    answer: &RawAnswer,
) -> std::result::Result<Option<String>, String> {
    let status = answer.status;
    if (200..300).contains(&status) {
        return Err(format!("answered {status} without credentials"));
    }
    if status >= 500 {
        return Err(format!(
            "answered {status} (a server error is not a refusal)"
        ));
    }
    if !(300..400).contains(&status) {
        return Ok(None);
    }
    let Some(location) = answer.header("location") else {
        return Ok(None);
    };
    // Relative references resolve against the URL as sent (as a browser would).
    let base = Url::parse(&format!("{}{sent}", origin.url()))
        .or_else(|_| Url::parse(&origin.url()))
        .map_err(|e| format!("{e}"))?;
    let next = base
        .join(location)
        .map_err(|_| format!("answered {status} to a Location that is not a URL: `{location}`"))?;
    if !origin.contains(&next) {
        return Err(format!(
            "answered {status} to `{location}`, off the origin {}",
            origin.url()
        ));
    }
    let query = next.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Some(format!("{}{query}", next.path())))
}

/// The answer to a followed same-origin redirect must not serve data either.
fn judge_followed(first: u16, next: &str, answer: &RawAnswer) -> std::result::Result<(), String> {
    if (200..300).contains(&answer.status) {
        Err(format!(
            "answered {first} to {next}, which answered {} without credentials",
            answer.status
        ))
    } else {
        Ok(())
    }
}

/// Path variations of `{rest}/task` that servlet containers or proxies may treat as it, also
/// dot segments and encodings a URL parser would normalise away (hence sent raw).
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
        format!("{rest}/engine/../task"),
        format!("{rest}/engine/%2e%2e/task"),
        format!("{rest}/engine/%2E%2E/task"),
        format!("{rest}/engine/..;/task"),
        format!("{rest}/engine/%2e%2e%2ftask"),
        format!("{rest}/engine/..%2ftask"),
        format!("{rest}/./task"),
        format!("{rest}/%2e/task"),
        format!("{rest}/engine;x=y/../task"),
        format!("{rest}/engine/%252e%252e/task"),
        format!("{rest}/task%20"),
        format!("{rest}/task?"),
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

/// Sends every item through every entry point, a few at a time (quicker than one by one,
/// gentle on a small stack); the answers in order.
async fn send_all<'a, T, A, F, Fut>(
    points: &'a [EntryPoint<'a>],
    items: &'a [T],
    send: F,
) -> Vec<(&'a EntryPoint<'a>, &'a T, Result<A>)>
where
    F: Fn(&'a EntryPoint<'a>, &'a T) -> Fut,
    Fut: std::future::Future<Output = Result<A>>,
{
    let send = &send;
    let requests = points
        .iter()
        .flat_map(|point| items.iter().map(move |item| (point, item)))
        .map(|(point, item)| async move { (point, item, send(point, item).await) });
    futures::stream::iter(requests)
        .buffered(PARALLEL_REQUESTS)
        .collect()
        .await
}

/// Sends every call through every entry point; returns how many were sent and the problems.
async fn sweep(
    ctx: &Ctx<'_>,
    calls: &[Call],
    creds: Creds<'_>,
    mut judge: impl FnMut(&Answer) -> std::result::Result<(), String>,
) -> Result<(usize, Vec<String>)> {
    let points = entry_points(ctx);
    let answers = send_all(&points, calls, |point, call| send(point, call, creds)).await;
    let mut problems = Vec::new();
    for (point, call, answer) in &answers {
        if let Err(problem) = judge(answer.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?) {
            problems.push(format!("{} {call}: {problem}", point.label));
        }
    }
    Ok((answers.len(), problems))
}

/// One variation, raw and without credentials, and the redirect it answers with followed once
/// when on the same origin: the first status, and the problem if any.
async fn try_variation(
    ctx: &Ctx<'_>,
    point: &EntryPoint<'_>,
    sent: &str,
) -> Result<(u16, std::result::Result<(), String>)> {
    let origin = Origin::parse(&point.origin).with_context(|| point.label.clone())?;
    let raw = &ctx.http.raw;
    let answer = raw.get(&origin, sent).await?;
    let verdict = match judge_variation(&origin, sent, &answer) {
        Ok(None) => Ok(()),
        Err(problem) => Err(problem),
        Ok(Some(next)) => judge_followed(answer.status, &next, &raw.get(&origin, &next).await?),
    };
    Ok((answer.status, verdict))
}

async fn path_variations(ctx: &Ctx<'_>) -> Outcome {
    let paths = variations(&ctx.target.ingress.rest_path);
    let points = entry_points(ctx);
    let answers = send_all(&points, &paths, |point, path| {
        try_variation(ctx, point, path)
    })
    .await;
    let mut statuses = BTreeSet::new();
    let mut problems = Vec::new();
    for (point, path, answer) in &answers {
        let (status, verdict) = answer.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        statuses.insert(*status);
        if let Err(problem) = verdict {
            problems.push(format!("{} GET {path}: {problem}", point.label));
        }
    }
    let seen: Vec<String> = statuses.iter().map(u16::to_string).collect();
    Ok(verdict(
        answers.len(),
        problems,
        &format!(
            "no 2xx or 5xx without credentials, requests sent as written (401/403/404/400/405 and same-origin redirects that do not lead to data are fine; seen: {})",
            seen.join(", ")
        ),
    ))
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

    let calls = gets(&paths);

    rec.check(&NO_CREDENTIALS, async {
        let (sent, problems) = sweep(ctx, &calls, Creds::None, judge_refusal).await?;
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

    rec.check(&WRITE_METHODS, async {
        let writes = write_calls(&ctx.target.ingress.rest_path);
        let (sent, problems) = sweep(ctx, &writes, Creds::None, judge_refusal).await?;
        Ok(verdict(
            sent,
            problems,
            &format!(
                "{refusal} to POST, PUT and DELETE ({} calls × {points} entry points)",
                writes.len()
            ),
        ))
    })
    .await;

    rec.check(&UNKNOWN_USER, async {
        let user = format!("conformance-unknown-{}", unique());
        let (sent, problems) = sweep(
            ctx,
            &calls,
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
        let task = gets(&[format!("{}/task", ctx.target.ingress.rest_path)]);
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

    rec.check(&PATH_VARIATIONS, path_variations(ctx)).await;

    rec.check(&VALID_CREDENTIALS, async {
        let password = ctx.password()?.expose();
        let (sent, problems) = sweep(
            ctx,
            &calls,
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
    let task = Call::get(path.clone());
    let answer = send(ingress, &task, Creds::Basic(ctx.username(), wrong)).await?;
    let refused = judge_refusal(&answer);
    // Whatever the answer, wait out Camunda's login delay so that later checks can log in.
    let started = Instant::now();
    let recovered = poll(
        Duration::from_secs(ctx.target.bounds.settle_s),
        Duration::from_millis(500),
        || async {
            match send(ingress, &task, Creds::Basic(ctx.username(), password)).await {
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
    use crate::http::raw::parse_head;
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

    fn head(status: u16, location: Option<&str>) -> RawAnswer {
        let mut text = format!("HTTP/1.1 {status} X");
        if let Some(location) = location {
            text.push_str(&format!("\r\nLocation: {location}"));
        }
        parse_head(text.as_bytes()).unwrap()
    }

    #[rstest]
    #[case::refused(401, None, Ok(None))]
    #[case::forbidden(403, None, Ok(None))]
    #[case::unknown(404, None, Ok(None))]
    #[case::bad_request(400, None, Ok(None))]
    #[case::method(405, None, Ok(None))]
    #[case::data(200, None, Err("answered 200 without credentials"))]
    #[case::no_content(204, None, Err("answered 204 without credentials"))]
    #[case::server_error(500, None, Err("answered 500 (a server error is not a refusal)"))]
    #[case::relative(308, Some("/engine-rest/task"), Ok(Some("/engine-rest/task")))]
    #[case::relative_to_the_path(302, Some("task/"), Ok(Some("/engine-rest/engine/task/")))]
    #[case::same_origin(
        301,
        Some("https://camunda.test:18443/engine-rest/task?a=1"),
        Ok(Some("/engine-rest/task?a=1"))
    )]
    #[case::other_port(
        301,
        Some("https://camunda.test/engine-rest/task"),
        Err("off the origin")
    )]
    #[case::plain_http(
        301,
        Some("http://camunda.test:18443/engine-rest/task"),
        Err("off the origin")
    )]
    #[case::other_host(
        302,
        Some("https://evil.test:18443/engine-rest/task"),
        Err("off the origin")
    )]
    #[case::protocol_relative(302, Some("//evil.test/engine-rest/task"), Err("off the origin"))]
    fn variations_never_serve_data(
        #[case] status: u16,
        #[case] location: Option<&str>,
        #[case] expected: std::result::Result<Option<&str>, &str>,
    ) {
        let origin = Origin::parse("https://camunda.test:18443").unwrap();
        let judged = judge_variation(&origin, "/engine-rest/engine/x", &head(status, location));
        match (judged, expected) {
            (Ok(next), Ok(want)) => assert_eq!(next.as_deref(), want),
            (Err(problem), Err(want)) => assert!(problem.contains(want), "{problem}"),
            (judged, _) => panic!("unexpected {judged:?}"),
        }
    }

    #[rstest]
    #[case(401, true)]
    #[case(404, true)]
    #[case(302, true)]
    #[case(200, false)]
    fn followed_redirects_must_not_serve_data(#[case] status: u16, #[case] ok: bool) {
        let judged = judge_followed(302, "/engine-rest/task", &head(status, None));
        assert_eq!(judged.is_ok(), ok, "{judged:?}");
        if let Err(problem) = judged {
            assert_eq!(
                problem,
                "answered 302 to /engine-rest/task, which answered 200 without credentials"
            );
        }
    }

    #[test]
    fn write_calls_touch_nothing_that_exists() {
        let calls = write_calls("/engine-rest");
        let shown: Vec<String> = calls.iter().map(Call::to_string).collect();
        assert_eq!(
            shown,
            [
                "POST /engine-rest/process-definition/key/camunda-conformance-none/start",
                "PUT /engine-rest/user/camunda-conformance-none/profile",
                "DELETE /engine-rest/deployment/camunda-conformance-none",
                "DELETE /engine-rest/process-instance/camunda-conformance-none",
                "POST /engine-rest/message",
            ]
        );
        for call in &calls {
            let written = format!(
                "{call} {}",
                call.body
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            );
            assert!(
                written.contains(NONE) || call.path.ends_with("/message"),
                "{written}"
            );
        }
        assert_eq!(calls[4].body, Some(json!({ "messageName": NONE })));
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
        assert!(v.contains(&"/engine-rest/engine/%2e%2e/task".to_string()));
        assert!(v.contains(&"/engine-rest/engine/..;/task".to_string()));
        assert!(v.contains(&"/engine-rest/task?".to_string()));
        let v = variations("/api/rest");
        assert!(v.contains(&"/%61pi/rest/task".to_string()));
        assert!(v.contains(&"/api/rest/engine/%252e%252e/task".to_string()));
    }
}
