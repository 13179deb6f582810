//! A small worker: it runs a job periodically and reports on it over HTTP, with
//! `/healthz` (200 while the job runs on time, else 503) and `/version`.
//!
//! `worker` runs it; `worker healthcheck` asks a running one for `/healthz` (exit 0 on
//! 200, 1 otherwise). Configuration, all from the environment:
//! - `PORT`: the port to listen on, on every interface (default 8080; 0 = ephemeral);
//! - `WORK_INTERVAL_SECS`: how often the job runs (default 30);
//! - `APP_COMMIT`, `APP_IMAGE_TAG`: the commit built from and the tag deployed as;
//! - `RUST_LOG`: the log level or filter (default `info`).
//!
//! Logs are JSON lines on stdout; the first is `listening`, with the bound `addr`.
//! SIGTERM and SIGINT stop the server gracefully; the process then exits with 0.

mod config;
mod healthcheck;
mod logs;
mod routes;
mod ticks;

use std::io;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info};

use crate::config::Config;
use crate::ticks::Ticks;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next()) {
        (None, _) => run(),
        (Some(arg), None) if arg == "healthcheck" => match config::port(config::env).and_then(healthcheck::check) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker healthcheck: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: worker [healthcheck]");
            ExitCode::from(2)
        }
    }
}

fn run() -> ExitCode {
    let config = match Config::from_lookup(config::env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    logs::init();
    if let Err(e) = serve(config) {
        error!("{e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn serve(config: Config) -> Result<(), String> {
    // Before binding, so that a stop during start-up is orderly too.
    let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port))
        .await
        .map_err(|e| format!("cannot listen on port {}: {e}", config.port))?;
    let addr = listener.local_addr().map_err(|e| format!("listening, but on which address? {e}"))?;
    let (commit, image_tag) = (config.commit.as_deref(), config.image_tag.as_deref());
    // Unset values are left out: a tracing field cannot be null.
    let interval_secs = config.interval.as_secs();
    info!(%addr, commit, image_tag, version = env!("CARGO_PKG_VERSION"), interval_secs, "listening");

    let ticks = Arc::new(Ticks::new(config.interval));
    ticks::start(Arc::clone(&ticks));
    let status = routes::Status { commit: config.commit, image_tag: config.image_tag, ticks };
    let server = axum::serve(listener, routes::router(status)).with_graceful_shutdown(shutdown);
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
