//! `validate --format sarif`: SARIF 2.1.0, as kube-linter and checkov write it, so that code
//! scanning shows each finding on the line of the manifest or template that caused it. One run,
//! the rule catalogue as the driver's rules, one result per finding with its physical location
//! (file and line) and the Kubernetes object as its logical location.

use serde_json::{json, Value};

use crate::validate::{Finding, Severity, ValidateReport};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

pub fn sarif(report: &ValidateReport) -> serde_json::Result<String> {
    let mut rules: Vec<Value> = crate::validate::rules::catalog()
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "shortDescription": {"text": rule.description},
                "defaultConfiguration": {"level": level(rule.severity)},
            })
        })
        .collect();
    let mut ids: Vec<&str> = crate::validate::rules::catalog()
        .iter()
        .map(|r| r.id)
        .collect();
    let mut results = Vec::with_capacity(report.findings.len());
    for finding in &report.findings {
        // Findings of checks outside the catalogue (`api-server`) get a rule of their own.
        let index = match ids.iter().position(|id| *id == finding.rule) {
            Some(index) => index,
            None => {
                ids.push(finding.rule);
                rules.push(json!({
                    "id": finding.rule,
                    "shortDescription": {"text": finding.rule},
                }));
                ids.len() - 1
            }
        };
        results.push(result(finding, index));
    }
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "camunda-conformance",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&log)?;
    text.push('\n');
    Ok(text)
}

fn result(finding: &Finding, rule_index: usize) -> Value {
    let object = match &finding.namespace {
        Some(namespace) => format!("{} in {namespace}", finding.resource),
        None => finding.resource.clone(),
    };
    let mut location = json!({
        "logicalLocations": [{
            "name": finding.resource,
            "fullyQualifiedName": match &finding.namespace {
                Some(namespace) => format!("{namespace}/{}", finding.resource),
                None => finding.resource.clone(),
            },
            "kind": "object",
        }],
    });
    // The object's own file, else the input it was rendered from (a kustomization).
    if let Some(file) = finding.file.as_deref().or(finding.input.as_deref()) {
        let mut physical = json!({"artifactLocation": {"uri": uri(file)}});
        if let Some(line) = finding.line.filter(|_| finding.file.is_some()) {
            physical["region"] = json!({"startLine": line});
        }
        location["physicalLocation"] = physical;
    }
    json!({
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": level(finding.severity),
        "message": {"text": format!("{object}: {}", finding.message)},
        "locations": [location],
    })
}

/// A path as a URI reference: relative paths stay relative (code scanning resolves them from
/// the checkout), absolute ones become `file://` URIs; reserved characters are percent-encoded.
fn uri(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                encoded.push(byte as char)
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("charts/a b/x.yaml"), "charts/a%20b/x.yaml");
        assert_eq!(uri("/abs/dir:1/x.yaml"), "file:///abs/dir%3A1/x.yaml");
        assert_eq!(uri("naïve.yaml"), "na%C3%AFve.yaml");
    }
}
