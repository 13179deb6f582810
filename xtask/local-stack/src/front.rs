//! The registry's front door: it listens where clients push and pull, forwards everything
//! to the registry, and keeps the promises ECR keeps and the registry does not:
//!
//! - a push to a repository the emulated ECR does not have is refused (`NAME_UNKNOWN`);
//! - a manifest pushed to an existing tag of an immutable repository is refused unless it
//!   is the very image the tag names (`TAG_INVALID`);
//! - a manifest pushed to a tag is recorded in the emulated ECR before the push returns,
//!   one push per tag at a time, so two racing pushes end with one truth in both;
//! - a tag added through ECR's API is put to the registry when a client first asks for it;
//! - the referrers API (OCI distribution spec 1.1): a manifest pushed by digest with a
//!   `subject` is recorded in ECR as an untagged image and added to its subject's list
//!   before the push returns, and the answer says so (`OCI-Subject`), so clients write no
//!   fallback tag; `GET /v2/<name>/referrers/<digest>` lists them, filtered by
//!   `artifactType` when asked. Where the lists live: [`crate::referrers`].
//!
//! Bodies stream through; only manifests (small) are read whole.

use std::{collections::HashMap, convert::Infallible, sync::Arc};

use anyhow::Result;
use aws_sdk_ecr::types::ImageTagMutability;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{
    referrers::{self, Lists},
    sync::Sync,
};
use xtask_release::clients::ecr;

type Body = BoxBody<Bytes, hyper::Error>;

pub struct Front {
    sync: Arc<Sync>,
    backend: String,
    client: Client<HttpConnector, Body>,
    /// One lock per `repository:tag`: manifest pushes to a tag are serialized.
    tags: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// The referrers lists, kept in the registry.
    lists: Lists,
}

