//! sessions: webapp login through the ingress; sticky mode keeps a session on exactly one
//! replica and the affinity cookie leads every request there; shared mode makes a session valid
//! everywhere, also after the replica that created it is killed; logout ends it everywhere.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Cookies, Polled};
use crate::metrics;
use crate::stop::stop_replica;
use crate::target::SessionMode;
use crate::webapp::{Webapp, SESSION_COOKIE};
use crate::Suite;

const fn check(id: &'static str, description: &'static str, disruptive: bool) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Sessions,
        description,
        disruptive,
    }
}

const LOGIN_REQUIRES_XSRF: CheckInfo = check(
    "sessions.login-requires-xsrf",
    "a webapp login without the X-XSRF-TOKEN header is refused with 403",
    false,
);
const LOGIN: CheckInfo = check(
    "sessions.login",
    "the suite's user logs in to the webapp through the ingress (XSRF flow, new session id)",
    false,
);
const INGRESS_REQUESTS: CheckInfo = check(
    "sessions.ingress-requests",
    "repeated requests through the ingress with the session's cookies all find the session",
    false,
);
const FRESH_CLIENTS_SPREAD: CheckInfo = check(
    "sessions.fresh-clients-spread",
    "new clients (no cookies) through the ingress are spread over every replica",
    false,
);
const AFFINITY_COOKIE: CheckInfo = check(
    "sessions.affinity-cookie",
    "sticky mode: the ingress sets its affinity cookie on a new client's first response",
    false,
);
const AFFINITY_COOKIE_ATTRIBUTES: CheckInfo = check(
    "sessions.affinity-cookie-attributes",
    "sticky mode: the affinity cookie is Secure (TLS), HttpOnly, its Path covers the webapp and it is not JSESSIONID (GEP-1619)",
    false,
);
const AFFINITY_PERSISTS: CheckInfo = check(
    "sessions.affinity-persists",
    "sticky mode: 50 requests carrying only the affinity cookie all reach one replica (GEP-1619)",
    false,
);
const AFFINITY_ROUTING: CheckInfo = check(
    "sessions.affinity-routing",
    "sticky mode: the affinity cookie is what routes (with it every request finds the session, without it some miss)",
    false,
);
const STICKY_ONE_REPLICA: CheckInfo = check(
    "sessions.sticky-one-replica",
    "sticky mode: the session is valid on exactly one replica",
    false,
);
const SHARED_EVERY_REPLICA: CheckInfo = check(
    "sessions.shared-every-replica",
    "shared mode: the session is valid on every replica",
    false,
);
const SHARED_SURVIVES_STOP: CheckInfo = check(
    "sessions.shared-survives-stop",
    "shared mode: a session outlives the replica that created it (the replica is killed)",
    true,
);
const LOGOUT: CheckInfo = check(
    "sessions.logout",
    "logout through the ingress ends the session on the ingress and every replica",
    false,
);

pub(crate) const CHECKS: &[CheckInfo] = &[
    LOGIN_REQUIRES_XSRF,
    LOGIN,
    INGRESS_REQUESTS,
    FRESH_CLIENTS_SPREAD,
    AFFINITY_COOKIE,
    AFFINITY_COOKIE_ATTRIBUTES,
    AFFINITY_PERSISTS,
    AFFINITY_ROUTING,
    STICKY_ONE_REPLICA,
    SHARED_EVERY_REPLICA,
    SHARED_SURVIVES_STOP,
    LOGOUT,
];

/// Requests through the ingress that must all find the session.
const REPEATS: usize = 20;

/// Requests carrying only the affinity cookie that must all reach one replica (GEP-1619's
/// conformance plan).
const PERSIST_REQUESTS: u32 = 50;

/// Cookie-less requests through the ingress: this many per replica, at least the minimum. Each
/// replica must serve a fifth of its fair share: random balancing misses that about once in a
/// million runs with two replicas, and less often with more.
const FRESH_PER_REPLICA: u32 = 15;
const MIN_FRESH_CLIENTS: u32 = 30;
const FAIR_SHARE_DIVISOR: f64 = 5.0;

/// The webapp through the ingress.
pub(crate) fn ingress<'c>(ctx: &'c Ctx<'_>) -> Webapp<'c> {
    Webapp {
        label: "ingress".into(),
        client: &ctx.http.ingress,
        base: ctx.target.webapp_url(""),
    }
}

