//! The last guard against a password in a message: messages are built without credentials, and
//! whatever slips through is replaced here, in every form a request carries it — as is,
//! percent-encoded, and as Basic credentials (base64 of `user:password`). Only whole tokens are
//! replaced, so a short password never mangles ordinary words.

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

const MASK: &str = "***";

#[derive(Clone, Debug, Default)]
pub(crate) struct Scrubber {
    forms: Vec<String>,
}

impl Scrubber {
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            forms: secret_forms(username, password),
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for form in &self.forms {
            out = replace_tokens(&out, form);
        }
        out
    }
}

/// Every form a request carries a password in: as is, percent-encoded (also with `+` for a
/// space), and as Basic credentials (base64 of `user:password`, padded or not); longest first,
/// so that a form containing another is replaced whole. None for an empty password.
pub fn secret_forms(username: &str, password: &str) -> Vec<String> {
    if password.is_empty() {
        return Vec::new();
    }
    let basic = format!("{username}:{password}");
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut forms = vec![
        password.to_string(),
        utf8_percent_encode(password, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(password, NON_ALPHANUMERIC)
            .to_string()
            .replace("%20", "+"),
        engine.encode(&basic),
        engine.encode(&basic).trim_end_matches('=').to_string(),
    ];
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// A character that continues a token: an occurrence next to one is part of a longer word.
fn joins(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Replaces the occurrences of `needle` that are not part of a longer word.
fn replace_tokens(text: &str, needle: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let before = rest[..at].chars().next_back().or(out.chars().next_back());
        let after = rest[at + needle.len()..].chars().next();
        let whole = !before.is_some_and(joins) && !after.is_some_and(joins);
        out.push_str(&rest[..at]);
        out.push_str(if whole { MASK } else { needle });
        rest = &rest[at + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_password_is_replaced() {
        let scrubber = Scrubber::new("conformance", "s3cr3t pw/+");
        assert_eq!(scrubber.scrub("echoed s3cr3t pw/+ back"), "echoed *** back");
        assert_eq!(
            scrubber.scrub("form: password=s3cr3t%20pw%2F%2B&x=1"),
            "form: password=***&x=1"
        );
        assert_eq!(
            scrubber.scrub("body password=s3cr3t+pw%2F%2B"),
            "body password=***"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("conformance:s3cr3t pw/+");
        assert_eq!(
            scrubber.scrub(&format!("Authorization: Basic {basic}")),
            "Authorization: Basic ***"
        );
    }

    #[test]
    fn a_short_password_does_not_mangle_words() {
        let scrubber = Scrubber::new("u", "x");
        assert_eq!(
            scrubber.scrub("expected 401, got 200 (x)"),
            "expected 401, got 200 (***)"
        );
        assert_eq!(scrubber.scrub("x"), "***");
        assert_eq!(scrubber.scrub("max x-ray"), "max ***-ray");
        // `_` joins a word as letters and digits do.
        assert_eq!(scrubber.scrub("x_1 1x _x x"), "x_1 1x _x ***");
        let scrubber = Scrubber::new("u", "pass");
        assert_eq!(
            scrubber.scrub("passed; password pass"),
            "passed; password ***"
        );
    }

    #[test]
    fn no_password_scrubs_nothing() {
        assert_eq!(Scrubber::new("u", "").scrub("anything"), "anything");
    }
}
