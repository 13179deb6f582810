//! Logs: JSON lines on stdout through `tracing`, one event per request.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Logs JSON lines on stdout, at the level `RUST_LOG` asks for (info by default).
pub fn init() {
    let filter = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into()).from_env_lossy();
    tracing_subscriber::fmt().json().flatten_event(true).with_env_filter(filter).init();
}

/// Middleware: one info event per request with its method, path, status and latency.
pub async fn request(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    // Milliseconds, to the microsecond.
    let latency_ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    tracing::info!(%method, path, status = response.status().as_u16(), latency_ms, "request");
    response
}
