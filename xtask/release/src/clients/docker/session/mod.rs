//! A BuildKit session, opened as buildx and the docker CLI open one: `POST /session` on a
//! connection of its own, upgraded to HTTP/2 (h2c), on which the daemon is the gRPC client
//! and this process serves FileSync (the build context and the Dockerfile, module
//! [`filesync`]), Auth (a registry's credentials, module [`auth`]) and Health.
//!
//! A build that names the session with `remote=client-session` reads its context from
//! here, never from an uploaded tar: this is what works on the containerd image store,
//! where a tar uploaded to `/build` is unreadable to BuildKit (moby/moby#47717), and what
//! lets BuildKit ask only for the files that changed since its cached copy.

mod auth;
mod dockerfile_only;
mod filesync;

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context as TaskContext, Poll},
};

use anyhow::{Context, Result, bail};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
    health_check_response::ServingStatus,
    health_server::{Health, HealthServer},
};
use bollard::moby::filesync::v1::{auth_server::AuthServer, file_sync_server::FileSyncServer};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::Empty;
use hyper::{Request, StatusCode, upgrade::Upgraded};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::oneshot,
    task::JoinHandle,
};

use super::endpoint::Endpoint;
use crate::{clients::ecr::RegistryAuth, domain::context::BuildContext};
use dockerfile_only::DockerfileOnly;
use filesync::{Dirs, Sent};

/// The largest gRPC message either side takes (BuildKit's own limit).
const MAX_MESSAGE: usize = 16 << 20;

/// A session serving one build's context; closed when dropped.
pub struct Session {
    pub id: String,
    sent: Arc<Sent>,
    /// Offered as the `dockerfile` local for as long as the session lasts.
    _dockerfile: DockerfileOnly,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Session {
    /// Opens a session on the daemon at `endpoint` (API path prefix `api`, e.g. `/v1.41`)
    /// that offers `context`'s directory as `context` and its Dockerfile alone as `dockerfile`,
    /// and `registry`'s credentials to the build.
    pub async fn open(
        endpoint: &Endpoint,
        api: &str,
        context: &BuildContext,
        registry: Option<RegistryAuth>,
    ) -> Result<Session> {
        let id = session_id();
        let dockerfile = DockerfileOnly::new(context.dockerfile_path(), &id)?;
        let dirs = HashMap::from([
            ("context".to_string(), context.root().to_path_buf()),
            ("dockerfile".to_string(), dockerfile.path().to_path_buf()),
        ]);
        let sent = Arc::new(Sent::default());
        let services = Dirs { dirs, sent: sent.clone() };

        // BuildKit keys its cached copy of a local directory by this key and the directory's
        // name: the same for every build of this directory, so it can send only changes.
        let shared_key = format!("{:x}", Sha256::digest(context.root().as_os_str().as_encoded_bytes()));
        let name = context.root().file_name().and_then(|n| n.to_str()).unwrap_or("context").to_string();
        let mut request = Request::post(format!("{api}/session"))
            .header("Host", "docker")
            .header("Connection", "Upgrade")
            .header("Upgrade", "h2c")
            .header("X-Docker-Expose-Session-Uuid", &id)
            .header("X-Docker-Expose-Session-Name", name)
            .header("X-Docker-Expose-Session-Sharedkey", shared_key);
        for method in [
            "/moby.filesync.v1.FileSync/DiffCopy",
            "/moby.filesync.v1.FileSync/TarStream",
            "/grpc.health.v1.Health/Check",
        ]
        .into_iter()
        .chain(auth::METHODS)
        {
            request = request.header("X-Docker-Expose-Session-Grpc-Method", method);
        }
        let request = request.body(Empty::<Bytes>::new()).context("cannot make the session request")?;
        let response = endpoint.send(request).await.context("cannot open a BuildKit session on the Docker daemon")?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            bail!(
                "the Docker daemon refused a BuildKit session ({}); use --builder classic with this daemon",
                response.status()
            );
        }
        let upgraded = hyper::upgrade::on(response).await.context("the Docker daemon did not upgrade the session")?;

        let (stop, stopped) = oneshot::channel::<()>();
        let io = Conn(TokioIo::new(upgraded));
        // One connection, then none: the server serves it until told to stop.
        let incoming = futures_util::stream::iter([Ok::<_, std::io::Error>(io)]).chain(futures_util::stream::pending());
        let router = tonic::transport::Server::builder()
            .add_service(HealthServer::new(Healthy))
            .add_service(AuthServer::new(auth::Credentials(registry)))
            .add_service(
                FileSyncServer::new(services)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Session { id, sent, _dockerfile: dockerfile, stop: Some(stop), task })
    }

    /// File bytes and files sent so far.
    pub fn sent(&self) -> (u64, u64) {
        (self.sent.bytes.load(Ordering::Relaxed), self.sent.files.load(Ordering::Relaxed))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ends the connection (the daemon then closes the session); the task ends with it.
        drop(self.stop.take());
        let task = self.task.abort_handle();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            task.abort();
        });
    }
}

/// A session id unique on the daemon (BuildKit's own are 25 random base-36 characters; any
/// unique string will do).
fn session_id() -> String {
    use std::sync::atomic::AtomicU32;
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("xtask{:x}{:x}{:x}", std::process::id(), nanos, COUNT.fetch_add(1, Ordering::Relaxed))
}

/// The upgraded connection, as tonic's server takes it.
struct Conn(TokioIo<Upgraded>);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The daemon checks the session's health while it lasts.
struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, tonic::Status>>;

    async fn check(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(HealthCheckResponse { status: ServingStatus::Serving as i32 }))
    }

    async fn list(
        &self,
        _request: tonic::Request<HealthListRequest>,
    ) -> Result<tonic::Response<HealthListResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("list"))
    }

    async fn watch(
        &self,
        _request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("watch"))
    }
}
