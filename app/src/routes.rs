//! The service's routes: `/`, `/healthz`, `/version`.
//!
//! GET and HEAD only (axum answers HEAD with GET's head); other methods on these
//! paths get 405 with `Allow`, unknown paths 404.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde::Serialize;

use crate::logs;

/// What `/version` reports; absent values are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    pub commit: Option<String>,
    pub image_tag: Option<String>,
    pub version: &'static str,
}

pub fn router(version: Version) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/version", get(version_json))
        .route_layer(middleware::map_response(no_store))
        .fallback(not_found)
        .layer(middleware::from_fn(logs::request))
        .with_state(Arc::new(version))
}

async fn index() -> String {
    format!("app {}: the hello service. Endpoints: /healthz, /version\n", env!("CARGO_PKG_VERSION"))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn version_json(State(version): State<Arc<Version>>) -> Response {
    Json(&*version).into_response()
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
    use tower::ServiceExt;

    fn app() -> Router {
        router(Version { commit: Some("c0ffee".into()), image_tag: None, version: "1.2.3" })
    }

    async fn send(method: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, 1 << 20).await.unwrap();
        (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_and_index() {
        let (status, headers, body) = send("GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");

        let (status, _, body) = send("GET", "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("/healthz, /version"), "{body}");
    }

    #[tokio::test]
    async fn version_is_json_with_nulls() {
        let (status, headers, body) = send("GET", "/version?pretty").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body, r#"{"commit":"c0ffee","image_tag":null,"version":"1.2.3"}"#);
    }

    #[tokio::test]
    async fn head_has_no_body() {
        let (status, headers, body) = send("HEAD", "/healthz").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
        assert_eq!(headers[header::CONTENT_LENGTH], "2");
    }

    #[tokio::test]
    async fn other_methods_and_paths() {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let (status, headers, _) = send(method, "/healthz").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(headers[header::ALLOW], "GET,HEAD", "{method}");
        }
        for method in ["GET", "POST"] {
            let (status, headers, _) = send(method, "/nope").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
            assert!(!headers.contains_key(header::CACHE_CONTROL));
        }
    }
}
