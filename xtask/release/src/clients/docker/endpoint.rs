//! Requests to the Docker daemon that bollard cannot make: a BuildKit session (an HTTP
//! upgrade to h2c) and a build that reads its context from one. Each request gets a
//! connection of its own, to the daemon `DOCKER_HOST` names, as bollard reaches it: a unix
//! socket, plain tcp, tcp with TLS when `DOCKER_TLS_VERIFY` is set (the client
//! certificate, key and CA from `DOCKER_CERT_PATH`, `~/.docker` by default), or `ssh://`
//! (`ssh … docker system dial-stdio`), as the docker CLI reads them. For `ssh://` it also
//! carries bollard's requests ([`Endpoint::transport`]).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
    /// `host:port` over TLS, with the certificates in this directory (`ca.pem`, `cert.pem`,
    /// `key.pem`).
    Tls(String, PathBuf),
    /// `ssh://[user@]host[:port]`: the daemon's API through `docker system dial-stdio` there.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<String>,
    },
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Endpoint {
    /// The daemon of `DOCKER_HOST` (the default socket otherwise), as bollard connects.
    pub fn from_env() -> Result<Endpoint> {
        let host = super::docker_host();
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(address) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
            let address = address.trim_end_matches('/').to_string();
            if super::tls_verify() {
                return Ok(Endpoint::Tls(address, cert_path()?));
            }
            return Ok(Endpoint::Tcp(address));
        }
        if let Some(rest) = host.strip_prefix("ssh://") {
            let rest = rest.trim_end_matches('/');
            let (user, rest) = match rest.split_once('@') {
                Some((user, rest)) => (Some(user.to_string()), rest),
                None => (None, rest),
            };
            let (host_part, port) = match rest.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                    (host, Some(port.to_string()))
                }
                _ => (rest, None),
            };
            if host_part.is_empty() || host_part.starts_with('-') {
                bail!("DOCKER_HOST={host} names no host; give ssh://[user@]host[:port]");
            }
            return Ok(Endpoint::Ssh { user, host: host_part.to_string(), port });
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
    pub async fn send<B>(&self, mut request: Request<B>) -> Result<Response<Incoming>>
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
            Endpoint::Tcp(address) => Box::new(tcp(address).await?),
            Endpoint::Tls(address, certs) => {
                let tcp = tcp(address).await?;
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
            Endpoint::Ssh { user, host, port } => Box::new(ssh(user.as_deref(), host, port.as_deref())?),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .context("cannot talk HTTP to the Docker daemon")?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        // Origin form, as a socket's HTTP server expects it (bollard's custom transport hands
        // over `http://docker/…`).
        if let Some(path) = request.uri().path_and_query().cloned()
            && request.uri().scheme().is_some()
        {
            *request.uri_mut() = path.as_str().parse().context("a request path that is not a URI")?;
        }
        if !request.headers().contains_key(hyper::header::HOST) {
            request.headers_mut().insert(hyper::header::HOST, hyper::header::HeaderValue::from_static("docker"));
        }
        sender.send_request(request).await.context("the Docker daemon did not answer")
    }
}

/// A TCP connection to the daemon at `address`, opened within [`super::CONNECT_TIMEOUT`].
async fn tcp(address: &str) -> Result<tokio::net::TcpStream> {
    tokio::time::timeout(super::CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "cannot connect to the Docker daemon at {address}: no answer within {}s",
                super::CONNECT_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("cannot connect to the Docker daemon at {address}"))
}

/// `DOCKER_CERT_PATH`, else `DOCKER_CONFIG`, else `~/.docker`: where the docker CLI, and
/// bollard for the other requests to the same daemon, look for the certificates.
fn cert_path() -> Result<PathBuf> {
    for var in ["DOCKER_CERT_PATH", "DOCKER_CONFIG"] {
        if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
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

/// The daemon's API through `ssh [-l user] [-p port] -- host docker system dial-stdio`, as the
/// docker CLI reaches an `ssh://` daemon (the user's ssh configuration and agent apply). The
/// ssh process ends with the connection.
fn ssh(user: Option<&str>, host: &str, port: Option<&str>) -> Result<SshStream> {
    let mut command = tokio::process::Command::new("ssh");
    command.args(["-o", "ConnectTimeout=30", "-T"]);
    if let Some(user) = user {
        command.args(["-l", user]);
    }
    if let Some(port) = port {
        command.args(["-p", port]);
    }
    command.args(["--", host, "docker", "system", "dial-stdio"]);
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run ssh to reach the Docker daemon; install an OpenSSH client")?;
    let (stdout, stdin) = (child.stdout.take(), child.stdin.take());
    let (Some(stdout), Some(stdin)) = (stdout, stdin) else { bail!("ssh started without pipes") };
    Ok(SshStream { io: tokio::io::join(stdout, stdin), _child: child })
}

/// What bollard's transport returns for a request.
type Transported = std::pin::Pin<Box<dyn Future<Output = Result<Response<Incoming>, bollard::errors::Error>> + Send>>;

/// The pipes of an ssh process, as one connection.
struct SshStream {
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    _child: tokio::process::Child,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Endpoint {
    /// bollard's transport for an endpoint bollard cannot reach itself (`ssh://`): each
    /// request on a connection of its own.
    pub fn transport(self) -> impl Fn(bollard::BollardRequest) -> Transported + Send + Sync + 'static {
        let endpoint = std::sync::Arc::new(self);
        move |request| {
            let endpoint = endpoint.clone();
            Box::pin(
                async move { endpoint.send(request).await.map_err(|e| std::io::Error::other(format!("{e:#}")).into()) },
            )
        }
    }
}
