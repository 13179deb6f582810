//! A small HTTP service: `/healthz` for the load balancer, `/version` for people.
//!
//! Configuration, all from the environment:
//! - `PORT`: the port to listen on, on every interface (default 8080; 0 = ephemeral);
//! - `APP_COMMIT`: the commit the image was built from (set in the Dockerfile);
//! - `APP_IMAGE_TAG`: the tag the image was deployed as (set by the task definition);
//! - `RUST_LOG`: the log level or filter (default `info`).
//!
//! Logs are JSON lines on stdout; the first is `listening`, with the bound `addr`.
//! SIGTERM and SIGINT stop the server gracefully; the process then exits with 0.

mod config;
mod logs;
mod routes;

use std::io;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use crate::config::Config;

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("app: {e}");
            return ExitCode::from(2);
        }
    };
    logs::init();
    if let Err(e) = serve(config).await {
        error!("{e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn serve(config: Config) -> Result<(), String> {
    // Before binding, so that a stop during start-up is orderly too.
    let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port))
        .await
        .map_err(|e| format!("cannot listen on port {}: {e}", config.port))?;
    let addr = listener.local_addr().map_err(|e| format!("listening, but on which address? {e}"))?;
    let (commit, image_tag) = (config.commit.as_deref(), config.image_tag.as_deref());
    // Unset values are left out: a tracing field cannot be null.
    info!(%addr, commit, image_tag, version = VERSION, "listening");
    let version = routes::Version { commit: config.commit, image_tag: config.image_tag, version: VERSION };
    let server = axum::serve(listener, routes::router(version)).with_graceful_shutdown(shutdown);
    server.await.map_err(|e| format!("server failed: {e}"))
}

/// Resolves on the first SIGTERM (ECS, `docker stop`) or SIGINT. The handlers are
/// installed now, not when the future is first polled: as PID 1 in a container, a
/// process without a handler ignores SIGTERM.
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        info!("shutting down");
    })
}