fn replicas<'c>(ctx: &'c Ctx<'_>) -> Vec<Webapp<'c>> {
    ctx.target
        .replicas
        .iter()
        .map(|r| Webapp {
            label: r.name.clone(),
            client: &ctx.http.direct,
            base: format!(
                "{}{}",
                r.http_url.trim_end_matches('/'),
                ctx.target.ingress.webapp_path
            ),
        })
        .collect()
}

/// Only the application's session cookie: what a replica asked directly needs.
pub(crate) fn session_only(cookies: &Cookies) -> Cookies {
    let mut only = Cookies::default();
    if let Some(id) = cookies.get(SESSION_COOKIE) {
        only.insert(SESSION_COOKIE, id);
    }
    only
}

/// Which replicas (by label) know the session; errors are reported as such.
async fn where_valid(
    replicas: &[Webapp<'_>],
    cookies: &Cookies,
    skip: Option<&str>,
) -> Result<(Vec<String>, Vec<String>)> {
    let only = session_only(cookies);
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for replica in replicas.iter().filter(|r| Some(r.label.as_str()) != skip) {
        match replica.whoami(&only).await? {
            Some(_) => valid.push(replica.label.clone()),
            None => invalid.push(replica.label.clone()),
        }
    }
    Ok((valid, invalid))
}

/// `REPEATS` who-am-I requests through the ingress; how many found the user.
async fn repeated(ingress: &Webapp<'_>, cookies: &Cookies, username: &str) -> Result<Vec<String>> {
    let mut misses = Vec::new();
    for i in 1..=REPEATS {
        match ingress.whoami(cookies).await? {
            Some(user) if user == username => {}
            Some(other) => misses.push(format!("request {i}: logged in as `{other}`")),
            None => misses.push(format!("request {i}: not logged in (404)")),
        }
    }
    Ok(misses)
}

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    let mode = ctx.target.sessions.mode;
    let ingress = ingress(ctx);
    let replicas = replicas(ctx);
    let username = ctx.username();

    rec.check(&LOGIN_REQUIRES_XSRF, async {
        let password = ctx.password()?;
        let mut cookies = Cookies::default();
        ingress.fetch_xsrf(&mut cookies).await?;
        let (status, _) = ingress
            .post_login(&mut cookies, None, username, password)
            .await?;
        Ok(if status == StatusCode::FORBIDDEN {
            Verdict::Pass("POST login without X-XSRF-TOKEN: 403".into())
        } else {
            Verdict::Fail(format!(
                "POST login without X-XSRF-TOKEN: expected 403, got {}",
                status.as_u16()
            ))
        })
    })
    .await;

    let mut session = None;
    rec.check(&LOGIN, async {
        let password = ctx.password()?;
        let mut cookies = Cookies::default();
        let user = ingress.login(&mut cookies, username, password).await?;
        let verdict = if user == username {
            Verdict::Pass(format!(
                "logged in as `{user}` through the ingress; cookies: {}",
                cookies.names().join(", ")
            ))
        } else {
            Verdict::Fail(format!(
                "expected to be logged in as `{username}`, the webapp says `{user}`"
            ))
        };
        session = Some(cookies);
        Ok(verdict)
    })
    .await;

    // Checks of the other mode do not apply (reported before a failed login fails the rest).
    let (not_this_mode, mode_name) = match mode {
        SessionMode::Sticky => (&[SHARED_EVERY_REPLICA, SHARED_SURVIVES_STOP][..], "sticky"),
        SessionMode::Shared => (
            &[
                AFFINITY_COOKIE,
                AFFINITY_COOKIE_ATTRIBUTES,
                AFFINITY_PERSISTS,
                AFFINITY_ROUTING,
                STICKY_ONE_REPLICA,
            ][..],
            "shared",
        ),
    };
    for info in not_this_mode {
        rec.skip(info, &format!("sessions.mode is {mode_name}"));
    }
    // Needs no login: a failed login must not hide what the cookie itself does.
    if mode == SessionMode::Sticky {
        affinity_cookie_checks(ctx, rec).await;
    }
    let Some(mut session) = session else {
        let reason = format!("not checked: the login failed (see {})", LOGIN.id);
        rec.fail(&INGRESS_REQUESTS, &reason);
        // Needs no session: still worth knowing.
        rec.check(&FRESH_CLIENTS_SPREAD, fresh_clients_spread(ctx))
            .await;
        rec.fail_rest(Suite::Sessions, &reason);
        return;
    };

    rec.check(&INGRESS_REQUESTS, async {
        let misses = repeated(&ingress, &session, username).await?;
        Ok(if misses.is_empty() {
            Verdict::Pass(format!("{REPEATS} of {REPEATS} requests through the ingress found the session"))
        } else {
            Verdict::Fail(format!(
                "expected all {REPEATS} requests through the ingress to find the session; {} did not: {}",
                misses.len(),
                misses.join("; ")
            ))
        })
    })
    .await;

    rec.check(&FRESH_CLIENTS_SPREAD, fresh_clients_spread(ctx))
        .await;

    let mut stopped: Option<String> = None;
    match mode {
        SessionMode::Sticky => {
            rec.check(&AFFINITY_ROUTING, async {
                if replicas.len() < 2 {
                    return Ok(Verdict::Skip(format!(
                        "needs at least two replicas (the target lists {})",
                        replicas.len()
                    )));
                }
                let with = repeated(&ingress, &session, username).await?;
                // The client keeps no cookie the ingress hands out: each request is routed
                // as if new, so only the affinity cookie could have kept it on one replica.
                let without = repeated(&ingress, &session_only(&session), username).await?;
                Ok(judge_affinity_routing(
                    &ctx.target.sessions.affinity_cookie,
                    &with,
                    &without,
                ))
            })
            .await;
            rec.check(&STICKY_ONE_REPLICA, async {
                if replicas.is_empty() {
                    return Ok(Verdict::Skip("the target lists no replicas".into()));
                }
                let (valid, invalid) = where_valid(&replicas, &session, None).await?;
                Ok(if valid.len() == 1 {
                    Verdict::Pass(format!(
                        "valid on {} only (not on {})",
                        valid[0],
                        or_none(&invalid)
                    ))
                } else {
                    Verdict::Fail(format!(
                        "expected the session on exactly one replica; valid on [{}], not on [{}]",
                        valid.join(", "),
                        invalid.join(", ")
                    ))
                })
            })
            .await;
        }
        SessionMode::Shared => {
            rec.check(&SHARED_EVERY_REPLICA, async {
                if replicas.is_empty() {
                    return Ok(Verdict::Skip("the target lists no replicas".into()));
                }
                let (valid, invalid) = where_valid(&replicas, &session, None).await?;
                Ok(if invalid.is_empty() {
                    Verdict::Pass(format!("valid on every replica: {}", valid.join(", ")))
                } else {
                    Verdict::Fail(format!(
                        "expected the session on every replica; not on [{}] (valid on [{}])",
                        invalid.join(", "),
                        valid.join(", ")
                    ))
                })
            })
            .await;
            rec.check(
                &SHARED_SURVIVES_STOP,
                survives_stop(ctx, &ingress, &replicas, &mut stopped),
            )
            .await;
        }
    }

    rec.check(&LOGOUT, async {
        let old = session.clone();
        ingress.logout(&mut session).await?;
        let checked = poll(
            Duration::from_secs(ctx.target.bounds.settle_s),
            Duration::from_millis(500),
            || async {
                let still: Result<Vec<String>> = async {
                    let mut still = Vec::new();
                    if ingress.whoami(&old).await?.is_some() {
                        still.push("ingress".to_string());
                    }
                    still.extend(where_valid(&replicas, &old, stopped.as_deref()).await?.0);
                    Ok(still)
                }
                .await;
                match still {
                    Ok(still) if still.is_empty() => Polled::Done(()),
                    Ok(still) => Polled::Pending(format!("still logged in on {}", still.join(", "))),
                    Err(err) => Polled::Pending(format!("{err:#}")),
                }
            },
        )
        .await;
        let skipped = stopped
            .as_ref()
            .map(|name| format!(" ({name} was stopped earlier)"))
            .unwrap_or_default();
        Ok(match checked {
            Ok(()) => Verdict::Pass(format!(
                "after logout the session is gone through the ingress and on every running replica{skipped}"
            )),
            Err(err) => Verdict::Fail(format!("expected logout to end the session everywhere: {err:#}")),
        })
    })
    .await;
}

