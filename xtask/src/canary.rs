//! The secrets canary: a run's own passwords and private key, in every form a request or a file
//! carries them, must appear in none of its output lines and none of its artifacts.

use std::path::Path;

use anyhow::{Context, Result};
use camunda_conformance_suites::scrub::secret_forms;

/// One secret of a run, by name, with the strings that would give it away.
pub struct Secret {
    pub name: String,
    pub forms: Vec<String>,
}

impl Secret {
    /// A password, as is and in its encoded forms (with the user it logs in as).
    pub fn password(name: &str, username: &str, password: &str) -> Self {
        Self {
            name: name.to_string(),
            forms: secret_forms(username, password.trim_end()),
        }
    }

    /// A PEM private key: any full line of its base64 body gives it away.
    pub fn pem_key(name: &str, pem: &str) -> Self {
        Self {
            name: name.to_string(),
            forms: pem
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----") && l.len() >= 40)
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Where a secret shows: `<secret> in <place>`, one entry per secret and place.
pub fn leaks(secrets: &[Secret], output: &[String], artifacts: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let shows =
        |text: &str, secret: &Secret| secret.forms.iter().any(|f| text.contains(f.as_str()));
    for secret in secrets {
        if let Some(line) = output.iter().position(|l| shows(l, secret)) {
            found.push(format!(
                "{} in the run's output (line {})",
                secret.name,
                line + 1
            ));
        }
    }
    for file in crate::artifacts::files_below(artifacts)? {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            if shows(&text, secret) {
                found.push(format!("{} in {}", secret.name, file.display()));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_in_output_or_files_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        // Basic credentials of admin:Pa55word, as a log line would carry them.
        std::fs::write(
            dir.path().join("logs/nginx.log"),
            "GET / Authorization: Basic YWRtaW46UGE1NXdvcmQ=\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("report.txt"), "all fine\n").unwrap();
        let key_line = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0123456789abcdef";
        let secrets = [
            Secret::password("the admin password", "admin", "Pa55word\n"),
            Secret::pem_key(
                "the TLS key",
                &format!("-----BEGIN PRIVATE KEY-----\n{key_line}\n-----END PRIVATE KEY-----\n"),
            ),
        ];
        let output = vec![
            "stack up".to_string(),
            format!("debug: {key_line}"),
            "login with Pa55word%21".to_string(),
        ];
        let found = leaks(&secrets, &output, dir.path()).unwrap();
        assert_eq!(
            found,
            [
                "the admin password in the run's output (line 3)".to_string(),
                "the TLS key in the run's output (line 2)".to_string(),
                format!(
                    "the admin password in {}",
                    dir.path().join("logs/nginx.log").display()
                ),
            ]
        );
        assert!(leaks(&secrets, &["clean".into()], &dir.path().join("logs"))
            .unwrap()
            .iter()
            .all(|l| l.contains("nginx.log")));
    }
}
