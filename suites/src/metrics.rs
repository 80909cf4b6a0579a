//! metrics: every replica serves Prometheus text with the required series, Prometheus scrapes
//! every replica, counters move with traffic, and the metrics port is not behind the ingress.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Url;

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::http::{poll, Polled};
use crate::prom::{self, Sample};
use crate::target::Replica;
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
    "Tomcat request counters grow after requests through the ingress",
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
pub(crate) enum SeriesName {
    Exact(&'static str),
    Prefix(&'static str),
}

/// The series every replica must expose (jmx_exporter 1.x names; the Tomcat and Camunda ones
/// come from the rules of manifests/base/camunda/prometheus-jmx.yml).
pub(crate) const REQUIRED_SERIES: &[(&str, SeriesName)] = &[
    ("JVM", SeriesName::Exact("jvm_memory_used_bytes")),
    ("Tomcat", SeriesName::Exact(REQUEST_COUNTER)),
    ("process engine", SeriesName::Prefix("camunda_")),
];

/// The counter the traffic check watches.
const REQUEST_COUNTER: &str = "tomcat_requestcount_total";

/// Requests sent through the ingress by the counter check.
const TRAFFIC_REQUESTS: u32 = 10;

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
                    let missing = missing_series(samples);
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
            Verdict::Pass(format!("every replica exposes {}", describe_required()))
        } else {
            Verdict::Fail(format!(
                "expected {} on every replica; {}",
                describe_required(),
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
                let query = format!(
                    "sum by (instance) (jvm_memory_used_bytes{{job=\"{}\",area=\"heap\"}})",
                    prometheus.job
                );
                let mut url = api_url(&prometheus.url, "api/v1/query")?;
                url.query_pairs_mut().append_pair("query", &query);
                let wanted: BTreeSet<&str> = expected.iter().map(|(_, i)| i.as_str()).collect();
                let message = poll(Duration::from_secs(ctx.target.bounds.prometheus_s), Duration::from_secs(1), || async {
                    let series = match get_text(ctx, url.clone()).await.and_then(|t| prom::parse_vector(&t)) {
                        Ok(series) => series,
                        Err(err) => return Polled::Pending(format!("{err:#}")),
                    };
                    let instances: Vec<&str> = series
                        .iter()
                        .map(|(labels, _)| labels.get("instance").map_or("(no instance label)", String::as_str))
                        .collect();
                    let distinct: BTreeSet<&str> = instances.iter().copied().collect();
                    if distinct == wanted && instances.len() == wanted.len() {
                        Polled::Done(format!("`{query}` returned one series per replica: {}", instances.join(", ")))
                    } else {
                        Polled::Pending(format!(
                            "`{query}` returned {} series for instances [{}], expected one for each of [{}]",
                            instances.len(),
                            instances.join(", "),
                            wanted.iter().copied().collect::<Vec<_>>().join(", ")
                        ))
                    }
                })
                .await
                .context("expected one series per replica")?;
                Ok(Verdict::Pass(message))
            })
            .await;
        }
    }

    rec.check(&COUNTERS_GROW, counters_grow(ctx)).await;
    rec.check(&NOT_PUBLIC, not_public(ctx)).await;
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

fn missing_series(samples: &[Sample]) -> Vec<String> {
    REQUIRED_SERIES
        .iter()
        .filter(|(_, rule)| {
            !samples.iter().any(|s| match rule {
                SeriesName::Exact(name) => s.name == *name,
                SeriesName::Prefix(prefix) => s.name.starts_with(prefix),
            })
        })
        .map(|(what, rule)| format!("{what} ({})", describe_rule(*rule)))
        .collect()
}

fn describe_rule(rule: SeriesName) -> String {
    match rule {
        SeriesName::Exact(name) => format!("`{name}`"),
        SeriesName::Prefix(prefix) => format!("a `{prefix}*` series"),
    }
}

