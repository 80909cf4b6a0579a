//! What never goes into the artifacts: Secret values, and anything elsewhere that looks like a
//! secret — an env var or ConfigMap key named like a password, token or key, a PEM private key,
//! the password in a URL's `user:password@`. Applied to the manifests as applied and to every
//! diagnostics file (`describe` prints env values, logs may echo them).

use serde_json::Value;

const REDACTED: &str = "<redacted>";

/// Words in a name (env var, ConfigMap key) that mark its value as a secret.
const SECRET_WORDS: [&str; 10] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "private",
    "credential",
];

pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A value that is a secret whatever its name: a PEM private key.
fn secret_value(value: &str) -> bool {
    value.contains("PRIVATE KEY-----")
}

/// `scheme://user:password@host` → `scheme://user:<redacted>@host`, for every URL in `text`.
fn redact_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at_sign), Some(colon)) if colon < at_sign => {
                out.push_str(&authority[..=colon]);
                out.push_str(REDACTED);
                out.push_str(&authority[at_sign..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Redacts a manifest (or any object kubectl prints) in place: every value of a Secret, the
/// ConfigMap keys named like secrets, env entries named like secrets, and anywhere a PEM private
/// key or a URL password. Other keys stay as they are: `secretName` is a reference, not a secret.
pub fn redact_doc(doc: &mut Value) {
    let kind = doc["kind"].as_str().unwrap_or_default().to_string();
    for field in ["data", "stringData", "binaryData"] {
        if let Some(map) = doc.get_mut(field).and_then(Value::as_object_mut) {
            for (key, value) in map.iter_mut() {
                if kind == "Secret" || (kind == "ConfigMap" && secret_name(key)) {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
    }
    walk(doc);
}

fn walk(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // An env entry: {name, value}.
            let env_secret = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(secret_name);
            for (key, item) in map.iter_mut() {
                if key == "value" && env_secret && item.is_string() {
                    *item = Value::String(REDACTED.into());
                } else {
                    walk(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        Value::String(text) if secret_value(text) => *text = REDACTED.into(),
        Value::String(text) => *text = redact_url_passwords(text),
        _ => {}
    }
}

/// Redacts text output (`describe`, `get -o yaml`, logs): `NAME: value` and `NAME=value` lines
/// whose name looks secret, PEM private keys, URL passwords.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_key = false;
    for line in text.split_inclusive('\n') {
        if line.contains("-----BEGIN") && line.contains("PRIVATE KEY") {
            in_key = true;
        }
        if in_key {
            if line.contains("-----END") {
                in_key = false;
                out.push_str(REDACTED);
                out.push('\n');
            }
            continue;
        }
        out.push_str(&redact_url_passwords(&redact_assignment(line)));
    }
    out
}

/// `  DB_PASSWORD:  hunter2` or `DB_PASSWORD=hunter2` → the value redacted.
fn redact_assignment(line: &str) -> String {
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    for separator in [':', '='] {
        if let Some((name, value)) = body.split_once(separator) {
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-\"".contains(c));
            let value = value.trim();
            if name_ok && secret_name(name) && !value.is_empty() && value != "|" && value != ">" {
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                return format!("{indent}{name}{separator} {REDACTED}{newline}");
            }
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_values_configmap_keys_keys_and_url_passwords_are_redacted() {
        let mut deployment = json!({
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{
                "name": "camunda",
                "env": [
                    {"name": "DB_PASSWORD", "value": "hunter2"},
                    {"name": "SPRING_DATASOURCE_PWD", "value": "hunter3"},
                    {"name": "DB_URL", "value": "jdbc:postgresql://camunda:hunter4@postgres:5432/camunda"},
                    {"name": "DB_USERNAME", "value": "camunda"},
                    {"name": "DB_PASSWORD_FILE", "value": "/secrets/db"}
                ]
            }]}}}
        });
        redact_doc(&mut deployment);
        let text = deployment.to_string();
        for leaked in ["hunter2", "hunter3", "hunter4"] {
            assert!(!text.contains(leaked), "{leaked}: {text}");
        }
        assert!(
            text.contains("postgresql://camunda:<redacted>@postgres:5432"),
            "{text}"
        );
        assert!(
            text.contains("\"value\":\"camunda\""),
            "a user name is not a secret: {text}"
        );
        let mut config = json!({"kind": "ConfigMap", "data": {
            "api-token": "t0k3n",
            "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
            "log-level": "info"
        }});
        redact_doc(&mut config);
        let text = config.to_string();
        assert!(!text.contains("t0k3n") && !text.contains("MIIE"), "{text}");
        assert!(text.contains("\"log-level\":\"info\""), "{text}");
        // References to Secrets are not secrets.
        let mut ingress =
            json!({"kind": "Ingress", "spec": {"tls": [{"secretName": "camunda-tls"}]}});
        redact_doc(&mut ingress);
        assert!(ingress.to_string().contains("camunda-tls"), "{ingress}");
    }

    #[test]
    fn describe_and_logs_are_redacted_line_by_line() {
        let describe = "    Environment:\n      DB_USERNAME:  camunda\n      DB_PASSWORD:  hunter2\n      ADMIN_PASSWORD=s3cret\n    Mounts: <none>\n";
        let redacted = redact_text(describe);
        assert!(
            !redacted.contains("hunter2") && !redacted.contains("s3cret"),
            "{redacted}"
        );
        assert!(
            redacted.contains("      DB_PASSWORD: <redacted>\n"),
            "{redacted}"
        );
        assert!(redacted.contains("DB_USERNAME:  camunda"), "{redacted}");
        assert!(redacted.contains("Mounts: <none>"), "{redacted}");
        let log = "connecting to redis://:r3d1s@redis:6379\nkey:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\nready\n";
        let redacted = redact_text(log);
        assert!(
            !redacted.contains("r3d1s") && !redacted.contains("MIIEabc"),
            "{redacted}"
        );
        assert!(redacted.ends_with("<redacted>\nready\n"), "{redacted}");
    }
}
