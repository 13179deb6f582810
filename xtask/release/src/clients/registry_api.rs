//! The registry's HTTP API (OCI distribution), for what ECR's API does not do: an
//! image's config (labels, os, architecture), and blobs and manifests moved between
//! registries (promotion) as they are, byte for byte.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::{clients::ecr, clients::http};

pub struct Registry {
    client: http::Client,
    base: String,
}

/// How long one blob may take to cross (a layer of gigabytes on a slow link).
const BLOB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A manifest as the registry serves it.
pub struct RawManifest {
    pub body: bytes::Bytes,
    pub media_type: String,
}

/// What a manifest refers to: its blobs (config and layers) and, for an index, the
/// manifests of its platforms.
#[derive(Debug, Default)]
pub struct References {
    /// `(digest, size)` of each blob.
    pub blobs: Vec<(String, u64)>,
    /// Digests of the manifests an index lists.
    pub manifests: Vec<String>,
}

/// What an image's config blob says about it.
#[derive(Debug, Default)]
pub struct ImageConfig {
    pub labels: BTreeMap<String, String>,
    /// `os/architecture`, e.g. `linux/amd64`.
    pub platform: String,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

/// The blobs and child manifests `body` (a manifest or an index) refers to.
pub fn references(body: &[u8]) -> Result<References> {
    let parsed: Manifest = serde_json::from_slice(body).context("the manifest is not valid JSON")?;
    let blobs = parsed.config.into_iter().chain(parsed.layers).map(|d| (d.digest, d.size)).collect();
    Ok(References { blobs, manifests: parsed.manifests.into_iter().map(|d| d.digest).collect() })
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    config: Option<ContainerConfig>,
}

#[derive(Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl Registry {
    /// The registry `auth` names, with its credentials.
    pub fn new(auth: &ecr::RegistryAuth) -> Result<Registry> {
        Ok(Registry { client: http::Client::new(Some(auth.basic_header())), base: auth.base_url()? })
    }

