//! sessions: webapp login through the ingress; sticky mode keeps a session on exactly one
//! replica and the affinity cookie leads every request there; shared mode makes a session valid
//! everywhere, also after the replica that created it is killed; logout ends it everywhere.

use std::time::Duration;

use anyhow::Result;
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
    "sticky mode: the ingress sets its affinity cookie",
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
    AFFINITY_ROUTING,
    STICKY_ONE_REPLICA,
    SHARED_EVERY_REPLICA,
    SHARED_SURVIVES_STOP,
    LOGOUT,
];

/// Requests through the ingress that must all find the session.
const REPEATS: usize = 20;

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
            &[AFFINITY_COOKIE, AFFINITY_ROUTING, STICKY_ONE_REPLICA][..],
            "shared",
        ),
    };
    for info in not_this_mode {
        rec.skip(info, &format!("sessions.mode is {mode_name}"));
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
            rec.check(&AFFINITY_COOKIE, async {
                let name = &ctx.target.sessions.affinity_cookie;
                Ok(if session.get(name).is_some() {
                    Verdict::Pass(format!("the ingress set `{name}`"))
                } else {
                    Verdict::Fail(format!(
                        "expected the ingress to set the affinity cookie `{name}`; cookies set: {}",
                        session.names().join(", ")
                    ))
                })
            })
            .await;
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
    let lacking: Vec<&str> = replicas
        .iter()
        .filter(|r| r.metrics_url.is_none())
        .map(|r| r.name.as_str())
        .collect();
    if !lacking.is_empty() {
        return Ok(Verdict::Skip(format!(
            "needs a metrics_url for every replica to tell which served a request; none for {}",
            lacking.join(", ")
        )));
    }
    let counted = metrics::with_metrics(replicas);
    let sent = fresh_clients(counted.len());
    let url = ctx.target.rest_url("/engine");
    let shares = metrics::ingress_traffic_shares(ctx, &counted, &url, sent).await?;
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
