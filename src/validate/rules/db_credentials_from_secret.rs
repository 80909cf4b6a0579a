use super::{container_label, Bundle, Finding, Rule, Severity};
use crate::validate::env::{Env, Source};

pub const RULE: Rule = Rule {
    id: "db-credentials-from-secret",
    severity: Severity::Error,
    description: "passwords (any *PASSWORD*, *PASSWD*, *_PWD, *_PASS variable, any case) come from a Secret, never a literal or a ConfigMap; JDBC URLs and JVM options carry no password",
    check,
};

/// A variable that holds a password by its name (`DB_PASSWORD_FILE` holds a path).
fn is_password_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    !name.ends_with("_FILE")
        && (name.contains("PASSWORD")
            || name.contains("PASSWD")
            || name.ends_with("_PWD")
            || name.ends_with("_PASS"))
}

/// A JDBC URL with credentials in it: `password=` as a parameter or `user:password@host`.
fn url_has_password(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    if !lower.starts_with("jdbc:") {
        return false;
    }
    let authority = lower
        .split_once("//")
        .map_or("", |(_, rest)| rest.split(['/', '?']).next().unwrap_or(""));
    lower.contains("password=")
        || lower.contains("passwd=")
        || authority
            .split_once('@')
            .is_some_and(|(user, _)| user.contains(':'))
}

/// A `-Dsome.password=value` system property written out in JVM options (a `$(VAR)` reference
/// to a Secret-backed variable is fine).
fn jvm_option_password(options: &str) -> Option<&str> {
    options.split_whitespace().find_map(|option| {
        let (property, value) = option.strip_prefix("-D")?.split_once('=')?;
        let lower = property.to_ascii_lowercase();
        let named =
            lower.contains("password") || lower.contains("passwd") || lower.ends_with(".pwd");
        let literal = !value.is_empty() && !value.starts_with("$(") && !value.starts_with("${");
        (named && literal).then_some(property)
    })
}

fn check(bundle: &Bundle, out: &mut Vec<Finding>) {
    for workload in bundle.workloads() {
        for container in workload.containers() {
            let label = container_label(container);
            let mut problems = Vec::new();
            let env = Env::of(bundle, &workload, container);
            for var in env.iter() {
                let visible = match var.source {
                    Source::Literal => var.value.as_deref().is_some_and(|v| !v.is_empty()),
                    Source::ConfigMap => true,
                    Source::Secret | Source::Field => false,
                };
                if is_password_name(&var.name) && visible {
                    let origin = if var.source == Source::Literal {
                        "a literal value"
                    } else {
                        "a ConfigMap"
                    };
                    problems.push(format!(
                        "takes {} from {origin}: use valueFrom.secretKeyRef (or a *_FILE variable on a mounted Secret)",
                        var.name
                    ));
                }
                let Some(value) = var.value.as_deref() else {
                    continue;
                };
                if url_has_password(value) {
                    problems.push(format!(
                        "has a password inside the JDBC URL of {}: remove it from the URL and pass the password from a Secret",
                        var.name
                    ));
                }
                if let Some(property) = jvm_option_password(value) {
                    problems.push(format!(
                        "writes -D{property} out in {}: pass it as $(VAR) of a Secret-backed variable",
                        var.name
                    ));
                }
            }
            let words = container
                .command
                .iter()
                .chain(container.args.iter())
                .flatten();
            for word in words {
                if let Some(property) = jvm_option_password(word) {
                    problems.push(format!(
                        "writes -D{property} out in its command line: pass it as $(VAR) of a Secret-backed variable"
                    ));
                } else if url_has_password(word) {
                    problems.push(
                        "has a password inside a JDBC URL on its command line: pass the password from a Secret".to_string(),
                    );
                }
            }
            for problem in problems {
                out.push(RULE.finding(workload.entry, format!("{label} {problem}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_names() {
        for name in [
            "DB_PASSWORD",
            "db_password",
            "SPRING_DATASOURCE_PASSWORD",
            "REDIS_PASSWD",
            "DB_PWD",
            "LDAP_PASS",
            "PasswordOfAdmin",
        ] {
            assert!(is_password_name(name), "{name}");
        }
        for name in ["DB_PASSWORD_FILE", "DB_USERNAME", "PASSAGE", "COMPASS_URL"] {
            assert!(!is_password_name(name), "{name}");
        }
    }

    #[test]
    fn urls_and_options() {
        assert!(url_has_password(
            "jdbc:postgresql://db:5432/c?user=c&password=x"
        ));
        assert!(url_has_password("jdbc:postgresql://c:secret@db:5432/c"));
        assert!(!url_has_password("jdbc:postgresql://db:5432/c"));
        assert!(!url_has_password("jdbc:postgresql://db:5432/c?user=c@x"));
        assert_eq!(
            jvm_option_password("-Xmx1g -Dspring.datasource.password=x"),
            Some("spring.datasource.password")
        );
        assert_eq!(
            jvm_option_password("-Dspring.datasource.password=$(DB_PASSWORD)"),
            None
        );
        assert_eq!(jvm_option_password("-Dspring.datasource.username=c"), None);
    }
}
