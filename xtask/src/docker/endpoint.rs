//! Requests to the Docker daemon that bollard cannot make: a BuildKit session (an HTTP
//! upgrade to h2c) and a build that reads its context from one. Each request gets a
//! connection of its own, to the daemon `DOCKER_HOST` names, as bollard reaches it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Endpoint {
    /// The daemon of `DOCKER_HOST` (the default socket otherwise), as bollard connects.
    pub(crate) fn from_env() -> Result<Endpoint> {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(address) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty()) {
                bail!(
                    "DOCKER_HOST={host} with DOCKER_TLS_VERIFY: TLS daemons are not supported yet; reach the daemon over a unix socket or plain tcp"
                );
            }
            return Ok(Endpoint::Tcp(address.trim_end_matches('/').to_string()));
        }
        bail!(
            "DOCKER_HOST={host}: BuildKit sessions need a unix:// or tcp:// daemon; point DOCKER_HOST at one, or use --builder classic"
        )
    }

    /// Sends `request` on a new connection and returns the response; the connection is
    /// driven in the background, upgrades included.
    pub(crate) async fn send<B>(&self, request: Request<B>) -> Result<Response<Incoming>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io: Box<dyn Io> = match self {
            Endpoint::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("cannot connect to the Docker daemon at {}", path.display()))?,
            ),
            Endpoint::Tcp(address) => Box::new(
                tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(|| format!("cannot connect to the Docker daemon at {address}"))?,
            ),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .context("cannot talk HTTP to the Docker daemon")?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        sender.send_request(request).await.context("the Docker daemon did not answer")
    }
}