fn describe_required() -> String {
    REQUIRED_SERIES
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

/// The request counter summed over every replica (each counts the requests it served).
async fn total_requests(ctx: &Ctx<'_>) -> Result<f64> {
    let mut total = 0.0;
    for replica in &ctx.target.replicas {
        let samples = scrape(ctx, replica)
            .await
            .with_context(|| replica.name.clone())?;
        total += prom::sum_of(&samples, REQUEST_COUNTER)
            .with_context(|| format!("{}: no `{REQUEST_COUNTER}` series", replica.name))?;
    }
    Ok(total)
}

async fn counters_grow(ctx: &Ctx<'_>) -> Outcome {
    let before = total_requests(ctx).await?;
    let url = ctx.target.rest_url("/engine");
    for _ in 0..TRAFFIC_REQUESTS {
        let response = ctx
            .http
            .ingress
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} through the ingress"))?;
        if !response.status().is_success() {
            bail!(
                "GET {url} through the ingress: expected 200, got HTTP {}",
                response.status()
            );
        }
    }
    let wanted = before + f64::from(TRAFFIC_REQUESTS);
    let after = poll(Duration::from_secs(ctx.target.bounds.settle_s), Duration::from_millis(500), || async {
        match total_requests(ctx).await {
            Ok(now) if now >= wanted => Polled::Done(now),
            Ok(now) => Polled::Pending(format!("`{REQUEST_COUNTER}` summed over the replicas is {now}")),
            Err(err) => Polled::Pending(format!("{err:#}")),
        }
    })
    .await
    .with_context(|| {
        format!("expected `{REQUEST_COUNTER}` to grow from {before} by at least {TRAFFIC_REQUESTS} after {TRAFFIC_REQUESTS} requests through the ingress")
    })?;
    Ok(Verdict::Pass(format!(
        "`{REQUEST_COUNTER}` over all replicas went from {before} to {after} after {TRAFFIC_REQUESTS} requests through the ingress"
    )))
}

/// Paths under which the metrics page must not be served through the ingress.
fn metrics_paths(replicas: &[Replica]) -> Vec<String> {
    let mut paths: BTreeSet<String> =
        ["/metrics".to_string(), "/actuator/prometheus".to_string()].into();
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

async fn not_public(ctx: &Ctx<'_>) -> Outcome {
    let mut seen = Vec::new();
    let mut exposed = Vec::new();
    for path in metrics_paths(&ctx.target.replicas) {
        let url = ctx.target.ingress_url(&path);
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
            exposed.push(format!("{path} (HTTP {status})"));
        }
        seen.push(format!("{path} → {}", status.as_u16()));
    }
    Ok(if exposed.is_empty() {
        Verdict::Pass(format!(
            "no metrics page through the ingress: {}",
            seen.join(", ")
        ))
    } else {
        Verdict::Fail(format!(
            "expected no Prometheus text through the ingress; it serves metrics at {}",
            exposed.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../tests/data/jmx-exporter-metrics.txt");

    #[test]
    fn required_series_are_found_or_named() {
        let samples = prom::parse_exposition(PAGE).unwrap();
        assert!(missing_series(&samples).is_empty());
        let without_agent_rules = prom::parse_exposition(
            "jvm_memory_used_bytes{area=\"heap\"} 1\nprocess_cpu_seconds_total 2\n",
        )
        .unwrap();
        assert_eq!(
            missing_series(&without_agent_rules),
            [
                "Tomcat (`tomcat_requestcount_total`)",
                "process engine (a `camunda_*` series)"
            ]
        );
    }

    #[test]
    fn metrics_pages_are_recognised_and_error_pages_are_not() {
        assert!(looks_like_metrics(PAGE));
        assert!(!looks_like_metrics(
            "<html><center>404 Not Found</center></html>"
        ));
        assert!(!looks_like_metrics("{\"timestamp\":1,\"status\":404}"));
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
            metrics_paths(&[replica(Some("http://127.0.0.1:29404/prom"), None)]),
            ["/actuator/prometheus", "/metrics", "/prom"]
        );
    }
}