/// With the affinity cookie every request must find the session; without it at least one
/// must miss, else the ingress does not route by the cookie (one upstream, IP hash, …).
fn judge_affinity_routing(cookie: &str, with: &[String], without: &[String]) -> Verdict {
    let found = |misses: &[String]| REPEATS - misses.len();
    let seen = format!(
        "with `{cookie}` {} of {REPEATS} requests found the session, without it {} of {REPEATS}",
        found(with),
        found(without)
    );
    if !with.is_empty() {
        Verdict::Fail(format!(
            "expected all {REPEATS} requests with `{cookie}` to find the session; {seen}: {}",
            with.join("; ")
        ))
    } else if without.is_empty() {
        Verdict::Fail(format!(
            "expected some of {REPEATS} requests without `{cookie}` to miss the session (another replica); {seen}: the ingress does not route by its cookie"
        ))
    } else {
        Verdict::Pass(seen)
    }
}

/// Cookie-less requests per replica through the ingress; at least [`MIN_FRESH_CLIENTS`].
fn fresh_clients(replicas: usize) -> u32 {
    u32::try_from(replicas)
        .unwrap_or(u32::MAX)
        .saturating_mul(FRESH_PER_REPLICA)
        .max(MIN_FRESH_CLIENTS)
}

/// Cookie-less GETs through the ingress, attributed by each replica's own request counter
/// (background traffic told apart by a quiet window).
async fn fresh_clients_spread(ctx: &Ctx<'_>) -> Outcome {
    let replicas = &ctx.target.replicas;
    if replicas.len() < 2 {
        return Ok(Verdict::Skip(format!(
            "needs at least two replicas (the target lists {})",
            replicas.len()
        )));
    }
    if let Some(reason) = metrics::lacking_metrics(replicas) {
        return Ok(Verdict::Skip(reason));
    }
    let counted = metrics::with_metrics(replicas);
    let sent = fresh_clients(counted.len());
    let url = ctx.target.rest_url("/engine");
    let shares = metrics::ingress_traffic_shares(ctx, &counted, &url, sent, None).await?;
    Ok(judge_spread(&url, sent, &shares))
}

