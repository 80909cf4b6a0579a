//! tls: the ingress certificate verifies against the target's CA for the ingress host (the
//! client trusts nothing else and checks the name), and plain HTTP redirects to HTTPS.

use std::error::Error as _;

use anyhow::Context;
use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};

use crate::check::{CheckInfo, Ctx, Outcome, Recorder, Verdict};
use crate::Suite;

const CERTIFICATE: CheckInfo = CheckInfo {
    id: "tls.certificate",
    suite: Suite::Tls,
    description: "the ingress certificate verifies against the target CA and covers the host",
    disruptive: false,
};
const HTTP_REDIRECT: CheckInfo = CheckInfo {
    id: "tls.http-redirect",
    suite: Suite::Tls,
    description: "plain HTTP redirects to HTTPS on the same host and path",
    disruptive: false,
};

pub(crate) const CHECKS: &[CheckInfo] = &[CERTIFICATE, HTTP_REDIRECT];

pub(crate) async fn run(ctx: &Ctx<'_>, rec: &mut Recorder<'_>) {
    rec.check(&CERTIFICATE, certificate(ctx)).await;
    match &ctx.target.ingress.http_url {
        Some(http_url) => rec.check(&HTTP_REDIRECT, redirect(ctx, http_url)).await,
        None => rec.skip(&HTTP_REDIRECT, "the target has no ingress.http_url"),
    };
}

async fn certificate(ctx: &Ctx<'_>) -> Outcome {
    let url = ctx.target.rest_url("/engine");
    let host = ctx.target.host();
    let ca = match &ctx.target.ingress.ca_file {
        Some(file) => file.display().to_string(),
        None => "the system's roots".to_string(),
    };
    Ok(match ctx.http.ingress.get(&url).send().await {
        // Any HTTP answer means the handshake, chain and name verification succeeded.
        Ok(response) => Verdict::Pass(format!(
            "the certificate for {host} verifies against {ca} (GET {url}: HTTP {})",
            response.status().as_u16()
        )),
        Err(err) => {
            let chain = error_chain(&err);
            Verdict::Fail(format!(
                "expected a certificate for {host} issued by the CA in {ca}; {}: {chain}",
                classify_tls_error(&chain)
            ))
        }
    })
}

fn error_chain(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// A reader-friendly cause from rustls' error text (its Display and Debug forms vary between
/// versions, hence several markers each).
fn classify_tls_error(chain: &str) -> &'static str {
    let text = chain.to_ascii_lowercase();
    let any = |markers: &[&str]| markers.iter().any(|m| text.contains(m));
    if any(&["unknownissuer", "unknown issuer", "badsignature"]) {
        "the certificate is not issued by the target CA"
    } else if any(&["notvalidforname", "not valid for name"]) {
        "the certificate does not cover the host name"
    } else if any(&["expired", "notvalidyet", "not valid yet"]) {
        "the certificate is outside its validity period"
    } else if any(&[
        "invalidcontenttype",
        "corruptmessage",
        "invalid content type",
    ]) {
        "the ingress port does not speak TLS"
    } else {
        "the TLS connection failed"
    }
}

async fn redirect(ctx: &Ctx<'_>, http_url: &str) -> Outcome {
    let path = format!("{}/engine", ctx.target.ingress.rest_path);
    let url = format!("{}{path}", http_url.trim_end_matches('/'));
    let response = ctx
        .http
        .direct
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // validate() guarantees an https base_url, so a missing port is 443.
    let port = Url::parse(&ctx.target.ingress.base_url)
        .ok()
        .and_then(|u| u.port_or_known_default())
        .unwrap_or(443);
    Ok(
        match judge_redirect(
            response.status(),
            location.as_deref(),
            &ctx.target.host(),
            port,
            &path,
        ) {
            Ok(seen) => Verdict::Pass(format!("GET {url}: {seen}")),
            Err(problem) => Verdict::Fail(format!("GET {url}: {problem}")),
        },
    )
}

/// A redirect to `https://{host}:{port}{path}` with 301, 302, 307 or 308, where `port` is the
/// HTTPS ingress's (a Location without a port means 443).
fn judge_redirect(
    status: StatusCode,
    location: Option<&str>,
    host: &str,
    port: u16,
    path: &str,
) -> std::result::Result<String, String> {
    let expected = format!("a redirect (301/302/307/308) to https://{host}:{port}{path}");
    if !matches!(status.as_u16(), 301 | 302 | 307 | 308) {
        return Err(format!("expected {expected}, got HTTP {}", status.as_u16()));
    }
    let Some(location) = location else {
        return Err(format!(
            "expected {expected}, got HTTP {} without Location",
            status.as_u16()
        ));
    };
    let target = Url::parse(location).map_err(|_| {
        format!("expected {expected}, got Location `{location}` (not an absolute URL)")
    })?;
    if target.scheme() != "https"
        || !target
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(host))
        || target.port_or_known_default() != Some(port)
        || target.path() != path
    {
        return Err(format!("expected {expected}, got Location `{location}`"));
    }
    Ok(format!("HTTP {} to {location}", status.as_u16()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const PATH: &str = "/engine-rest/engine";

    #[rstest]
    #[case(443, 308, Some("https://camunda.test/engine-rest/engine"), true)]
    #[case(443, 301, Some("https://camunda.test:443/engine-rest/engine"), true)]
    #[case(
        18443,
        301,
        Some("https://camunda.test:18443/engine-rest/engine"),
        true
    )]
    #[case(18443, 308, Some("https://camunda.test/engine-rest/engine"), false)]
    #[case(18443, 308, Some("https://camunda.test:443/engine-rest/engine"), false)]
    #[case(443, 301, Some("https://camunda.test:18443/engine-rest/engine"), false)]
    #[case(443, 302, Some("https://CAMUNDA.test/engine-rest/engine"), true)]
    #[case(443, 200, None, false)]
    #[case(443, 301, None, false)]
    #[case(443, 301, Some("http://camunda.test/engine-rest/engine"), false)]
    #[case(443, 301, Some("https://evil.test/engine-rest/engine"), false)]
    #[case(443, 301, Some("https://camunda.test/"), false)]
    #[case(443, 301, Some("/engine-rest/engine"), false)]
    fn redirects(
        #[case] port: u16,
        #[case] status: u16,
        #[case] location: Option<&str>,
        #[case] ok: bool,
    ) {
        let verdict = judge_redirect(
            StatusCode::from_u16(status).unwrap(),
            location,
            "camunda.test",
            port,
            PATH,
        );
        assert_eq!(verdict.is_ok(), ok, "{verdict:?}");
    }

    #[test]
    fn tls_errors_are_explained() {
        assert_eq!(
            classify_tls_error("error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"),
            "the certificate is not issued by the target CA"
        );
        // rustls 0.23's wording, as seen against nginx with a certificate for another name.
        assert_eq!(
            classify_tls_error("client error (Connect): invalid peer certificate: certificate not valid for name \"camunda.test\"; certificate is only valid for DnsName(\"wrong.test\")"),
            "the certificate does not cover the host name"
        );
        assert_eq!(
            classify_tls_error("connection refused"),
            "the TLS connection failed"
        );
    }
}