    /// The manifest `reference` (a tag or digest) names, as stored; `None` when absent.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Result<Option<RawManifest>> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let accept = ecr::MANIFEST_TYPES.join(", ");
        let response = self.client.get(&url, &[("accept", &accept)]).await?;
        if response.status == hyper::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status.is_success() {
            bail!("GET {url}: {}", response.status);
        }
        let media_type = match response.headers.get("content-type").and_then(|t| t.to_str().ok()) {
            Some(t) if !t.is_empty() => t.to_string(),
            _ => ecr::media_type_of(&String::from_utf8_lossy(&response.body))?,
        };
        Ok(Some(RawManifest { body: response.body, media_type }))
    }

    /// Puts `manifest` as `reference` (a tag, or its digest); returns the digest the
    /// registry computed of its bytes.
    pub async fn put_manifest(&self, repository: &str, reference: &str, manifest: &RawManifest) -> Result<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .client
            .send(hyper::Method::PUT, &url, &[("content-type", &manifest.media_type)], manifest.body.clone())
            .await?;
        if !response.status.is_success() {
            bail!("PUT {url}: {} {}", response.status, String::from_utf8_lossy(&response.body).trim());
        }
        let digest = response.headers.get("docker-content-digest").and_then(|d| d.to_str().ok()).unwrap_or_default();
        Ok(digest.to_string())
    }

    /// Does the repository hold the blob?
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let response = self.client.send(hyper::Method::HEAD, &url, &[], bytes::Bytes::new()).await?;
        match response.status {
            s if s.is_success() || s.is_redirection() => Ok(true),
            hyper::StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD {url}: {s}"),
        }
    }

    /// Streams the blob `digest` (of `size` bytes) from `source` into this registry: the
    /// body goes through a chunk at a time, whatever its size. The registry checks the
    /// digest of what arrived.
    pub async fn copy_blob(&self, source: &Registry, repository: &str, digest: &str, size: u64) -> Result<()> {
        let body = source.open_blob(repository, digest).await?;
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self.client.send(hyper::Method::POST, &start, &[], bytes::Bytes::new()).await?;
        if response.status != hyper::StatusCode::ACCEPTED {
            bail!("POST {start}: {} {}", response.status, String::from_utf8_lossy(&response.body).trim());
        }
        let location = self.location(&response.headers, &start)?;
        let uploader = self.client.clone().with_timeout(BLOB_TIMEOUT);
        let length = size.to_string();
        let headers = [("content-type", "application/octet-stream"), ("content-length", length.as_str())];
        let patched = uploader.stream(hyper::Method::PATCH, &location, &headers, body).await?;
        let status = patched.status();
        let location = self.location(patched.headers(), &location)?;
        let detail = patched.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if status != hyper::StatusCode::ACCEPTED {
            bail!("PATCH {location}: {status} {}", String::from_utf8_lossy(&detail).trim());
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{separator}digest={digest}");
        let response = self.client.send(hyper::Method::PUT, &finish, &[], bytes::Bytes::new()).await?;
        if response.status != hyper::StatusCode::CREATED {
            bail!(
                "PUT {} (completing blob {digest}): {} {}",
                finish.split('?').next().unwrap_or_default(),
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            );
        }
        Ok(())
    }

    /// The body of blob `digest`, unread (a redirect is followed as `redirect` says).
    async fn open_blob(&self, repository: &str, digest: &str) -> Result<http::Body> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let reader = self.client.clone().with_timeout(BLOB_TIMEOUT);
        let mut response = reader.stream(hyper::Method::GET, &url, &[], http::full(bytes::Bytes::new())).await?;
        if let Some(location) = redirect(response.status(), response.headers())? {
            response =
                reader.anonymous().stream(hyper::Method::GET, &location, &[], http::full(bytes::Bytes::new())).await?;
        }
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        Ok(response.into_body().map_err(Into::into).boxed())
    }

    /// An upload's `Location`, made absolute.
    fn location(&self, headers: &hyper::HeaderMap, after: &str) -> Result<String> {
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .with_context(|| format!("the registry answered {after} without a Location"))?;
        Ok(if location.starts_with('/') { format!("{}{location}", self.base) } else { location.to_string() })
    }

    /// The config of the image `manifest` describes (for an index, the entry for `platform`).
    pub async fn image_config(
        &self,
        repository: &str,
        manifest: &ecr::Manifest,
        platform: &str,
    ) -> Result<ImageConfig> {
        let parsed: Manifest = serde_json::from_str(&manifest.body).context("the image manifest is not valid JSON")?;
        let config_digest = match parsed.config {
            Some(config) => config.digest,
            None => {
                let entry = parsed
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| format!("{}/{}", p.os, p.architecture) == platform))
                    .with_context(|| format!("the image index has no entry for {platform}"))?;
                let body = self.get(&format!("/v2/{repository}/manifests/{}", entry.digest)).await?;
                let inner: Manifest =
                    serde_json::from_slice(&body).context("the platform manifest is not valid JSON")?;
                inner.config.context("the platform manifest names no config")?.digest
            }
        };
        let blob = self.get(&format!("/v2/{repository}/blobs/{config_digest}")).await?;
        let config: ConfigBlob = serde_json::from_slice(&blob).context("the image config is not valid JSON")?;
        Ok(ImageConfig {
            labels: config.config.and_then(|c| c.labels).unwrap_or_default(),
            platform: format!("{}/{}", config.os, config.architecture),
        })
    }

    /// GET with the registry's credentials (a redirect is followed as `redirect` says).
    async fn get(&self, path: &str) -> Result<bytes::Bytes> {
        let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
        let url = format!("{}{path}", self.base);
        let mut response = self.client.get(&url, &[("accept", accept)]).await?;
        if let Some(location) = redirect(response.status, &response.headers)? {
            response = self.client.anonymous().get(&location, &[]).await?;
        }
        if !response.status.is_success() {
            bail!("GET {url}: {}", response.status);
        }
        Ok(response.body)
    }
}

/// Where a redirect points, if `status` is one. ECR serves blobs from S3 this way: the
/// location carries its own signature and is followed without the registry's credentials.
fn redirect(status: hyper::StatusCode, headers: &hyper::HeaderMap) -> Result<Option<String>> {
    if !status.is_redirection() {
        return Ok(None);
    }
    let location = headers.get("location").and_then(|l| l.to_str().ok()).context("a redirect without a location")?;
    Ok(Some(location.to_string()))
}