/// Why the front refuses a request, as ECR answers it.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Front {
    pub fn new(sync: Arc<Sync>, backend_port: u16) -> Front {
        let backend = format!("http://127.0.0.1:{backend_port}");
        Front {
            lists: Lists::new(sync.registry_client(), backend.clone()),
            sync,
            backend,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            tags: Mutex::new(HashMap::new()),
        }
    }

    /// Serves clients on `listener` until the process ends.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let front = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let front = front.clone();
                    async move { Ok::<_, Infallible>(front.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let (name, kind, reference) = parse(req.uri().path());
        let result = match (req.method(), kind) {
            (&Method::POST, "blobs/uploads") => match self.repository(&name).await {
                Ok(_) => self.forward(req.map(BodyExt::boxed)).await,
                Err(refusal) => Err(refusal),
            },
            (&Method::PUT, "manifests") if !reference.starts_with("sha256:") => {
                self.put_manifest(req, &name, &reference).await
            }
            (&Method::PUT, "manifests") => self.put_manifest_by_digest(req, &name).await,
            (&Method::GET, "referrers") => self.referrers(req, &name, &reference).await,
            (&Method::GET | &Method::HEAD, "manifests") if !reference.starts_with("sha256:") => {
                self.get_manifest(req, &name, &reference).await
            }
            _ => self.forward(req.map(BodyExt::boxed)).await,
        };
        result.unwrap_or_else(|refusal| {
            if refusal.status.is_server_error() {
                eprintln!("front: {}: {}", refusal.code, refusal.message);
            }
            let body = serde_json::json!({ "errors": [{ "code": refusal.code, "message": refusal.message }] });
            let mut response = Response::new(full(Bytes::from(body.to_string())));
            *response.status_mut() = refusal.status;
            response.headers_mut().insert("content-type", "application/json".parse().expect("a valid header"));
            response
        })
    }

    /// A manifest pushed to `name:tag`: checked against ECR, stored, then recorded in ECR.
    async fn put_manifest(&self, req: Request<Incoming>, name: &str, tag: &str) -> Result<Response<Body>, Refusal> {
        let lock = self.tags.lock().await.entry(format!("{name}:{tag}")).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map_err(|err| internal(format!("cannot read the manifest: {err}")))?.to_bytes();
        let digest = format!("sha256:{:x}", Sha256::digest(&body));
        let immutable = self.repository(name).await? == ImageTagMutability::Immutable;
        if immutable
            && let Some(existing) =
                ecr::image_by_tag(&self.sync.ecr, name, tag).await.map_err(|e| internal(format!("{e:#}")))?
            && existing.image_digest() != Some(digest.as_str())
        {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "TAG_INVALID",
                message: format!(
                    "The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."
                ),
            });
        }
        let media_type =
            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let stored = self.forward(Request::from_parts(parts, full(body.clone()))).await?;
        if stored.status().is_success() {
            let text = String::from_utf8(body.to_vec()).map_err(|_| internal("a manifest that is not UTF-8".into()))?;
            let manifest = ecr::Manifest { body: text, media_type, digest };
            self.sync.record(name, tag, &manifest).await.map_err(|e| internal(format!("{e:#}")))?;
        }
        Ok(stored)
    }

    /// A manifest pushed by digest: stored; when it names a `subject`, recorded in ECR as an
    /// untagged image and added to the subject's referrers, then answered with
    /// `OCI-Subject`, as a registry with the referrers API answers.
    async fn put_manifest_by_digest(&self, req: Request<Incoming>, name: &str) -> Result<Response<Body>, Refusal> {
        self.repository(name).await?;
        let (parts, body) = req.into_parts();
        let body = body.collect().await.map_err(|err| internal(format!("cannot read the manifest: {err}")))?.to_bytes();
        let media_type =
            parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let mut stored = self.forward(Request::from_parts(parts, full(body.clone()))).await?;
        let Some(referrer) = referrers::referrer_of(&body, &media_type).filter(|_| stored.status().is_success()) else {
            return Ok(stored);
        };
        let text = String::from_utf8(body.to_vec()).map_err(|_| internal("a manifest that is not UTF-8".into()))?;
        let manifest = ecr::Manifest { body: text, media_type, digest: referrer.entry.digest.clone() };
        self.sync.record_untagged(name, &manifest).await.map_err(|e| internal(format!("{e:#}")))?;
        self.lists.add(name, &referrer).await.map_err(|e| {
            internal(format!(
                "cannot list {} as a referrer of {name}@{}: {e:#}",
                referrer.entry.digest, referrer.subject
            ))
        })?;
        let subject =
            referrer.subject.parse().map_err(|_| internal(format!("a bad subject digest {}", referrer.subject)))?;
        stored.headers_mut().insert("oci-subject", subject);
        Ok(stored)
    }

    /// `GET /v2/<name>/referrers/<digest>[?artifactType=…]`: the subject's referrers as an
    /// image index, empty when it has none. Read from the registry with the client's own
    /// credentials, so the registry's refusal of a client without them is the answer.
    async fn referrers(&self, req: Request<Incoming>, name: &str, digest: &str) -> Result<Response<Body>, Refusal> {
        self.repository(name).await?;
        if !referrers::is_subject_digest(digest) {
            return Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                code: "DIGEST_INVALID",
                message: format!("'{digest}' is not a sha256 digest"),
            });
        }
        let artifact_type = req
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "artifactType").map(|(_, v)| v));
        let mut read = Request::get(referrers::list_path(name, digest)).header("accept", referrers::OCI_INDEX);
        if let Some(authorization) = req.headers().get("authorization") {
            read = read.header("authorization", authorization);
        }
        let read = read.body(full(Bytes::new())).map_err(|err| internal(format!("a bad request: {err}")))?;
        let stored = self.forward(read).await?;
        let entries = match stored.status() {
            StatusCode::NOT_FOUND => vec![],
            status if status.is_success() => {
                let body = stored.into_body().collect().await.map_err(|e| internal(format!("{e}")))?.to_bytes();
                referrers::entries(&body).map_err(|e| internal(format!("{e:#}")))?
            }
            _ => return Ok(stored),
        };
        let mut response = Response::new(full(referrers::index(entries, artifact_type.as_deref())));
        let headers = response.headers_mut();
        headers.insert("content-type", referrers::OCI_INDEX.parse().expect("a valid header"));
        if artifact_type.is_some() {
            headers.insert("oci-filters-applied", "artifactType".parse().expect("a valid header"));
        }
        Ok(response)
    }

    /// A manifest asked for by tag: one ECR has but the registry lacks (added through ECR's
    /// API) is put to the registry first, then served.
    async fn get_manifest(&self, req: Request<Incoming>, name: &str, tag: &str) -> Result<Response<Body>, Refusal> {
        let (parts, _) = req.into_parts();
        let again = parts.clone();
        let response = self.forward(Request::from_parts(parts, full(Bytes::new()))).await?;
        if response.status() != StatusCode::NOT_FOUND {
            return Ok(response);
        }
        match self.sync.materialize(name, tag).await {
            Ok(true) => self.forward(Request::from_parts(again, full(Bytes::new()))).await,
            Ok(false) => Ok(response),
            Err(err) => Err(internal(format!("{err:#}"))),
        }
    }

    /// The repository's tag mutability, or ECR's refusal of a repository it does not have.
    async fn repository(&self, name: &str) -> Result<ImageTagMutability, Refusal> {
        match self.sync.ecr.describe_repositories().repository_names(name).send().await {
            Ok(out) => Ok(out
                .repositories()
                .first()
                .and_then(|r| r.image_tag_mutability().cloned())
                .unwrap_or(ImageTagMutability::Mutable)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => Err(Refusal {
                status: StatusCode::NOT_FOUND,
                code: "NAME_UNKNOWN",
                message: format!("The repository with name '{name}' does not exist in the registry"),
            }),
            Err(err) => Err(internal(format!(
                "cannot describe repository `{name}`: {}",
                xtask_release::clients::aws::explain(&err)
            ))),
        }
    }

    async fn forward(&self, req: Request<Body>) -> Result<Response<Body>, Refusal> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("{}{path}", self.backend).parse().map_err(|_| internal(format!("a bad path: {path}")))?;
        let response = self
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|err| internal(format!("the registry did not answer: {err}")))?;
        Ok(response.map(BodyExt::boxed))
    }
}

