//! metrics: every replica serves Prometheus text with the required series, Prometheus scrapes
//! every replica, counters move with traffic, and the metrics port is not behind the ingress.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use reqwest::Url;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Polled};
use crate::prom::{self, Sample};
use crate::target::{Metrics, Replica};
use crate::Suite;

const fn check(id: &'static str, description: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        suite: Suite::Metrics,
        description,
        disruptive: false,
    }
}

const REPLICA_ENDPOINTS: CheckInfo = check(
    "metrics.replica-endpoints",
    "every replica's metrics_url answers 200 with Prometheus text",
);
const REQUIRED_SERIES_CHECK: CheckInfo = check(
    "metrics.required-series",
    "every replica exposes the JVM, Tomcat and process-engine series",
);
const PROMETHEUS_TARGETS: CheckInfo = check(
    "metrics.prometheus-targets",
    "Prometheus lists every replica as a target of the job with health up",
);
const PROMQL_PER_REPLICA: CheckInfo = check(
    "metrics.promql-per-replica",
    "a PromQL query over the job returns exactly one series per replica",
);
const COUNTERS_GROW: CheckInfo = check(
    "metrics.counters-grow",
    "the replicas' request counters count the requests sent through the ingress (told from probes and scrapes by a quiet window)",
);
const NOT_PUBLIC: CheckInfo = check(
    "metrics.not-public",
    "the metrics endpoint is not reachable through the ingress",
);

pub(crate) const CHECKS: &[CheckInfo] = &[
    REPLICA_ENDPOINTS,
    REQUIRED_SERIES_CHECK,
    PROMETHEUS_TARGETS,
    PROMQL_PER_REPLICA,
    COUNTERS_GROW,
    NOT_PUBLIC,
];

/// How a required series is recognised.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SeriesName<'a> {
    Exact(&'a str),
    /// A name prefix and, optionally, a label the series must carry.
    Prefix(&'a str, Option<(&'a str, &'a str)>),
}

/// The series every replica must expose, as the target's `[metrics]` names them (by default
/// jmx_exporter 1.x names; the Tomcat and Camunda ones come from the rules of
/// manifests/base/camunda/prometheus-jmx.yml).
pub(crate) fn required_series(names: &Metrics) -> [(&'static str, SeriesName<'_>); 3] {
    [
        ("JVM", SeriesName::Exact(names.jvm_series())),
        ("HTTP requests", SeriesName::Exact(names.request_counter())),
        (
            "process engine",
            SeriesName::Prefix(names.engine_prefix(), names.engine_label()),
        ),
    ]
}

/// Requests sent through the ingress by the counter check: enough that a stale upstream's
/// share stands out of the background noise.
const TRAFFIC_REQUESTS: u32 = 40;

/// Name prefixes whose presence means a body is this project's metrics.
const METRICS_PREFIXES: &[&str] = &["jvm_", "tomcat_", "camunda_", "process_", "jmx_"];

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    let replicas = &ctx.target.replicas;
    if replicas.is_empty() {
        rec.skip_rest(Suite::Metrics, "the target lists no replicas");
        return;
    }
    let mut scraped: Vec<(String, Result<Vec<Sample>>)> = Vec::new();
    rec.check(&REPLICA_ENDPOINTS, async {
        for replica in replicas {
            scraped.push((replica.name.clone(), scrape(ctx, replica).await));
        }
        let failures: Vec<String> = scraped
            .iter()
            .filter_map(|(name, result)| result.as_ref().err().map(|e| format!("{name}: {e:#}")))
            .collect();
        Ok(if failures.is_empty() {
            Verdict::Pass(format!("{} replicas serve Prometheus text", scraped.len()))
        } else {
            Verdict::Fail(failures.join("\n"))
        })
    })
    .await;

    rec.check(&REQUIRED_SERIES_CHECK, async {
        let mut problems = Vec::new();
        for (name, result) in &scraped {
            match result {
                Ok(samples) => {
                    let missing = missing_series(samples, &ctx.target.metrics);
                    if !missing.is_empty() {
                        problems.push(format!("{name}: missing {}", missing.join(", ")));
                    }
                }
                Err(_) => {
                    problems.push(format!("{name}: no metrics (see {})", REPLICA_ENDPOINTS.id))
                }
            }
        }
        Ok(if problems.is_empty() {
            Verdict::Pass(format!(
                "every replica exposes {}",
                describe_required(&ctx.target.metrics)
            ))
        } else {
            Verdict::Fail(format!(
                "expected {} on every replica; {}",
                describe_required(&ctx.target.metrics),
                problems.join("; ")
            ))
        })
    })
    .await;

    match &ctx.target.prometheus {
        None => {
            rec.skip(
                &PROMETHEUS_TARGETS,
                "the target has no [prometheus] section",
            );
            rec.skip(
                &PROMQL_PER_REPLICA,
                "the target has no [prometheus] section",
            );
        }
        Some(prometheus) => {
            let expected = expected_instances(replicas);
            rec.check(&PROMETHEUS_TARGETS, async {
                let expected = expected.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                let url = api_url(&prometheus.url, "api/v1/targets")?;
                let message = poll(
                    Duration::from_secs(ctx.target.bounds.prometheus_s),
                    Duration::from_secs(1),
                    || async {
                        let answer = match get_text(ctx, url.clone()).await {
                            Ok(text) => prom::parse_targets(&text),
                            Err(err) => Err(err),
                        };
                        match answer {
                            Ok(targets) => {
                                match prom::targets_up(&targets, &prometheus.job, expected) {
                                    Ok(message) => Polled::Done(message),
                                    Err(seen) => Polled::Pending(seen),
                                }
                            }
                            Err(err) => Polled::Pending(format!("{err:#}")),
                        }
                    },
                )
                .await
                .with_context(|| {
                    format!(
                        "expected every replica as an up target of job `{}`",
                        prometheus.job
                    )
                })?;
                Ok(Verdict::Pass(message))
            })
            .await;

            rec.check(&PROMQL_PER_REPLICA, async {
                let expected = expected.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                promql_per_replica(ctx, prometheus, expected).await
            })
            .await;
        }
    }

    rec.check(&COUNTERS_GROW, counters_grow(ctx)).await;
    rec.check(&NOT_PUBLIC, not_public(ctx)).await;
}

