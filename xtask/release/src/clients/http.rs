//! A small HTTP/1.1 client: registry APIs (https, or http on loopback) and health probes.
//!
//! Every request is bounded: by time, answer and body included, and a body read whole by
//! size ([`MAX_BODY`]). Credentials go to the origin they belong to only, and no error
//! carries a URL's query string (a presigned URL's signature and session token are in it).

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{Method, Request, StatusCode, Uri, body::Incoming, header::HeaderMap};
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type HttpConnector = hyper_util::client::legacy::connect::HttpConnector;
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A request body: whole, or streamed from another response (a blob between registries).
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The most a body read whole may hold: ECR's limit on a manifest, and far more than an
/// image config, a referrers list or an error message needs.
pub const MAX_BODY: usize = 4 << 20;

/// How long a TCP (and TLS) connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A whole body.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// TCP for both clients: bounded connects; the https client's wraps it in TLS.
fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http
}

/// `url` without its query string and fragment, for a message: a presigned URL carries its
/// signature and session token there, and messages end up in CI logs.
pub fn redact(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// `scheme://host:port` of an absolute URL (host in lower case, the port explicit), the unit
/// credentials are scoped to; `None` for a URL without scheme or host.
fn origin(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(format!("{scheme}://{host}:{port}"))
}

/// An `Authorization` header value and the one origin it may be sent to.
#[derive(Clone)]
struct Credentials {
    origin: String,
    authorization: String,
}

#[derive(Clone)]
pub struct Client {
    /// For http URLs (a registry or a probe on this machine).
    plain: HyperClient<HttpConnector, Body>,
    /// For https URLs: made, and the system's root certificates read, on the first https
    /// request, so that a client that speaks http alone never reads them.
    tls: Arc<OnceLock<HyperClient<Connector, Body>>>,
    credentials: Option<Credentials>,
    /// How long a request may take, answer and body included.
    timeout: Duration,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// A client without credentials.
    pub fn new() -> Client {
        let plain = HyperClient::builder(TokioExecutor::new()).build(http_connector());
        Client { plain, tls: Arc::default(), credentials: None, timeout: Duration::from_secs(30) }
    }

    /// The https client, made on first use.
    fn tls(&self) -> &HyperClient<Connector, Body> {
        self.tls.get_or_init(|| {
            // Without readable system roots https fails per request with a clear error.
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .unwrap_or_else(|_| {
                    let empty = rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(empty)
                })
                .https_only()
                .enable_http1()
                .wrap_connector(http_connector());
            HyperClient::builder(TokioExecutor::new()).build(connector)
        })
    }

    /// The same client, sending `authorization` as the `Authorization` header to the origin
    /// (scheme, host and port) of `url`, and to nowhere else: a `Location` or `Link` that
    /// points at another host or scheme is followed without it.
    pub fn with_credentials(self, url: &str, authorization: String) -> Result<Client> {
        let origin = origin(url)
            .with_context(|| format!("{} is not an absolute http(s) URL to send credentials to", redact(url)))?;
        Ok(Client { credentials: Some(Credentials { origin, authorization }), ..self })
    }

    /// The same client with another time limit per request.
    pub fn with_timeout(self, timeout: Duration) -> Client {
        Client { timeout, ..self }
    }

    /// How long a request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same client without credentials (for a redirect to another host).
    pub fn anonymous(&self) -> Client {
        Client { credentials: None, ..self.clone() }
    }

    /// Sends `body` and reads the answer whole, at most [`MAX_BODY`] bytes of it, all within
    /// the client's time limit.
    pub async fn send(&self, method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Response> {
        let shown = redact(url);
        let exchange = async {
            let response = self.stream(method.clone(), url, headers, full(body)).await?;
            let (parts, body) = response.into_parts();
            let length = parts.headers.get("content-length").and_then(|l| l.to_str().ok()?.parse::<u64>().ok());
            // A HEAD answer has no body: its length is the resource's (a blob's), not a read.
            if method != Method::HEAD && length.is_some_and(|l| l > MAX_BODY as u64) {
                bail!(
                    "{method} {shown}: the answer is {} MiB, more than the {} MiB a manifest or image config may have",
                    length.unwrap_or(0) >> 20,
                    MAX_BODY >> 20
                );
            }
            let body = Limited::new(body, MAX_BODY).collect().await.map_err(|err| {
                match err.downcast_ref::<http_body_util::LengthLimitError>() {
                    Some(_) => anyhow::anyhow!(
                        "{method} {shown}: the answer is more than the {} MiB a manifest or image config may have",
                        MAX_BODY >> 20
                    ),
                    None => anyhow::anyhow!("{method} {shown}: reading the answer failed: {err}"),
                }
            })?;
            Ok(Response { status: parts.status, headers: parts.headers, body: body.to_bytes() })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("{method} {shown} timed out after {}s", self.timeout.as_secs()))?
    }

    /// Sends `body` as it comes and returns the response as soon as its head arrives, its
    /// body unread: what streams through holds a chunk at a time, never the whole. The time
    /// limit covers the head; the caller bounds the body's (a blob's) reading.
    pub async fn stream(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<hyper::Response<Incoming>> {
        let shown = redact(url);
        let mut request = Request::builder().method(method.clone()).uri(url);
        if let Some(credentials) = &self.credentials
            && origin(url).as_deref() == Some(credentials.origin.as_str())
        {
            request = request.header("authorization", &credentials.authorization);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).with_context(|| format!("{method} {shown}: invalid request"))?;
        let response = match request.uri().scheme_str() {
            Some("https") => self.tls().request(request),
            _ => self.plain.request(request),
        };
        tokio::time::timeout(self.timeout, response)
            .await
            .map_err(|_| anyhow::anyhow!("{method} {shown} timed out after {}s", self.timeout.as_secs()))?
            .with_context(|| format!("{method} {shown} failed"))
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }
}

/// Does anything answer HTTP at `url` (any status)? A server that is down refuses the
/// connection at once; the wait is for one that is up but busy (a loaded machine's
/// single-process AWS API can take seconds), which is slow, not down.
pub async fn answers(url: &str) -> bool {
    let client = Client::new().with_timeout(ANSWER_TIMEOUT);
    client.get(url, &[]).await.is_ok()
}

/// How long [`answers`] waits for a server that accepted the connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_belong_to_a_scheme_host_and_port() {
        let registry = origin("https://r.example/v2/").unwrap();
        for same in ["https://R.EXAMPLE/v2/r/blobs/uploads/x?_state=y", "https://r.example:443/v2/"] {
            assert_eq!(origin(same).as_deref(), Some(registry.as_str()), "{same}");
        }
        for other in ["http://r.example/v2/", "https://r.example:8443/v2/", "https://s3.example/r.example", "/v2/"] {
            assert_ne!(origin(other).as_deref(), Some(registry.as_str()), "{other}");
        }
        assert!(Client::new().with_credentials("/v2/", "Basic x".to_string()).is_err());
    }

    #[test]
    fn a_url_in_a_message_has_no_query_string() {
        let presigned = "https://s3.example/layer?X-Amz-Security-Token=t&X-Amz-Signature=s#f";
        assert_eq!(redact(presigned), "https://s3.example/layer");
        assert_eq!(redact("http://127.0.0.1:5000/v2/"), "http://127.0.0.1:5000/v2/");
    }
}
