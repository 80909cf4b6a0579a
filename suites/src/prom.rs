//! Prometheus formats: the text exposition format of a metrics endpoint, and the JSON answers
//! of the HTTP API (`/api/v1/targets`, `/api/v1/query`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use reqwest::Url;
use serde::Deserialize;

#[derive(Debug, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text exposition format (also the OpenMetrics text, which is a superset for the
/// lines we read). Comments and blank lines are skipped; any other line must be a sample.
pub(crate) fn parse_exposition(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line)
            .with_context(|| format!("line {}: `{}` is not a sample", index + 1, truncate(line)))?;
        samples.push(sample);
    }
    Ok(samples)
}

fn truncate(line: &str) -> String {
    line.chars().take(80).collect()
}

fn parse_sample(line: &str) -> Result<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .context("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        bail!("bad metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value_text = rest.split_whitespace().next().context("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse::<f64>().context("bad value")?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y\"z"}` and returns the labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after_name) = text.split_once('=').context("label without `=`")?;
        let mut chars = after_name
            .strip_prefix('"')
            .context("label value not quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated label value"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        labels.insert(name.trim().to_string(), value);
        text = &after_name[end + 2..];
    }
}

/// Sum of every sample of one metric (e.g. a counter over all its label sets).
pub(crate) fn sum_of(samples: &[Sample], name: &str) -> Option<f64> {
    let mut values = samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .peekable();
    values.peek()?;
    Some(values.sum())
}

#[derive(Debug, Deserialize)]
struct ApiAnswer<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

fn api_data<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T> {
    let answer: ApiAnswer<T> =
        serde_json::from_str(json).context("the Prometheus API answer is not the expected JSON")?;
    if answer.status != "success" {
        bail!(
            "the Prometheus API answered status `{}`: {}",
            answer.status,
            answer.error.unwrap_or_default()
        );
    }
    answer.data.context("the Prometheus API answer has no data")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTarget {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    scrape_pool: String,
    #[serde(default)]
    scrape_url: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    last_error: String,
}

/// An active scrape target as the suites look at it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ScrapeTarget {
    pub job: String,
    /// The `instance` label, and the host:port of the scrape URL when different.
    pub addresses: Vec<String>,
    pub health: String,
    pub last_error: String,
}

/// `GET /api/v1/targets`.
pub(crate) fn parse_targets(json: &str) -> Result<Vec<ScrapeTarget>> {
    let data: TargetsData = api_data(json)?;
    Ok(data
        .active_targets
        .into_iter()
        .map(|raw| {
            let mut addresses = Vec::new();
            if let Some(instance) = raw.labels.get("instance") {
                addresses.push(instance.clone());
            }
            if let Some(authority) = Url::parse(&raw.scrape_url)
                .ok()
                .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            {
                if !addresses.contains(&authority) {
                    addresses.push(authority);
                }
            }
            ScrapeTarget {
                job: raw.labels.get("job").cloned().unwrap_or(raw.scrape_pool),
                addresses,
                health: raw.health,
                last_error: raw.last_error,
            }
        })
        .collect())
}

/// Whether every expected instance (replica name, instance) is an `up` target of the job.
/// `Err` lists what is missing or not up.
pub(crate) fn targets_up(
    targets: &[ScrapeTarget],
    job: &str,
    expected: &[(String, String)],
) -> std::result::Result<String, String> {
    let mut problems = Vec::new();
    for (replica, instance) in expected {
        let found = targets
            .iter()
            .find(|t| t.job == job && t.addresses.iter().any(|a| a == instance));
        match found {
            None => problems.push(format!(
                "{replica} ({instance}): not a target of job `{job}`"
            )),
            Some(t) if t.health != "up" => problems.push(format!(
                "{replica} ({instance}): health `{}`{}",
                t.health,
                if t.last_error.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.last_error)
                }
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{} replicas are up targets of job `{job}`",
            expected.len()
        ))
    } else {
        let jobs: Vec<String> = targets
            .iter()
            .map(|t| format!("{}/{}={}", t.job, t.addresses.join("|"), t.health))
            .collect();
        Err(format!(
            "{}; active targets: [{}]",
            problems.join("; "),
            jobs.join(", ")
        ))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// `GET /api/v1/query` with an instant vector result: labels and value of each series.
pub(crate) fn parse_vector(json: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
    let data: QueryData = api_data(json)?;
    if data.result_type != "vector" {
        bail!("expected a vector result, got `{}`", data.result_type);
    }
    data.result
        .into_iter()
        .map(|s| {
            let value = s
                .value
                .1
                .parse::<f64>()
                .with_context(|| format!("bad sample value `{}`", s.value.1))?;
            Ok((s.metric, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JMX_EXPORTER: &str = include_str!("../tests/data/jmx-exporter-metrics.txt");
    const TARGETS: &str = include_str!("../tests/data/prometheus-targets.json");

    #[test]
    fn parses_a_jmx_exporter_page() {
        let samples = parse_exposition(JMX_EXPORTER).unwrap();
        let heap = samples
            .iter()
            .find(|s| {
                s.name == "jvm_memory_used_bytes"
                    && s.labels.get("area").map(String::as_str) == Some("heap")
            })
            .unwrap();
        assert!(heap.value > 0.0);
        // Recorded from replica 0 of a live stack (one connector).
        assert_eq!(sum_of(&samples, "tomcat_requestcount_total"), Some(69.0));
        assert_eq!(sum_of(&samples, "no_such_metric"), None);
    }

    #[test]
    fn label_values_with_escapes_and_special_values() {
        let samples = parse_exposition(
            "# HELP x\nx{a=\"q\\\"uote\",b=\"c,}d\"} 1.5e3 1700000000\ny +Inf\nz{} -2\n",
        )
        .unwrap();
        assert_eq!(samples[0].labels["a"], "q\"uote");
        assert_eq!(samples[0].labels["b"], "c,}d");
        assert_eq!(samples[0].value, 1500.0);
        assert!(samples[1].value.is_infinite());
        assert_eq!(samples[2].value, -2.0);
    }

    #[test]
    fn html_is_not_an_exposition() {
        let err = parse_exposition("<html><body>404 Not Found</body></html>").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
        assert!(parse_exposition("x{a=\"unterminated} 1").is_err());
    }

    #[test]
    fn targets_match_by_instance_and_report_what_is_down() {
        let targets = parse_targets(TARGETS).unwrap();
        assert_eq!(targets.len(), 3);
        let up = targets_up(
            &targets,
            "camunda",
            &[("camunda-0".into(), "127.0.0.1:29404".into())],
        );
        assert!(up.is_ok(), "{up:?}");
        let down = targets_up(
            &targets,
            "camunda",
            &[
                ("camunda-0".into(), "127.0.0.1:29404".into()),
                ("camunda-1".into(), "127.0.0.1:29405".into()),
                ("camunda-2".into(), "127.0.0.1:29406".into()),
            ],
        )
        .unwrap_err();
        assert!(
            down.contains("camunda-1 (127.0.0.1:29405): health `down` (Get \"http://127.0.0.1:29405/metrics\": dial tcp 127.0.0.1:29405: connect: connection refused)"),
            "{down}"
        );
        assert!(
            down.contains("camunda-2 (127.0.0.1:29406): not a target of job `camunda`"),
            "{down}"
        );
        // The prometheus job's own target does not count for the camunda job.
        let other = targets_up(
            &targets,
            "camunda",
            &[("p".into(), "127.0.0.1:19090".into())],
        );
        assert!(other.is_err());
    }

    #[test]
    fn query_vectors_and_api_errors() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"instance":"127.0.0.1:29404","job":"camunda"},"value":[1764114000.5,"1"]},
            {"metric":{"instance":"127.0.0.1:29405","job":"camunda"},"value":[1764114000.5,"1"]}]}}"#;
        let series = parse_vector(json).unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].0["instance"], "127.0.0.1:29405");
        let err = parse_vector(
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("parse error at char 3"), "{err}");
    }
}
