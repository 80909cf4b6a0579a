use super::{Bundle, Finding, Rule, Severity};

pub const RULE: Rule = Rule {
    id: super::DUPLICATE,
    severity: Severity::Error,
    description: "each object (kind, namespace, name) is defined once in a bundle; a second definition silently replaces the first on apply",
    check,
};

/// Found while building the bundle, which keeps only the last definition (see `bundle`).
fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    out.extend(bundle.duplicates.iter().cloned());
}