/// Both queries of [`PROMQL_PER_REPLICA`], unaggregated and without a job filter, so that a
/// replica scraped twice (e.g. by a PodMonitor and a ServiceMonitor) shows as two series.
fn per_replica_queries(jvm_series: &str, expected: &[(String, String)]) -> [String; 2] {
    let instances = instance_regex(expected);
    [
        // jmx_exporter and Micrometer both label the JVM memory series by `area`.
        format!("{jvm_series}{{area=\"heap\",instance=~`{instances}`}}"),
        format!("up{{instance=~`{instances}`}}"),
    ]
}

/// The expected instances as one anchored PromQL regex (in a backtick string: no escaping of
/// the backslashes themselves).
fn instance_regex(expected: &[(String, String)]) -> String {
    expected
        .iter()
        .map(|(_, instance)| {
            instance
                .chars()
                .flat_map(|c| {
                    let special = "\\.+*?()|[]{}^$".contains(c);
                    special.then_some('\\').into_iter().chain([c])
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Each expected instance must have exactly one series, labelled with the target's job.
/// `Err` names, per instance, the jobs of the series seen.
fn judge_per_replica(
    query: &str,
    series: &[BTreeMap<String, String>],
    job: &str,
    expected: &[(String, String)],
) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    for (replica, instance) in expected {
        let jobs: Vec<&str> = series
            .iter()
            .filter(|labels| labels.get("instance") == Some(instance))
            .map(|labels| labels.get("job").map_or("(no job label)", String::as_str))
            .collect();
        if jobs != [job] {
            problems.push(format!(
                "{replica} ({instance}): {} series, jobs [{}]",
                jobs.len(),
                jobs.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "`{query}`: expected one series of job `{job}` per replica; {}",
            problems.join("; ")
        ))
    }
}

async fn promql_per_replica(
    ctx: &Ctx<'_>,
    prometheus: &crate::target::Prometheus,
    expected: &[(String, String)],
) -> Outcome {
    let queries = per_replica_queries(ctx.target.metrics.jvm_series(), expected);
    let look = || async {
        let mut problems = Vec::new();
        for query in &queries {
            let mut url = match api_url(&prometheus.url, "api/v1/query") {
                Ok(url) => url,
                Err(err) => return Polled::Pending(format!("{err:#}")),
            };
            url.query_pairs_mut().append_pair("query", query);
            let answer = get_text(ctx, url)
                .await
                .and_then(|text| prom::parse_vector(&text));
            let verdict = match answer {
                Ok(series) => {
                    let labels: Vec<_> = series.into_iter().map(|(labels, _)| labels).collect();
                    judge_per_replica(query, &labels, &prometheus.job, expected)
                }
                Err(err) => Err(format!("`{query}`: {err:#}")),
            };
            problems.extend(verdict.err());
        }
        if problems.is_empty() {
            Polled::Done(())
        } else {
            Polled::Pending(problems.join("; "))
        }
    };
    // The first scrapes may not be in yet; a duplicate scrape stays until the bound and then
    // fails with what was seen.
    poll(
        Duration::from_secs(ctx.target.bounds.prometheus_s),
        Duration::from_secs(1),
        look,
    )
    .await
    .context("expected one series per replica")?;
    Ok(Verdict::Pass(format!(
        "{} and {} each returned one series of job `{}` for each of {} replicas",
        queries[0],
        queries[1],
        prometheus.job,
        expected.len()
    )))
}

fn api_url(base: &str, path: &str) -> Result<Url> {
    let base = Url::parse(&format!("{}/", base.trim_end_matches('/')))
        .with_context(|| format!("prometheus.url `{base}` is not a URL"))?;
    base.join(path).context("building the Prometheus API URL")
}

/// One GET on the direct client: status, content type and body.
async fn fetch(ctx: &Ctx<'_>, url: &Url) -> Result<(reqwest::StatusCode, String, String)> {
    let response = ctx
        .http
        .direct
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading GET {url}"))?;
    Ok((status, content_type, text))
}

async fn get_text(ctx: &Ctx<'_>, url: Url) -> Result<String> {
    let (status, _, text) = fetch(ctx, &url).await?;
    if !status.is_success() {
        bail!("GET {url}: HTTP {status}{}", crate::http::excerpt(&text));
    }
    Ok(text)
}

/// One replica's metrics page, parsed.
async fn scrape(ctx: &Ctx<'_>, replica: &Replica) -> Result<Vec<Sample>> {
    let Some(metrics_url) = &replica.metrics_url else {
        bail!("no metrics_url in the target");
    };
    let url = Url::parse(metrics_url).with_context(|| format!("metrics_url `{metrics_url}`"))?;
    let (status, content_type, text) = fetch(ctx, &url).await?;
    if !status.is_success() {
        bail!("GET {url}: expected 200, got HTTP {status}");
    }
    if !(content_type.starts_with("text/plain")
        || content_type.starts_with("application/openmetrics-text"))
    {
        bail!("GET {url}: expected Prometheus text, got content type `{content_type}`");
    }
    let samples = prom::parse_exposition(&text).with_context(|| format!("GET {url}"))?;
    if samples.is_empty() {
        bail!("GET {url}: the page has no samples");
    }
    Ok(samples)
}

fn missing_series(samples: &[Sample], names: &Metrics) -> Vec<String> {
    required_series(names)
        .iter()
        .filter(|(_, rule)| {
            !samples.iter().any(|s| match rule {
                SeriesName::Exact(name) => s.name == *name,
                SeriesName::Prefix(prefix, label) => {
                    s.name.starts_with(prefix)
                        && label.is_none_or(|(k, v)| s.labels.get(k).is_some_and(|l| l == v))
                }
            })
        })
        .map(|(what, rule)| format!("{what} ({})", describe_rule(*rule)))
        .collect()
}

fn describe_rule(rule: SeriesName) -> String {
    match rule {
        SeriesName::Exact(name) => format!("`{name}`"),
        SeriesName::Prefix(prefix, None) => format!("a `{prefix}*` series"),
        SeriesName::Prefix(prefix, Some((k, v))) => format!("a `{prefix}*{{{k}=\"{v}\"}}` series"),
    }
}

fn describe_required(names: &Metrics) -> String {
    required_series(names)
        .iter()
        .map(|(what, rule)| format!("{what} {}", describe_rule(*rule)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// (replica name, Prometheus instance) of every replica; an error names replicas that have
/// neither a metrics_url nor a prometheus_instance.
fn expected_instances(replicas: &[Replica]) -> std::result::Result<Vec<(String, String)>, String> {
    let mut expected = Vec::new();
    let mut unknown = Vec::new();
    for replica in replicas {
        match replica.instance() {
            Some(instance) => expected.push((replica.name.clone(), instance)),
            None => unknown.push(replica.name.as_str()),
        }
    }
    if unknown.is_empty() {
        Ok(expected)
    } else {
        Err(format!(
            "cannot tell the Prometheus instance of {}: give metrics_url or prometheus_instance",
            unknown.join(", ")
        ))
    }
}

/// One reading of each replica's request counter, in the order of the replicas read.
pub(crate) type Counters = Vec<(String, f64)>;

/// Each replica's `tomcat_requestcount_total` (summed over its connectors): attributes
/// requests to the JVM that served them, whatever route they took.
pub(crate) async fn request_counters(ctx: &Ctx<'_>, replicas: &[&Replica]) -> Result<Counters> {
    let mut counters = Vec::new();
    for replica in replicas {
        let samples = scrape(ctx, replica)
            .await
            .with_context(|| replica.name.clone())?;
        let counter = ctx.target.metrics.request_counter();
        let value = prom::sum_of(&samples, counter)
            .with_context(|| format!("{}: no `{counter}` series", replica.name))?;
        counters.push((replica.name.clone(), value));
    }
    Ok(counters)
}

/// How much each replica's counter grew between two readings of the same replicas.
pub(crate) fn growth(before: &Counters, after: &Counters) -> Counters {
    before
        .iter()
        .zip(after)
        .map(|((name, old), (_, new))| (name.clone(), new - old))
        .collect()
}

/// `camunda-0 +15, camunda-1 +15`, for messages.
pub(crate) fn describe_growth(growth: &Counters) -> String {
    growth
        .iter()
        .map(|(name, delta)| format!("{name} +{delta}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls the counters (within `settle_s`) until they grew by `at_least` in total, since a
/// counter moves when a request is done, maybe just after its answer. Returns how much each
/// grew, also when the total falls short, so that the caller judges what was seen.
pub(crate) async fn growth_after(
    ctx: &Ctx<'_>,
    replicas: &[&Replica],
    before: &Counters,
    at_least: f64,
) -> Result<Counters> {
    // Mutex, not RefCell: the suites' futures stay Send.
    let last = std::sync::Mutex::new(None);
    let counted = poll(
        Duration::from_secs(ctx.target.bounds.settle_s),
        Duration::from_millis(500),
        || async {
            match request_counters(ctx, replicas).await {
                Ok(after) => {
                    let grown = growth(before, &after);
                    if grown.iter().map(|(_, d)| d).sum::<f64>() >= at_least {
                        Polled::Done(grown)
                    } else {
                        let seen = describe_growth(&grown);
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(grown);
                        Polled::Pending(seen)
                    }
                }
                Err(err) => Polled::Pending(format!("{err:#}")),
            }
        },
    )
    .await;
    match (
        counted,
        last.into_inner().unwrap_or_else(|e| e.into_inner()),
    ) {
        (Ok(grown), _) | (Err(_), Some(grown)) => Ok(grown),
        (Err(err), None) => Err(err),
    }
}

/// Why requests cannot be attributed by the replicas' counters: the replicas without a
/// metrics_url, if any.
pub(crate) fn lacking_metrics(replicas: &[Replica]) -> Option<String> {
    let lacking: Vec<&str> = replicas
        .iter()
        .filter(|r| r.metrics_url.is_none())
        .map(|r| r.name.as_str())
        .collect();
    (!lacking.is_empty()).then(|| {
        format!(
            "needs a metrics_url for every replica; none for {}",
            lacking.join(", ")
        )
    })
}

/// The replicas that have a metrics_url.
pub(crate) fn with_metrics(replicas: &[Replica]) -> Vec<&Replica> {
    replicas
        .iter()
        .filter(|r| r.metrics_url.is_some())
        .collect()
}

/// `count` GETs of `url`, each answered 2xx, with this `Cookie` header if any; `via` names the
/// way in errors.
pub(crate) async fn send_gets(
    client: &reqwest::Client,
    url: &str,
    count: u32,
    via: &str,
    cookie: Option<&str>,
) -> Result<()> {
    for _ in 0..count {
        let mut request = client.get(url);
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let status = request
            .send()
            .await
            .with_context(|| format!("GET {url} {via}"))?
            .status();
        if !status.is_success() {
            bail!("GET {url} {via}: expected 200, got {}", status.as_u16());
        }
    }
    Ok(())
}

/// How long the counters are watched with no traffic of ours, to learn what else moves them
/// (kubelet probes, Prometheus scrapes, a Micrometer page counting our own reads).
const QUIET: Duration = Duration::from_secs(4);
/// The cadence of every counter reading, in the quiet window and after the traffic alike, so
/// that our own reads weigh the same in both.
const READ_EVERY: Duration = Duration::from_millis(500);
/// Of the requests sent, the share that background noise may hide: a stale upstream that takes
/// a larger share fails.
pub(crate) const ATTRIBUTION_SLACK: f64 = 0.1;

/// One replica's counter growth after traffic of ours, and what background traffic alone would
/// have added meanwhile (its rate in the quiet window times the time since).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Share {
    pub name: String,
    pub grown: f64,
    pub background: f64,
}

impl Share {
    /// The growth attributed to our requests.
    pub fn ours(&self) -> f64 {
        (self.grown - self.background).max(0.0)
    }
}

/// The counters just before our traffic, and each replica's background rate (per second).
pub(crate) struct Baseline {
    counters: Counters,
    rates: Vec<f64>,
    at: Instant,
}

/// Watches the counters for [`QUIET`] with no traffic of ours.
pub(crate) async fn quiet_baseline(ctx: &Ctx<'_>, replicas: &[&Replica]) -> Result<Baseline> {
    let first = request_counters(ctx, replicas).await?;
    let started = Instant::now();
    let mut last = first.clone();
    while started.elapsed() < QUIET {
        tokio::time::sleep(READ_EVERY).await;
        last = request_counters(ctx, replicas).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rates = growth(&first, &last)
        .iter()
        .map(|(_, delta)| delta.max(0.0) / seconds)
        .collect();
    Ok(Baseline {
        counters: last,
        rates,
        at: Instant::now(),
    })
}

/// Each replica's growth since the baseline, with its background allowance after `elapsed`.
fn shares(baseline: &Baseline, now: &Counters, elapsed: Duration) -> Vec<Share> {
    growth(&baseline.counters, now)
        .into_iter()
        .zip(&baseline.rates)
        .map(|((name, grown), rate)| Share {
            name,
            grown,
            background: rate * elapsed.as_secs_f64(),
        })
        .collect()
}

fn total_ours(shares: &[Share]) -> f64 {
    shares.iter().map(Share::ours).sum()
}

/// `camunda-0 +26 (~1 background), camunda-1 +0`, for messages.
pub(crate) fn describe_shares(shares: &[Share]) -> String {
    shares
        .iter()
        .map(|share| {
            if share.background >= 0.5 {
                format!(
                    "{} +{} (~{:.0} background)",
                    share.name, share.grown, share.background
                )
            } else {
                format!("{} +{}", share.name, share.grown)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Polls the counters (within `settle_s`) until the growth attributed to our `sent` requests
/// reaches them all. Returns the shares also when it falls short (the read that attributed the
/// most: the background allowance grows with every later read, and a quiet window that caught a
/// probe overestimates it): the caller judges them.
pub(crate) async fn attributed_after(
    ctx: &Ctx<'_>,
    replicas: &[&Replica],
    baseline: &Baseline,
    sent: u32,
) -> Result<Vec<Share>> {
    let bound = Duration::from_secs(ctx.target.bounds.settle_s);
    let (mut last, mut error): (Option<Vec<Share>>, _) = (None, None);
    loop {
        match request_counters(ctx, replicas).await {
            Ok(now) => {
                let seen = shares(baseline, &now, baseline.at.elapsed());
                let done = total_ours(&seen) >= f64::from(sent);
                if last
                    .as_ref()
                    .is_none_or(|best| total_ours(&seen) > total_ours(best))
                {
                    last = Some(seen);
                }
                if done {
                    break;
                }
            }
            Err(err) => error = Some(err),
        }
        if baseline.at.elapsed() + READ_EVERY > bound {
            break;
        }
        tokio::time::sleep(READ_EVERY).await;
    }
    match (last, error) {
        (Some(shares), _) => Ok(shares),
        (None, Some(err)) => Err(err.context("reading the request counters after the traffic")),
        (None, None) => bail!("the request counters were not read after the traffic"),
    }
}

/// Sends `sent` GETs of `url` through the ingress (with this `Cookie` header if any) between a
/// quiet baseline and the attributed growth of every replica's counter.
pub(crate) async fn ingress_traffic_shares(
    ctx: &Ctx<'_>,
    replicas: &[&Replica],
    url: &str,
    sent: u32,
    cookie: Option<&str>,
) -> Result<Vec<Share>> {
    let baseline = quiet_baseline(ctx, replicas).await?;
    send_gets(&ctx.http.ingress, url, sent, "through the ingress", cookie).await?;
    attributed_after(ctx, replicas, &baseline, sent).await
}

/// Whether the replicas counted (nearly) all of our requests: a share of them went elsewhere
/// when background traffic cannot explain the shortfall.
fn judge_counters(counter: &str, url: &str, sent: u32, shares: &[Share]) -> Verdict {
    let ours = total_ours(shares);
    let want = f64::from(sent) * (1.0 - ATTRIBUTION_SLACK);
    let seen = format!(
        "after {sent} GET {url} through the ingress `{counter}` grew by {} (background taken from a {} s quiet window)",
        describe_shares(shares),
        QUIET.as_secs()
    );
    if ours >= want {
        Verdict::Pass(format!(
            "{ours:.0} of {sent} requests attributed to the replicas; {seen}"
        ))
    } else {
        Verdict::Fail(format!(
            "expected the replicas to count the {sent} requests sent through the ingress; only {ours:.0} attributed to them (the ingress sends the rest elsewhere); {seen}"
        ))
    }
}

async fn counters_grow(ctx: &Ctx<'_>) -> Outcome {
    let counter = ctx.target.metrics.request_counter();
    let replicas: Vec<&Replica> = ctx.target.replicas.iter().collect();
    let url = ctx.target.rest_url("/engine");
    let shares = ingress_traffic_shares(ctx, &replicas, &url, TRAFFIC_REQUESTS, None).await?;
    Ok(judge_counters(counter, &url, TRAFFIC_REQUESTS, &shares))
}

/// Paths under which the metrics page must not be served through the ingress: the usual
/// ones at the root and under the webapp and REST prefixes, and the replicas' own.
fn metrics_paths(replicas: &[Replica], prefixes: &[&str], own: &str) -> Vec<String> {
    let mut paths = BTreeSet::new();
    for prefix in [""].iter().chain(prefixes) {
        for path in ["/metrics", "/actuator/prometheus", own] {
            paths.insert(format!("{prefix}{path}"));
        }
    }
    for replica in replicas {
        if let Some(url) = replica
            .metrics_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
        {
            paths.insert(url.path().to_string());
        }
    }
    paths.into_iter().collect()
}

/// Whether a body is a metrics page of ours (samples with JVM/Tomcat/Camunda names).
fn looks_like_metrics(body: &str) -> bool {
    prom::parse_exposition(body).is_ok_and(|samples| {
        samples
            .iter()
            .any(|s| METRICS_PREFIXES.iter().any(|p| s.name.starts_with(p)))
    })
}

/// jmx_exporter's conventional port, probed whatever the replicas use.
const AGENT_PORT: u16 = 9404;

/// Bounds one probe of a metrics port on the ingress address.
const PORT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The ports to probe on the ingress address (every replica's metrics port and 9404), and
/// the ones left out with the replica that makes the probe meaningless: when that replica
/// serves its metrics on the ingress's own address, the probe would just reach the replica.
fn metrics_ports(
    ingress: IpAddr,
    replicas: &[(String, IpAddr, u16)],
) -> (Vec<u16>, Vec<(u16, String)>) {
    let mut ports: BTreeSet<u16> = replicas.iter().map(|(_, _, port)| *port).collect();
    ports.insert(AGENT_PORT);
    let mut probe = Vec::new();
    let mut skipped = Vec::new();
    for port in ports {
        match replicas
            .iter()
            .find(|(_, ip, p)| *p == port && *ip == ingress)
        {
            Some((name, _, _)) => skipped.push((port, name.clone())),
            None => probe.push(port),
        }
    }
    (probe, skipped)
}

async fn resolve(host: &str, port: u16) -> Result<IpAddr> {
    tokio::time::timeout(PORT_PROBE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .with_context(|| format!("resolving {host}: timed out"))?
        .with_context(|| format!("resolving {host}"))?
        .next()
        .map(|addr| addr.ip())
        .with_context(|| format!("{host} resolves to no address"))
}

/// Where the ingress host leads: `connect_to` when given, else DNS.
async fn ingress_ip(ctx: &Ctx<'_>) -> Result<IpAddr> {
    match ctx.target.ingress.connect_to {
        Some(addr) => Ok(addr.ip()),
        None => resolve(&ctx.target.host(), 443).await,
    }
}

/// Whether a GET serves our metrics; any error (refused, timeout, TLS) means it does not.
async fn serves_metrics(request: reqwest::RequestBuilder) -> Option<reqwest::StatusCode> {
    let response = request.timeout(PORT_PROBE_TIMEOUT).send().await.ok()?;
    let status = response.status();
    let body = response.text().await.ok()?;
    (status.is_success() && looks_like_metrics(&body)).then_some(status)
}

async fn not_public(ctx: &Ctx<'_>) -> Outcome {
    let target = ctx.target;
    let mut seen = Vec::new();
    let mut exposed = Vec::new();
    let prefixes = [
        target.ingress.webapp_path.as_str(),
        target.ingress.rest_path.as_str(),
    ];
    for path in metrics_paths(&target.replicas, &prefixes, target.metrics.path()) {
        let url = target.ingress_url(&path);
        let response = ctx
            .http
            .ingress
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} through the ingress"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() && looks_like_metrics(&body) {
            exposed.push(format!("{url} (HTTP {status})"));
        }
        seen.push(format!("{path} → {}", status.as_u16()));
    }

    let ingress = ingress_ip(ctx).await?;
    let mut replicas = Vec::new();
    for replica in &target.replicas {
        let Some(url) = replica.metrics_url.as_deref() else {
            continue;
        };
        let url = Url::parse(url).with_context(|| format!("metrics_url `{url}`"))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        // A bracketed IPv6 literal resolves without its brackets.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        replicas.push((replica.name.clone(), resolve(host, port).await?, port));
    }
    let (ports, skipped) = metrics_ports(ingress, &replicas);
    let host = target.host();
    for port in &ports {
        // The direct client leads the host to the ingress address (connect_to or DNS) over
        // plain HTTP; the ingress client speaks TLS trusting only the target's CA.
        for (url, client) in [
            (format!("http://{host}:{port}/metrics"), &ctx.http.direct),
            (format!("https://{host}:{port}/metrics"), &ctx.http.ingress),
        ] {
            if let Some(status) = serves_metrics(client.get(&url)).await {
                exposed.push(format!("{url} (HTTP {status})"));
            }
        }
    }
    // What the cluster publishes besides the route: node ports, load-balancer addresses.
    for address in &target.ingress.exposed {
        let url = format!("http://{address}{}", target.metrics.path());
        if let Some(status) = serves_metrics(ctx.http.direct.get(&url)).await {
            exposed.push(format!("{url} (HTTP {status}, a published Service port)"));
        }
    }
    let mut probed = format!(
        "metrics ports {} on the ingress address {ingress} not served over http or https",
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !target.ingress.exposed.is_empty() {
        probed.push_str(&format!(
            "; published Service addresses {} serve no metrics",
            target
                .ingress
                .exposed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (port, name) in &skipped {
        probed.push_str(&format!(
            "; port {port} not probed: {name} serves its metrics on the ingress address {ingress} itself"
        ));
    }
    Ok(if exposed.is_empty() {
        Verdict::Pass(format!(
            "no metrics page through the ingress: {}; {probed}",
            seen.join(", ")
        ))
    } else {
        Verdict::Fail(format!(
            "expected no Prometheus text through the ingress or on its address; metrics served at {}",
            exposed.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn expected() -> Vec<(String, String)> {
        vec![
            ("camunda-0".into(), "127.0.0.1:29404".into()),
            ("camunda-1".into(), "10.244.0.7:9404".into()),
        ]
    }

    fn series(pairs: &[(&str, &str)]) -> Vec<BTreeMap<String, String>> {
        pairs
            .iter()
            .map(|(instance, job)| {
                BTreeMap::from([
                    ("instance".to_string(), instance.to_string()),
                    ("job".to_string(), job.to_string()),
                ])
            })
            .collect()
    }

    #[test]
    fn per_replica_queries_select_the_instances_without_job_or_aggregation() {
        let [heap, up] = per_replica_queries("jvm_memory_used_bytes", &expected());
        assert_eq!(
            heap,
            r#"jvm_memory_used_bytes{area="heap",instance=~`127\.0\.0\.1:29404|10\.244\.0\.7:9404`}"#
        );
        assert_eq!(
            up,
            r#"up{instance=~`127\.0\.0\.1:29404|10\.244\.0\.7:9404`}"#
        );
    }

    #[rstest]
    #[case::one_each(&[("127.0.0.1:29404", "camunda"), ("10.244.0.7:9404", "camunda")], None)]
    #[case::scraped_twice(
        &[("127.0.0.1:29404", "camunda"), ("127.0.0.1:29404", "camunda-pods"), ("10.244.0.7:9404", "camunda")],
        Some("camunda-0 (127.0.0.1:29404): 2 series, jobs [camunda, camunda-pods]")
    )]
    #[case::other_job(
        &[("127.0.0.1:29404", "camunda"), ("10.244.0.7:9404", "kubernetes-pods")],
        Some("camunda-1 (10.244.0.7:9404): 1 series, jobs [kubernetes-pods]")
    )]
    #[case::missing(
        &[("127.0.0.1:29404", "camunda")],
        Some("camunda-1 (10.244.0.7:9404): 0 series, jobs []")
    )]
    fn one_series_of_the_job_per_replica(
        #[case] seen: &[(&str, &str)],
        #[case] problem: Option<&str>,
    ) {
        let verdict = judge_per_replica("q", &series(seen), "camunda", &expected());
        match problem {
            None => assert_eq!(verdict, Ok(())),
            Some(problem) => {
                let message = verdict.unwrap_err();
                assert!(
                    message.starts_with("`q`: expected one series of job `camunda` per replica"),
                    "{message}"
                );
                assert!(message.contains(problem), "{message}");
            }
        }
    }

    fn baseline(counters: &[(&str, f64)], rates: &[f64]) -> Baseline {
        Baseline {
            counters: counters.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            rates: rates.to_vec(),
            at: Instant::now(),
        }
    }

    #[test]
    fn shares_take_off_the_background_of_the_quiet_window() {
        let base = baseline(&[("a", 100.0), ("b", 50.0)], &[1.5, 0.0]);
        let now = vec![("a".to_string(), 123.0), ("b".to_string(), 70.0)];
        let seen = shares(&base, &now, Duration::from_secs(2));
        assert_eq!(seen[0].background, 3.0);
        assert_eq!(seen[0].ours(), 20.0);
        assert_eq!(seen[1].ours(), 20.0);
        assert_eq!(total_ours(&seen), 40.0);
        assert_eq!(describe_shares(&seen), "a +23 (~3 background), b +20");
        // Growth below the background is no negative share.
        let quiet = shares(&base, &base.counters, Duration::from_secs(2));
        assert_eq!(quiet[0].ours(), 0.0);
    }

    fn share(name: &str, grown: f64, background: f64) -> Share {
        Share {
            name: name.into(),
            grown,
            background,
        }
    }

    #[rstest]
    #[case::all_counted(&[share("camunda-0", 20.0, 0.0), share("camunda-1", 20.0, 0.0)], true)]
    #[case::probe_noise_hidden_by_one(&[share("camunda-0", 22.0, 2.5), share("camunda-1", 21.0, 0.2)], true)]
    // An ingress sending half the traffic to a stale pod: kubelet probes and Micrometer
    // scrapes make up the sum, the quiet window takes them off.
    #[case::stale_upstream(&[share("camunda-0", 20.0, 0.0), share("camunda-1", 21.0, 19.0)], false)]
    #[case::nothing(&[share("camunda-0", 12.0, 11.0), share("camunda-1", 9.0, 10.0)], false)]
    fn counters_must_count_our_requests(#[case] shares: &[Share], #[case] pass: bool) {
        let verdict = judge_counters(
            "tomcat_requestcount_total",
            "https://h/engine-rest/engine",
            40,
            shares,
        );
        match verdict {
            Verdict::Pass(m) => {
                assert!(pass, "{m}");
                assert!(m.contains("requests attributed to the replicas"), "{m}");
            }
            Verdict::Fail(m) => {
                assert!(!pass, "{m}");
                assert!(
                    m.contains("attributed to them (the ingress sends the rest elsewhere)"),
                    "{m}"
                );
                assert!(m.contains("camunda-1 +"), "{m}");
            }
            Verdict::Skip(m) => panic!("{m}"),
        }
    }

    #[test]
    fn growth_is_per_replica() {
        let before = vec![("a".to_string(), 10.0), ("b".to_string(), 3.0)];
        let after = vec![("a".to_string(), 25.0), ("b".to_string(), 3.0)];
        let grown = growth(&before, &after);
        assert_eq!(grown, [("a".to_string(), 15.0), ("b".to_string(), 0.0)]);
        assert_eq!(describe_growth(&grown), "a +15, b +0");
    }

    #[test]
    fn metrics_ports_skip_only_what_the_ingress_address_shares_with_a_replica() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let pod: IpAddr = "10.244.0.7".parse().unwrap();
        let (probe, skipped) = metrics_ports(
            local,
            &[
                ("camunda-0".into(), local, 29404),
                ("camunda-1".into(), pod, 9405),
            ],
        );
        assert_eq!(probe, [9404, 9405]);
        assert_eq!(skipped, [(29404, "camunda-0".to_string())]);
        let (probe, skipped) = metrics_ports(pod, &[("camunda-0".into(), local, 9404)]);
        assert_eq!(probe, [9404]);
        assert!(skipped.is_empty());
    }

    const PAGE: &str = include_str!("../tests/data/jmx-exporter-metrics.txt");

    #[test]
    fn required_series_are_found_or_named() {
        let samples = prom::parse_exposition(PAGE).unwrap();
        assert!(missing_series(&samples, &Metrics::default()).is_empty());
        let without_agent_rules = prom::parse_exposition(
            "jvm_memory_used_bytes{area=\"heap\"} 1\nprocess_cpu_seconds_total 2\n",
        )
        .unwrap();
        assert_eq!(
            missing_series(&without_agent_rules, &Metrics::default()),
            [
                "HTTP requests (`tomcat_requestcount_total`)",
                "process engine (a `camunda_*` series)"
            ]
        );
    }

    /// A Spring Boot Actuator page (Micrometer's Prometheus format, Camunda's Spring Boot starter:
    /// job executor `camundaTaskExecutor`).
    const MICROMETER: &str = include_str!("../tests/data/micrometer-metrics.txt");

    #[test]
    fn a_micrometer_page_passes_under_its_preset_and_fails_under_jmx() {
        let samples = prom::parse_exposition(MICROMETER).unwrap();
        let micrometer = Metrics::micrometer();
        assert!(missing_series(&samples, &micrometer).is_empty());
        assert_eq!(micrometer.path(), "/actuator/prometheus");
        // The request counter is summed over every uri/status series.
        assert_eq!(
            prom::sum_of(&samples, micrometer.request_counter()),
            Some(68.0)
        );
        // The wrong preset is caught, and says what it looked for.
        assert_eq!(
            missing_series(&samples, &Metrics::default()),
            [
                "HTTP requests (`tomcat_requestcount_total`)",
                "process engine (a `camunda_*` series)"
            ]
        );
        // An executor that is not the engine's does not count.
        let other = MICROMETER.replace("camundaTaskExecutor", "someExecutor");
        let samples_other = prom::parse_exposition(&other).unwrap();
        assert_eq!(
            missing_series(&samples_other, &micrometer),
            ["process engine (a `executor_*{name=\"camundaTaskExecutor\"}` series)"]
        );
        // Explicit names override the preset: an Operaton starter's executor.
        let operaton: Metrics =
            toml::from_str("preset = \"micrometer\"\nengine_label = \"name=someExecutor\"")
                .unwrap();
        assert!(missing_series(&samples_other, &operaton).is_empty());
        // jmx_exporter's page fails under the micrometer preset in turn.
        let jmx = prom::parse_exposition(PAGE).unwrap();
        assert!(!missing_series(&jmx, &micrometer).is_empty());
    }

    #[test]
    fn metrics_pages_are_recognised_and_error_pages_are_not() {
        assert!(looks_like_metrics(PAGE));
        assert!(!looks_like_metrics(
            "<html><center>404 Not Found</center></html>"
        ));
        assert!(!looks_like_metrics("{\"timestamp\":1,\"status\":404}"));
        // Camunda's own JSON metrics resource under the REST prefix is not an exposure.
        assert!(!looks_like_metrics(
            "[{\"name\":\"job-successful\",\"count\":3}]"
        ));
        // The ingress's own nginx stub status is not a Camunda metrics page.
        assert!(!looks_like_metrics("nginx_up 1\n"));
    }

    #[test]
    fn instances_come_from_metrics_url_or_override() {
        let replica = |metrics: Option<&str>, instance: Option<&str>| Replica {
            name: "r".into(),
            http_url: "http://127.0.0.1:8080".into(),
            metrics_url: metrics.map(str::to_string),
            prometheus_instance: instance.map(str::to_string),
            stop: None,
        };
        let ok = expected_instances(&[
            replica(Some("http://127.0.0.1:29404/metrics"), None),
            replica(
                Some("http://127.0.0.1:40000/metrics"),
                Some("10.244.0.7:9404"),
            ),
        ])
        .unwrap();
        assert_eq!(ok[0].1, "127.0.0.1:29404");
        assert_eq!(ok[1].1, "10.244.0.7:9404");
        assert!(expected_instances(&[replica(None, None)]).is_err());
        assert_eq!(
            metrics_paths(
                &[replica(Some("http://127.0.0.1:29404/prom"), None)],
                &["/camunda", "/engine-rest"],
                "/metrics"
            ),
            [
                "/actuator/prometheus",
                "/camunda/actuator/prometheus",
                "/camunda/metrics",
                "/engine-rest/actuator/prometheus",
                "/engine-rest/metrics",
                "/metrics",
                "/prom"
            ]
        );
    }
}
