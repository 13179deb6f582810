//! A small HTTP/1.1 client: registry APIs (https, or http on loopback) and health probes.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, StatusCode, body::Incoming, header::HeaderMap};
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// A request body: whole, or streamed from another response (a blob between registries).
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A whole body.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<Connector, Body>,
    /// `Authorization` header value sent with every request.
    authorization: Option<String>,
    /// How long a request may take, answer included.
    timeout: Duration,
}

impl Client {
    pub fn new(authorization: Option<String>) -> Client {
        // Without readable system roots https fails per request with a clear error; http still works.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .unwrap_or_else(|_| {
                let empty = rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(empty)
            })
            .https_or_http()
            .enable_http1()
            .build();
        let inner = HyperClient::builder(TokioExecutor::new()).build(connector);
        Client { inner, authorization, timeout: Duration::from_secs(30) }
    }

    /// The same client with another time limit per request.
    pub fn with_timeout(self, timeout: Duration) -> Client {
        Client { timeout, ..self }
    }

    /// The same client without credentials (for a redirect to another host).
    pub fn anonymous(&self) -> Client {
        Client { inner: self.inner.clone(), authorization: None, timeout: self.timeout }
    }

    pub async fn send(&self, method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<Response> {
        let response = self.stream(method, url, headers, full(body)).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.with_context(|| format!("reading {url}"))?.to_bytes();
        Ok(Response { status: parts.status, headers: parts.headers, body })
    }

    /// Sends `body` as it comes and returns the response as soon as its head arrives, its
    /// body unread: what streams through holds a chunk at a time, never the whole.
    pub async fn stream(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<hyper::Response<Incoming>> {
        let mut request = Request::builder().method(method.clone()).uri(url);
        if let Some(auth) = &self.authorization {
            request = request.header("authorization", auth);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body).context("invalid request")?;
        tokio::time::timeout(self.timeout, self.inner.request(request))
            .await
            .with_context(|| format!("{method} {url} timed out"))?
            .with_context(|| format!("{method} {url} failed"))
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }
}

/// Does anything answer HTTP at `url` (any status)? A server that is down refuses the
/// connection at once; the wait is for one that is up but busy (a loaded machine's
/// single-process AWS API can take seconds), which is slow, not down.
pub async fn answers(url: &str) -> bool {
    let client = Client::new(None);
    tokio::time::timeout(ANSWER_TIMEOUT, client.get(url, &[])).await.is_ok_and(|r| r.is_ok())
}

/// How long [`answers`] waits for a server that accepted the connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
