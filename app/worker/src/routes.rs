//! The worker's routes: `/healthz` (is the job running?) and `/version`.
//!
//! GET and HEAD only (axum answers HEAD with GET's head); other methods on these
//! paths get 405 with `Allow`, unknown paths 404.

use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Serialize;

use crate::logs;
use crate::ticks::Ticks;

/// What the routes report on.
pub struct Status {
    pub commit: Option<String>,
    pub image_tag: Option<String>,
    pub ticks: Arc<Ticks>,
}

/// `/version`'s answer: app's fields, then the job's; absent values are `null`.
#[derive(Debug, Serialize)]
struct Version<'a> {
    commit: Option<&'a str>,
    image_tag: Option<&'a str>,
    version: &'static str,
    ticks: u64,
    /// Seconds since the UNIX epoch.
    last_tick_unix: Option<u64>,
}

pub fn router(status: Status) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/version", get(version))
        .route_layer(middleware::map_response(no_store))
        .fallback(not_found)
        .layer(middleware::from_fn(logs::request))
        .with_state(Arc::new(status))
}

/// 200 while the job runs on time, 503 once it is [`Ticks::is_fresh`] no more.
async fn healthz(State(status): State<Arc<Status>>) -> (StatusCode, &'static str) {
    match status.ticks.is_fresh(Instant::now()) {
        true => (StatusCode::OK, "ok"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "stale"),
    }
}

async fn version(State(status): State<Arc<Status>>) -> Response {
    let ticks = status.ticks.state();
    Json(Version {
        commit: status.commit.as_deref(),
        image_tag: status.image_tag.as_deref(),
        version: env!("CARGO_PKG_VERSION"),
        ticks: ticks.count,
        last_tick_unix: ticks.last.and_then(|(_, at)| at.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()),
    })
    .into_response()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// The answers of the routes above describe this process, now: never cache them.
async fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    async fn send(app: Router, method: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let (parts, body) = app.oneshot(request).await.unwrap().into_parts();
        let body = to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn start(interval: Duration) -> (Router, Arc<Ticks>) {
        let ticks = Arc::new(Ticks::new(interval));
        let status = Status { commit: Some("c0ffee".into()), image_tag: None, ticks: Arc::clone(&ticks) };
        (router(status), ticks)
    }

    #[tokio::test]
    async fn version_reports_the_ticks() {
        let (app, ticks) = start(Duration::from_secs(30));
        let (status, headers, body) = send(app.clone(), "GET", "/version").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let expected = r#"{"commit":"c0ffee","image_tag":null,"version":"0.1.0","ticks":0,"last_tick_unix":null}"#;
        assert_eq!(body, expected);

        ticks.record();
        let (_, _, body) = send(app, "GET", "/version").await;
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let version: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(version["ticks"], 1);
        assert!(version["last_tick_unix"].as_u64().is_some_and(|t| t.abs_diff(now) <= 1), "{body}");
    }

    #[tokio::test]
    async fn healthz_goes_stale() {
        let (app, _) = start(Duration::from_secs(30));
        let (status, headers, body) = send(app, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");

        let (app, _) = start(Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (status, _, body) = send(app, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "stale"));
    }

    #[tokio::test]
    async fn head_other_methods_and_paths() {
        let (app, _) = start(Duration::from_secs(30));
        let (status, headers, body) = send(app.clone(), "HEAD", "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(headers[header::CONTENT_LENGTH], "2");

        let (status, headers, _) = send(app.clone(), "POST", "/version").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(send(app, "GET", "/").await.0, StatusCode::NOT_FOUND);
    }
}