/// Every replica must have served its share of the fresh clients: a Ready replica the ingress
/// never sends to is capacity that is not there (and, with an HPA, a scale-out that helps
/// nobody).
fn judge_spread(url: &str, sent: u32, shares: &[metrics::Share]) -> Verdict {
    let count = shares.len().max(1) as f64;
    let fair = f64::from(sent) / count;
    let least = fair / FAIR_SHARE_DIVISOR;
    let idle: Vec<&str> = shares
        .iter()
        .filter(|share| share.ours() < least)
        .map(|share| share.name.as_str())
        .collect();
    let seen = format!(
        "after {sent} cookie-less GET {url} through the ingress the request counters grew by {}",
        metrics::describe_shares(shares)
    );
    if idle.is_empty() {
        Verdict::Pass(seen)
    } else {
        Verdict::Fail(format!(
            "expected every replica to serve at least {least:.0} of {sent} new clients; no share for {}; {seen}",
            idle.join(", ")
        ))
    }
}

/// The affinity cookie as GEP-1619 plans to test it: set on a new client's first response,
/// with the right attributes, and every request carrying it reaches one replica.
async fn affinity_cookie_checks(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    let name = &ctx.target.sessions.affinity_cookie;
    let mut first: Option<String> = None;
    rec.check(&AFFINITY_COOKIE, async {
        let url = ctx.target.rest_url("/engine");
        let response = ctx
            .http
            .ingress
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} through the ingress"))?;
        let status = response.status();
        if status.is_server_error() {
            return Ok(Verdict::Fail(format!(
                "GET {url} through the ingress: HTTP {}, not an answer of Camunda's",
                status.as_u16()
            )));
        }
        let set: Vec<String> = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        Ok(match set.iter().find(|line| cookie_pair(line).0 == name) {
            Some(line) => {
                first = Some(line.clone());
                Verdict::Pass(format!(
                    "the first response to a new client (GET {url}) sets `{name}`"
                ))
            }
            None => Verdict::Fail(format!(
                "expected the ingress to set the affinity cookie `{name}` on a new client's first response (GET {url}); cookies set: [{}]",
                set.iter().map(|line| cookie_pair(line).0).collect::<Vec<_>>().join(", ")
            )),
        })
    })
    .await;
    let Some(line) = first else {
        let reason = format!(
            "not checked: the ingress set no affinity cookie (see {})",
            AFFINITY_COOKIE.id
        );
        rec.fail(&AFFINITY_COOKIE_ATTRIBUTES, &reason);
        rec.fail(&AFFINITY_PERSISTS, &reason);
        return;
    };
    rec.check(&AFFINITY_COOKIE_ATTRIBUTES, async {
        Ok(judge_cookie_attributes(
            &line,
            &ctx.target.ingress.webapp_path,
        ))
    })
    .await;
    rec.check(&AFFINITY_PERSISTS, async {
        let replicas = &ctx.target.replicas;
        let counted = metrics::with_metrics(replicas);
        if counted.len() < 2 || counted.len() < replicas.len() {
            return Ok(Verdict::Skip(format!(
                "needs at least two replicas, each with a metrics_url, to tell where requests went ({} of {} have one)",
                counted.len(),
                replicas.len()
            )));
        }
        let (cookie_name, value) = cookie_pair(&line);
        let cookie = format!("{cookie_name}={value}");
        let url = ctx.target.rest_url("/engine");
        let shares =
            metrics::ingress_traffic_shares(ctx, &counted, &url, PERSIST_REQUESTS, Some(&cookie))
                .await?;
        Ok(judge_persists(cookie_name, PERSIST_REQUESTS, &shares))
    })
    .await;
}

