//! Requests to the Docker daemon that bollard cannot make: a BuildKit session (an HTTP
//! upgrade to h2c) and a build that reads its context from one. Each request gets a
//! connection of its own, to the daemon `DOCKER_HOST` names, as bollard reaches it: a unix
//! socket, plain tcp, or tcp with TLS when `DOCKER_TLS_VERIFY` is set (the client
//! certificate, key and CA from `DOCKER_CERT_PATH`, `~/.docker` by default, as the docker
//! CLI reads them).

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
    /// `host:port` over TLS, with the certificates in this directory (`ca.pem`, `cert.pem`,
    /// `key.pem`).
    Tls(String, PathBuf),
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
            let address = address.trim_end_matches('/').to_string();
            if std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty()) {
                return Ok(Endpoint::Tls(address, cert_path()?));
            }
            return Ok(Endpoint::Tcp(address));
        }
        if let Some(address) = host.strip_prefix("https://") {
            return Ok(Endpoint::Tls(address.trim_end_matches('/').to_string(), cert_path()?));
        }
        bail!(
            "DOCKER_HOST={host}: BuildKit sessions need a unix://, tcp:// or https:// daemon; point DOCKER_HOST at one, or use --builder classic"
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
            Endpoint::Tls(address, certs) => {
                let tcp = tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(|| format!("cannot connect to the Docker daemon at {address}"))?;
                let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .with_context(|| format!("{host} is not a host name or address"))?;
                let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_config(certs)?));
                Box::new(
                    connector
                        .connect(name, tcp)
                        .await
                        .with_context(|| format!("TLS with the Docker daemon at {address} failed"))?,
                )
            }
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

/// `DOCKER_CERT_PATH`, else `~/.docker`.
fn cert_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DOCKER_CERT_PATH").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").context("DOCKER_TLS_VERIFY is set, but neither DOCKER_CERT_PATH nor HOME")?;
    Ok(PathBuf::from(home).join(".docker"))
}

/// The client's TLS settings for a daemon: trust `ca.pem`, present `cert.pem` and `key.pem`.
fn tls_config(dir: &std::path::Path) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| {
            format!("cannot read {}; DOCKER_CERT_PATH must hold ca.pem, cert.pem and key.pem", path.display())
        })
    };
    let certs = |name: &str| -> Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_slice_iter(&read(name)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} holds no valid PEM certificate", dir.join(name).display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs("ca.pem")? {
        roots.add(ca).context("the CA certificate in ca.pem is not usable")?;
    }
    let key = PrivateKeyDer::from_pem_slice(&read("key.pem")?)
        .with_context(|| format!("{} holds no valid PEM private key", dir.join("key.pem").display()))?;
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs("cert.pem")?, key)
        .context("the client certificate and key in DOCKER_CERT_PATH do not go together")
}
