//! HTTP clients of the suites, explicit cookies, and bounded polling.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{redirect, Client};

use crate::target::Target;

// Not in lib.rs: the raw client is a part of the HTTP layer.
pub(crate) mod raw;

use raw::Raw;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct Http {
    /// HTTPS to the ingress: trusts only the target's CA (without one, the platform's roots), resolves the host to `connect_to`,
    /// SNI and Host are the ingress host.
    pub ingress: Client,
    /// Everything else (replicas, Prometheus, the plain-HTTP entry). The ingress host resolves
    /// to `connect_to`'s address with the port of the URL, so that `http_url` works too.
    pub direct: Client,
    /// Requests sent exactly as written, with the same trust and resolution as the above.
    pub raw: Raw,
}

impl Http {
    pub fn new(target: &Target) -> Result<Self> {
        let host = target.host();
        let mut ingress = builder().https_only(true);
        let raw = match &target.ingress.ca_file {
            Some(ca_file) => {
                let pem = std::fs::read(ca_file)
                    .with_context(|| format!("reading ingress.ca_file {}", ca_file.display()))?;
                let ca = reqwest::Certificate::from_pem(&pem).with_context(|| {
                    format!(
                        "ingress.ca_file {} is not a PEM certificate",
                        ca_file.display()
                    )
                })?;
                ingress = ingress
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(ca);
                Raw::new(Some(&pem), &host, target.ingress.connect_to).with_context(|| {
                    format!("ingress.ca_file {} for the raw client", ca_file.display())
                })?
            }
            // No CA named: the platform's roots, as for any public (e.g. ACME) certificate.
            None => Raw::new(None, &host, target.ingress.connect_to)?,
        };
        let mut direct = builder();
        if let Some(addr) = target.ingress.connect_to {
            ingress = ingress.resolve(&host, addr);
            // Port 0: the client takes the URL's port (or the scheme's default).
            direct = direct.resolve(&host, SocketAddr::new(addr.ip(), 0));
        }
        Ok(Self {
            ingress: ingress
                .build()
                .context("building the ingress HTTP client")?,
            direct: direct.build().context("building the direct HTTP client")?,
            raw,
        })
    }
}

/// Redirects are never followed (the redirect checks look at them) and cookies are never
/// stored (the session checks choose per request which cookies to send).
fn builder() -> reqwest::ClientBuilder {
    Client::builder()
        .redirect(redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("camunda-conformance/", env!("CARGO_PKG_VERSION")))
}

/// Cookies by name, filled from `Set-Cookie` headers and sent as one `Cookie` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cookies(BTreeMap<String, String>);

impl Cookies {
    /// Takes every `Set-Cookie` of a response; a cookie set to expire now is removed.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            let mut parts = text.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|attribute| {
                attribute.eq_ignore_ascii_case("Max-Age=0")
                    || attribute
                        .to_ascii_lowercase()
                        .starts_with("expires=thu, 01 jan 1970")
            });
            if expired {
                self.0.remove(name);
            } else {
                self.0
                    .insert(name.to_string(), value.trim_matches('"').to_string());
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_string(), value.to_string());
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// The `Cookie` request header.
    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A body excerpt for messages: first line, at most 120 characters.
pub(crate) fn excerpt(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or_default();
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(120).collect();
    let ellipsis = if short.len() < line.len() { "…" } else { "" };
    format!(": `{short}{ellipsis}`")
}

/// One look at something being waited for.
pub(crate) enum Polled<T> {
    Done(T),
    /// Not yet; what was seen, for the timeout message.
    Pending(String),
}

/// Polls until done or `bound` passes. On timeout the error says what it saw last.
pub(crate) async fn poll<T, F, Fut>(bound: Duration, interval: Duration, mut look: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Polled<T>>,
{
    let started = Instant::now();
    loop {
        let seen = match look().await {
            Polled::Done(value) => return Ok(value),
            Polled::Pending(seen) => seen,
        };
        if started.elapsed() + interval > bound {
            anyhow::bail!(
                "still not the case after {} s; last seen: {seen}",
                bound.as_secs()
            );
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn cookies_follow_set_cookie_headers() {
        let mut headers = HeaderMap::new();
        for value in [
            "JSESSIONID=ABC123; Path=/camunda; HttpOnly",
            "XSRF-TOKEN=TOK; Path=/camunda/",
            "INGRESSCOOKIE=\"17a9|x\"; Path=/; Secure",
        ] {
            headers.append(SET_COOKIE, HeaderValue::from_static(value));
        }
        let mut jar = Cookies::default();
        jar.absorb(&headers);
        assert_eq!(jar.get("JSESSIONID"), Some("ABC123"));
        assert_eq!(jar.get("INGRESSCOOKIE"), Some("17a9|x"));
        assert_eq!(
            jar.header(),
            "INGRESSCOOKIE=17a9|x; JSESSIONID=ABC123; XSRF-TOKEN=TOK"
        );

        let mut expire = HeaderMap::new();
        expire.append(
            SET_COOKIE,
            HeaderValue::from_static("JSESSIONID=; Max-Age=0; Path=/"),
        );
        jar.absorb(&expire);
        assert_eq!(jar.get("JSESSIONID"), None);
        assert_eq!(jar.names(), ["INGRESSCOOKIE", "XSRF-TOKEN"]);
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt(""), "");
        assert_eq!(excerpt("  {\"a\":1}\nmore"), ": `{\"a\":1}`");
        assert!(excerpt(&"x".repeat(500)).ends_with("…`"));
    }

    #[tokio::test]
    async fn poll_times_out_with_what_it_saw_last() {
        let mut n = 0;
        let err = poll(Duration::from_millis(50), Duration::from_millis(10), || {
            n += 1;
            let seen = format!("attempt {n}");
            async move { Polled::<()>::Pending(seen) }
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("last seen: attempt"), "{err}");
        assert!(n >= 2);
        let done = poll(Duration::from_secs(1), Duration::from_millis(1), || async {
            Polled::Done(7)
        })
        .await
        .unwrap();
        assert_eq!(done, 7);
    }
}