/// `(name, value)` of a `Set-Cookie` line.
fn cookie_pair(line: &str) -> (&str, &str) {
    let pair = line.split(';').next().unwrap_or_default().trim();
    pair.split_once('=').unwrap_or((pair, ""))
}

/// GEP-1619's attributes: Secure (the ingress is https), HttpOnly, a Path covering the webapp
/// (absent, it defaults to the first response's directory) and a name of its own.
fn judge_cookie_attributes(line: &str, webapp_path: &str) -> Verdict {
    let (name, _) = cookie_pair(line);
    let attributes: Vec<(String, String)> = line
        .split(';')
        .skip(1)
        .map(|part| {
            let (key, value) = part.trim().split_once('=').unwrap_or((part.trim(), ""));
            (key.to_ascii_lowercase(), value.to_string())
        })
        .collect();
    let has = |key: &str| attributes.iter().any(|(k, _)| k == key);
    let path = attributes
        .iter()
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.as_str());
    let mut problems = Vec::new();
    if name.eq_ignore_ascii_case("JSESSIONID") {
        problems
            .push("named JSESSIONID, which overwrites Camunda's own session cookie".to_string());
    }
    if !has("secure") {
        problems.push("not Secure (a browser would send it over plain HTTP)".to_string());
    }
    if !has("httponly") {
        problems.push("not HttpOnly (scripts can read it)".to_string());
    }
    match path {
        Some(path) if covers(path, webapp_path) => {}
        Some(path) => problems.push(format!(
            "Path={path} does not cover the webapp {webapp_path}"
        )),
        None => problems.push(format!(
            "no Path: it defaults to the first response's directory, which need not cover the webapp {webapp_path}"
        )),
    }
    if problems.is_empty() {
        Verdict::Pass(format!("`{line}`"))
    } else {
        Verdict::Fail(format!(
            "expected the affinity cookie Secure, HttpOnly, with a Path covering {webapp_path} and not named JSESSIONID; `{line}`: {}",
            problems.join("; ")
        ))
    }
}

/// Whether a cookie Path matches every request below `webapp_path` (RFC 6265 path-match).
fn covers(path: &str, webapp_path: &str) -> bool {
    path == "/"
        || webapp_path == path
        || webapp_path
            .strip_prefix(path)
            .is_some_and(|rest| path.ends_with('/') || rest.starts_with('/'))
}

