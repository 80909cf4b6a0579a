use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: crate::validate::schema::RULE,
    severity: Severity::Error,
    description: "every object matches its Kubernetes or CRD schema: served apiVersion, no unknown fields, right types, required fields",
    check,
};

/// The findings were made while typing each object (see `validate::schema`).
fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    out.extend(bundle.entries.iter().flat_map(|e| e.schema.iter().cloned()));
}