/// `/v2/<name>/<kind>/<reference>` as (name, kind, reference); kind is `manifests`, `blobs`,
/// `blobs/uploads` or `referrers` (empty for other paths).
fn parse(path: &str) -> (String, &'static str, String) {
    let Some(rest) = path.strip_prefix("/v2/") else { return (String::new(), "", String::new()) };
    for (marker, kind) in [
        ("/blobs/uploads", "blobs/uploads"),
        ("/manifests/", "manifests"),
        ("/blobs/", "blobs"),
        ("/referrers/", "referrers"),
    ] {
        if let Some((name, reference)) = rest.rsplit_once(marker) {
            return (name.to_string(), kind, reference.trim_start_matches('/').to_string());
        }
    }
    (String::new(), "", String::new())
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn internal(message: String) -> Refusal {
    Refusal { status: StatusCode::INTERNAL_SERVER_ERROR, code: "UNKNOWN", message }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_distribution_paths() {
        let p = |path| {
            let (name, kind, reference) = super::parse(path);
            (name, kind, reference)
        };
        assert_eq!(p("/v2/a/b/manifests/t1"), ("a/b".into(), "manifests", "t1".into()));
        assert_eq!(p("/v2/a/blobs/uploads/"), ("a".into(), "blobs/uploads", "".into()));
        assert_eq!(p("/v2/a/blobs/uploads/uuid"), ("a".into(), "blobs/uploads", "uuid".into()));
        assert_eq!(p("/v2/a/blobs/sha256:x"), ("a".into(), "blobs", "sha256:x".into()));
        assert_eq!(p("/v2/a/b/referrers/sha256:x"), ("a/b".into(), "referrers", "sha256:x".into()));
        assert_eq!(p("/v2/"), ("".into(), "", "".into()));
    }
}