/// One replica took (nearly) all requests carrying the cookie, none of the others any share.
/// The chosen replica's raw growth must cover the requests (background only adds to it: an
/// estimate taken off it can only hide requests that did arrive); the others' growth beyond
/// their background must stay under the slack.
fn judge_persists(cookie: &str, sent: u32, shares: &[metrics::Share]) -> Verdict {
    let slack = f64::from(sent) * metrics::ATTRIBUTION_SLACK;
    let took: Vec<&metrics::Share> = shares.iter().filter(|s| s.ours() >= slack).collect();
    let seen = format!(
        "after {sent} requests with `{cookie}` the request counters grew by {}",
        metrics::describe_shares(shares)
    );
    match took.as_slice() {
        [one] if one.grown >= f64::from(sent) - slack => {
            Verdict::Pass(format!("all reached {}; {seen}", one.name))
        }
        _ => {
            Verdict::Fail(format!(
            "expected every request carrying `{cookie}` to reach one replica; reached [{}]; {seen}",
            took.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
        }
    }
}

fn or_none(labels: &[String]) -> String {
    if labels.is_empty() {
        "any other".into()
    } else {
        labels.join(", ")
    }
}

/// Logs in directly on a stoppable replica, proves the session is everywhere, kills that
/// replica and proves the session lives on through the ingress and on the others.
async fn survives_stop(
    ctx: &Ctx<'_>,
    ingress: &Webapp<'_>,
    replicas: &[Webapp<'_>],
    stopped: &mut Option<String>,
) -> Outcome {
    if replicas.len() < 2 {
        return Ok(Verdict::Skip(format!(
            "needs at least two replicas (the target lists {})",
            replicas.len()
        )));
    }
    let Some((index, victim)) = ctx
        .target
        .replicas
        .iter()
        .enumerate()
        .find(|(_, r)| r.stop.is_some())
    else {
        return Ok(Verdict::Skip(
            "no replica of the target has a stop handle".into(),
        ));
    };
    let username = ctx.username();
    let mut cookies = Cookies::default();
    replicas[index]
        .login(&mut cookies, username, ctx.password()?)
        .await?;
    let only = session_only(&cookies);
    let (_, invalid) = where_valid(replicas, &only, None).await?;
    if !invalid.is_empty() {
        return Ok(Verdict::Fail(format!(
            "the session created on {} is not valid on [{}] even before the stop",
            victim.name,
            invalid.join(", ")
        )));
    }
    let done = stop_replica(ctx, victim).await?;
    *stopped = Some(victim.name.clone());
    let (valid, invalid) = where_valid(replicas, &only, Some(&victim.name)).await?;
    let misses = repeated(ingress, &only, username).await?;
    Ok(if invalid.is_empty() && misses.is_empty() {
        Verdict::Pass(format!(
            "session created on {} ({done}); still valid on {} and on {REPEATS} of {REPEATS} requests through the ingress",
            victim.name,
            valid.join(", ")
        ))
    } else {
        Verdict::Fail(format!(
            "expected the session created on {} to live on after {done}; not valid on [{}]; through the ingress: {}",
            victim.name,
            invalid.join(", "),
            if misses.is_empty() { "fine".to_string() } else { misses.join("; ") }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn shares(grown: &[f64], background: f64) -> Vec<metrics::Share> {
        grown
            .iter()
            .enumerate()
            .map(|(i, d)| metrics::Share {
                name: format!("camunda-{i}"),
                grown: *d,
                background,
            })
            .collect()
    }

    #[rstest]
    #[case::balanced(30, &[15.0, 15.0], 0.0, None)]
    #[case::three_replicas(45, &[20.0, 15.0, 10.0], 0.0, None)]
    #[case::one_upstream(30, &[30.0, 0.0], 0.0, Some("no share for camunda-1"))]
    #[case::barely_touched(30, &[27.0, 2.0], 0.0, Some("no share for camunda-1"))]
    // Four Ready replicas, two of them outside the Service: kubelet probes move their
    // counters, the quiet window tells that apart.
    #[case::probes_only(
        60,
        &[31.0, 33.0, 4.0, 5.0],
        3.5,
        Some("no share for camunda-2, camunda-3")
    )]
    fn every_replica_takes_fresh_clients(
        #[case] sent: u32,
        #[case] grown: &[f64],
        #[case] background: f64,
        #[case] idle: Option<&str>,
    ) {
        assert_eq!(fresh_clients(grown.len()), sent);
        let verdict = judge_spread(
            "https://camunda.test/engine-rest/engine",
            sent,
            &shares(grown, background),
        );
        match (verdict, idle) {
            (Verdict::Pass(m), None) => assert!(m.contains("camunda-0 +"), "{m}"),
            (Verdict::Fail(m), Some(idle)) => {
                assert!(
                    m.starts_with("expected every replica to serve at least 3 of"),
                    "{m}"
                );
                assert!(m.contains(idle), "{m}");
            }
            (verdict, _) => panic!("unexpected {verdict:?}"),
        }
    }

    #[rstest]
    // What the local ingress sets (and ingress-nginx with `session-cookie-secure`,
    // `session-cookie-path`).
    #[case::right("INGRESSCOOKIE=4c2d9e; Path=/; Secure; HttpOnly", None)]
    #[case::path_of_the_webapp("route=abc; Path=/camunda; secure; httponly", None)]
    #[case::path_prefix_only(
        "route=abc; Path=/cam; Secure; HttpOnly",
        Some("Path=/cam does not cover the webapp /camunda")
    )]
    #[case::lax("INGRESSCOOKIE=4c2d9e; Path=/api", Some("not Secure (a browser would send it over plain HTTP); not HttpOnly (scripts can read it); Path=/api does not cover the webapp /camunda"))]
    #[case::no_path("INGRESSCOOKIE=4c2d9e; Secure; HttpOnly", Some("no Path"))]
    #[case::jsessionid(
        "JSESSIONID=4c2d9e; Path=/; Secure; HttpOnly",
        Some("named JSESSIONID")
    )]
    fn affinity_cookie_attributes(#[case] line: &str, #[case] problem: Option<&str>) {
        match (judge_cookie_attributes(line, "/camunda"), problem) {
            (Verdict::Pass(m), None) => assert_eq!(m, format!("`{line}`")),
            (Verdict::Fail(m), Some(problem)) => assert!(m.contains(problem), "{m}"),
            (verdict, _) => panic!("unexpected {verdict:?}"),
        }
    }

    #[rstest]
    #[case::one_replica(&[0.0, 50.0], 0.0, Some("camunda-1"))]
    #[case::one_replica_under_probes(&[3.0, 52.0], 2.5, Some("camunda-1"))]
    // Seen on the node backend: a quiet window's estimate above what the probes really added.
    #[case::background_overestimated(&[3.0, 53.0], 9.0, Some("camunda-1"))]
    #[case::cookie_ignored(&[25.0, 25.0], 0.0, None)]
    #[case::mostly(&[10.0, 40.0], 0.0, None)]
    #[case::lost(&[0.0, 30.0], 0.0, None)]
    fn fifty_requests_with_the_cookie_reach_one_replica(
        #[case] grown: &[f64],
        #[case] background: f64,
        #[case] reached: Option<&str>,
    ) {
        match (
            judge_persists("INGRESSCOOKIE", 50, &shares(grown, background)),
            reached,
        ) {
            (Verdict::Pass(m), Some(name)) => {
                assert!(m.starts_with(&format!("all reached {name}; ")), "{m}")
            }
            (Verdict::Fail(m), None) => assert!(
                m.starts_with(
                    "expected every request carrying `INGRESSCOOKIE` to reach one replica"
                ),
                "{m}"
            ),
            (verdict, _) => panic!("unexpected {verdict:?}"),
        }
        assert_eq!(cookie_pair("A=b=c; Path=/"), ("A", "b=c"));
    }

    fn misses(n: usize) -> Vec<String> {
        (1..=n)
            .map(|i| format!("request {i}: not logged in (404)"))
            .collect()
    }

    #[rstest]
    #[case::routes_by_cookie(0, 10, true, "with `INGRESSCOOKIE` 20 of 20")]
    #[case::one_upstream_or_ip_hash(0, 0, false, "does not route by its cookie")]
    #[case::cookie_ignored(9, 11, false, "with `INGRESSCOOKIE` 11 of 20")]
    fn the_affinity_cookie_must_route(
        #[case] with: usize,
        #[case] without: usize,
        #[case] pass: bool,
        #[case] said: &str,
    ) {
        let verdict = judge_affinity_routing("INGRESSCOOKIE", &misses(with), &misses(without));
        let (Verdict::Pass(m) | Verdict::Fail(m) | Verdict::Skip(m)) = &verdict;
        assert_eq!(matches!(verdict, Verdict::Pass(_)), pass, "{m}");
        assert!(m.contains(said), "{m}");
    }
}
