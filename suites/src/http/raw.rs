//! A raw HTTP/1.1 client for requests that must reach the server exactly as written: reqwest's
//! URL parser removes dot segments and rewrites some percent-encodings before sending. One
//! request per connection (`Connection: close`), the request-target sent byte for byte, only
//! the status line and headers read, the whole exchange bounded in time and size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Url;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connect, handshake, send and read the head, all together.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// A response head larger than this is not read further.
const MAX_HEAD: usize = 16 * 1024;

/// Scheme, host and port of where a raw request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub https: bool,
    /// As in a URL (an IPv6 literal keeps its brackets).
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// From `scheme://authority[/...]`; only http and https.
    pub fn parse(url: &str) -> Result<Self> {
        let parsed = Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => bail!("`{url}`: scheme {other} is neither http nor https"),
        };
        Ok(Self {
            https,
            host: parsed
                .host_str()
                .with_context(|| format!("`{url}` has no host"))?
                .to_string(),
            port: parsed
                .port_or_known_default()
                .with_context(|| format!("`{url}` has no port"))?,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The `Host` header: the port only when not the scheme's default.
    fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority())
    }

    /// Whether `url` (absolute) is on this origin.
    pub fn contains(&self, url: &Url) -> bool {
        url.scheme() == self.scheme()
            && url
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && url.port_or_known_default() == Some(self.port)
    }
}

/// Status and headers of a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawAnswer {
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl RawAnswer {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) struct Raw {
    tls: TlsConnector,
    /// The ingress host and where it resolves without DNS, as the reqwest clients do.
    ingress_host: String,
    connect_to: Option<SocketAddr>,
}

impl Raw {
    /// TLS trusts only the CA in `ca_pem` (the target's), or without one the platform's roots
    /// (as reqwest does then), with the ring provider reqwest uses.
    pub fn new(
        ca_pem: Option<&[u8]>,
        ingress_host: &str,
        connect_to: Option<SocketAddr>,
    ) -> Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    roots
                        .add(cert.context("reading the CA certificate")?)
                        .context("adding the CA certificate")?;
                }
                if roots.is_empty() {
                    bail!("no CA certificate in the PEM");
                }
            }
            None => {
                // Unreadable system certificates are skipped, as reqwest skips them.
                let (added, _) =
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                if added == 0 {
                    bail!("no system root certificate found: name the ingress's CA (ingress.ca_file, --ca)");
                }
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            ingress_host: ingress_host.to_string(),
            connect_to,
        })
    }

    /// `GET request_target` on `origin`, without credentials; the answer's head.
    pub async fn get(&self, origin: &Origin, request_target: &str) -> Result<RawAnswer> {
        let what = format!("GET {request_target} on {} (raw)", origin.url());
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(origin, request_target))
            .await
            .with_context(|| format!("{what}: no answer within {} s", EXCHANGE_TIMEOUT.as_secs()))?
            .with_context(|| what)
    }

    async fn exchange(&self, origin: &Origin, request_target: &str) -> Result<RawAnswer> {
        let bare_host = origin.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = match self.connect_to {
            Some(addr) if bare_host.eq_ignore_ascii_case(&self.ingress_host) => {
                TcpStream::connect(SocketAddr::new(addr.ip(), origin.port)).await
            }
            _ => TcpStream::connect((bare_host, origin.port)).await,
        }
        .context("connecting")?;
        let request = request_bytes(origin, request_target);
        if origin.https {
            let name = ServerName::try_from(bare_host.to_string())
                .with_context(|| format!("`{bare_host}` is not a TLS server name"))?;
            let tls = self.tls.connect(name, tcp).await.context("TLS handshake")?;
            send_and_read_head(tls, &request).await
        } else {
            send_and_read_head(tcp, &request).await
        }
    }
}

/// The request exactly as sent.
fn request_bytes(origin: &Origin, request_target: &str) -> Vec<u8> {
    format!(
        "GET {request_target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: camunda-conformance/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        origin.authority(),
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

async fn send_and_read_head<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<RawAnswer> {
    stream.write_all(request).await.context("sending")?;
    stream.flush().await.context("sending")?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return parse_head(&head[..end]);
        }
        if head.len() > MAX_HEAD {
            bail!("the response head is larger than {MAX_HEAD} bytes");
        }
        let n = stream.read(&mut chunk).await.context("reading")?;
        if n == 0 {
            bail!(
                "the connection closed before the end of the response head ({} bytes read)",
                head.len()
            );
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// `HTTP/1.x NNN reason` and the header lines.
pub(crate) fn parse_head(head: &[u8]) -> Result<RawAnswer> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("not an HTTP status line: `{status_line}`");
    };
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|c| version.starts_with("HTTP/1.") && (100..600).contains(c))
        .with_context(|| format!("not an HTTP status line: `{status_line}`"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    Ok(RawAnswer { status, headers })
}

/// A TLS acceptor for `camunda.test` with a certificate from a fresh CA, and the CA's PEM: the
/// tests' loopback ingresses.
#[cfg(test)]
pub(crate) fn camunda_test_acceptor() -> (String, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["camunda.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const CA: &[u8] = include_bytes!("../../tests/data/test-ca.pem");

    #[tokio::test]
    async fn the_request_target_is_sent_byte_for_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut chunk).await.unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 302 Found\r\nLocation: /engine-rest/task\r\nwww-authenticate: Basic realm=\"x\"\r\n\r\nbody")
                .await
                .unwrap();
            received
        });
        let raw = Raw::new(Some(CA), "camunda.test", None).unwrap();
        let origin = Origin::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let target = "/engine-rest/engine/%2e%2e/../..;/task%20?";
        let answer = raw.get(&origin, target).await.unwrap();
        assert_eq!(answer.status, 302);
        assert_eq!(answer.header("location"), Some("/engine-rest/task"));
        assert_eq!(answer.header("WWW-Authenticate"), Some("Basic realm=\"x\""));
        let received = String::from_utf8(server.await.unwrap()).unwrap();
        assert_eq!(
            received.lines().next().unwrap(),
            "GET /engine-rest/engine/%2e%2e/../..;/task%20? HTTP/1.1"
        );
        assert!(received.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")));
        assert!(received.contains("\r\nConnection: close\r\n"));
    }

    #[tokio::test]
    async fn silence_and_garbage_are_errors_not_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap();
        });
        let raw = Raw::new(Some(CA), "camunda.test", None).unwrap();
        let origin = Origin::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = raw.get(&origin, "/").await.unwrap_err();
        assert!(
            format!("{err:#}").contains("not an HTTP status line"),
            "{err:#}"
        );
    }

    /// A TLS server for `camunda.test` with a certificate from a fresh CA; answers 401 to one
    /// request and returns what it received and the SNI it saw.
    async fn tls_server() -> (
        String,
        SocketAddr,
        tokio::task::JoinHandle<Option<(String, Option<String>)>>,
    ) {
        let (ca_pem, acceptor) = camunda_test_acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            // A client that refuses the certificate ends the handshake.
            let mut tls = acceptor.accept(socket).await.ok()?;
            let sni = tls.get_ref().1.server_name().map(str::to_string);
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tls.read(&mut chunk).await.unwrap();
                received.extend_from_slice(&chunk[..n]);
            }
            tls.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"default\"\r\n\r\n",
            )
            .await
            .unwrap();
            tls.shutdown().await.ok();
            Some((String::from_utf8(received).unwrap(), sni))
        });
        (ca_pem, addr, server)
    }

    #[tokio::test]
    async fn tls_trusts_the_target_ca_only_and_sends_the_host_as_sni() {
        let (ca, addr, server) = tls_server().await;
        // The host resolves through connect_to, as for the ingress; no DNS involved.
        let raw = Raw::new(Some(ca.as_bytes()), "camunda.test", Some(addr)).unwrap();
        let origin = Origin::parse(&format!("https://camunda.test:{}", addr.port())).unwrap();
        let answer = raw
            .get(&origin, "/engine-rest/engine/%2E%2E/task")
            .await
            .unwrap();
        assert_eq!(answer.status, 401);
        let (received, sni) = server.await.unwrap().unwrap();
        assert_eq!(sni.as_deref(), Some("camunda.test"));
        assert!(
            received.starts_with("GET /engine-rest/engine/%2E%2E/task HTTP/1.1\r\n"),
            "{received}"
        );

        let (_, addr, server) = tls_server().await;
        let (other_ca, _, _) = tls_server().await;
        let raw = Raw::new(Some(other_ca.as_bytes()), "camunda.test", Some(addr)).unwrap();
        let origin = Origin::parse(&format!("https://camunda.test:{}", addr.port())).unwrap();
        let err = raw.get(&origin, "/").await.unwrap_err();
        assert!(format!("{err:#}").contains("TLS handshake"), "{err:#}");
        assert!(server.await.unwrap().is_none());
    }

    /// No CA named: the platform's roots, which do not hold a CA the harness just made; the
    /// reqwest client of the suites refuses it as well (never "accept invalid certs").
    #[tokio::test]
    async fn without_a_ca_file_a_certificate_from_an_unknown_ca_is_refused() {
        let (_, addr, server) = tls_server().await;
        let origin = Origin::parse(&format!("https://camunda.test:{}", addr.port())).unwrap();
        match Raw::new(None, "camunda.test", Some(addr)) {
            Ok(raw) => {
                let err = raw.get(&origin, "/").await.unwrap_err();
                assert!(format!("{err:#}").contains("TLS handshake"), "{err:#}");
            }
            // A machine without system roots refuses earlier, and says what to do.
            Err(err) => assert!(format!("{err:#}").contains("--ca"), "{err:#}"),
        }
        assert!(server.await.unwrap().is_none());

        let (_, addr, server) = tls_server().await;
        let target: crate::Target = toml::from_str(&format!(
            r#"
name = "unit"
backend = "existing"
[ingress]
base_url = "https://camunda.test:{port}"
connect_to = "127.0.0.1:{port}"
[sessions]
mode = "sticky"
[credentials]
username = "u"
password_env = "UNSET"
"#,
            port = addr.port()
        ))
        .unwrap();
        target.validate().unwrap();
        assert!(target.ingress.ca_file.is_none());
        if let Ok(http) = crate::http::Http::new(&target) {
            let err = http
                .ingress
                .get(target.rest_url("/engine"))
                .send()
                .await
                .unwrap_err();
            let chain = format!("{:?}", anyhow::Error::from(err));
            assert!(chain.to_lowercase().contains("certificate"), "{chain}");
        }
        assert!(server.await.unwrap().is_none());
    }

    #[test]
    fn origins_and_host_headers() {
        let ingress = Origin::parse("https://camunda.test:18443").unwrap();
        assert_eq!(ingress.url(), "https://camunda.test:18443");
        let default = Origin::parse("https://camunda.test/").unwrap();
        assert_eq!(default.port, 443);
        assert_eq!(default.url(), "https://camunda.test");
        assert!(default.contains(&Url::parse("https://CAMUNDA.test:443/x").unwrap()));
        assert!(!default.contains(&Url::parse("http://camunda.test/x").unwrap()));
        assert!(!ingress.contains(&Url::parse("https://camunda.test/x").unwrap()));
        assert!(Origin::parse("ftp://camunda.test").is_err());
        assert!(Raw::new(Some(b"not a pem"), "camunda.test", None).is_err());
    }
}
