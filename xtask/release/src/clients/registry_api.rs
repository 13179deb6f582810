//! The registry's HTTP API (OCI distribution), for what ECR's API does not do: an
//! image's config (labels, os, architecture), blobs and manifests moved between
//! registries (promotion) as they are, byte for byte, and referrers (artifacts such as
//! signed provenance whose manifest names an image as its `subject`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// An OCI content descriptor, as an index lists a manifest (a referrers list among them)
/// and a manifest its config, layers and subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The descriptor of `bytes` as content of `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// Where a registry keeps the list of an image's referrers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersFrom {
    /// The referrers API (`GET /v2/<name>/referrers/<digest>`): the registry keeps it.
    Api,
    /// The registry has no referrers API: clients keep an index under the fallback tag
    /// (OCI distribution spec 1.1, "referrers tag schema").
    FallbackTag,
}

#[derive(Debug, Clone)]
pub struct Referrers {
    pub manifests: Vec<Descriptor>,
    pub from: ReferrersFrom,
}

/// What [`Registry::attach_referrer`] did.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The referrer manifest's digest.
    pub digest: String,
    /// The fallback tag it wrote, when the registry has no referrers API.
    pub fallback_tag: Option<String>,
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
struct RawDescriptor {
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
        let base = auth.base_url()?;
        let client = http::Client::new().with_credentials(&base, auth.basic_header())?;
        Ok(Registry { client, base })
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
            bail!("GET {}: {}", http::redact(&url), response.status);
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
            bail!("PUT {}: {} {}", http::redact(&url), response.status, String::from_utf8_lossy(&response.body).trim());
        }
        let digest = response.headers.get("docker-content-digest").and_then(|d| d.to_str().ok()).unwrap_or_default();
        Ok(digest.to_string())
    }

    /// Puts `manifest` under its own digest (computed here from its bytes) and checks that
    /// the registry computed the same. Returns the digest and, when the registry has the
    /// referrers API and the manifest a `subject`, the subject it recorded (`OCI-Subject`).
    pub async fn put_manifest_by_digest(
        &self,
        repository: &str,
        manifest: &RawManifest,
    ) -> Result<(String, Option<String>)> {
        let digest = digest_of(&manifest.body);
        let url = format!("{}/v2/{repository}/manifests/{digest}", self.base);
        let response = self
            .client
            .send(hyper::Method::PUT, &url, &[("content-type", &manifest.media_type)], manifest.body.clone())
            .await?;
        if !response.status.is_success() {
            bail!("PUT {}: {} {}", http::redact(&url), response.status, String::from_utf8_lossy(&response.body).trim());
        }
        let header = |name: &str| response.headers.get(name).and_then(|d| d.to_str().ok()).map(str::to_string);
        if let Some(stored) = header("docker-content-digest")
            && stored != digest
        {
            bail!("PUT {}: the registry stored the manifest as {stored}, not as {digest}", http::redact(&url));
        }
        Ok((digest, header("oci-subject")))
    }

    /// Uploads `body` as a blob unless the repository already holds it; returns its digest.
    /// Sent as one chunk (POST, PATCH, PUT), as [`Registry::copy_blob`] does.
    pub async fn push_blob(&self, repository: &str, body: bytes::Bytes) -> Result<String> {
        let digest = digest_of(&body);
        if self.has_blob(repository, &digest).await? {
            return Ok(digest);
        }
        let location = self.start_upload(repository).await?;
        let length = body.len().to_string();
        let headers = [("content-type", "application/octet-stream"), ("content-length", length.as_str())];
        let patched = self.client.send(hyper::Method::PATCH, &location, &headers, body).await?;
        if patched.status != hyper::StatusCode::ACCEPTED {
            bail!(
                "PATCH {} (blob {digest}): {} {}",
                http::redact(&location),
                patched.status,
                String::from_utf8_lossy(&patched.body).trim()
            );
        }
        let location = self.location(&patched.headers, &location)?;
        self.finish_upload(&location, &digest).await?;
        Ok(digest)
    }

    /// The manifests whose `subject` is `digest`, of `artifact_type` if given: from the
    /// referrers API, or, where the registry has none (it answers 404, as distribution
    /// 2.8 does), from the index under the fallback tag `sha256-<hex>`.
    pub async fn referrers(&self, repository: &str, digest: &str, artifact_type: Option<&str>) -> Result<Referrers> {
        let (manifests, from) = match self.referrers_api(repository, digest, artifact_type).await? {
            Some(manifests) => (manifests, ReferrersFrom::Api),
            None => (self.fallback_index(repository, digest).await?.1, ReferrersFrom::FallbackTag),
        };
        // A registry may ignore the filter (it says so by leaving `artifactType` out of
        // `OCI-Filters-Applied`); the fallback index is never filtered.
        let manifests = manifests
            .into_iter()
            .filter(|m| artifact_type.is_none_or(|t| m.artifact_type.as_deref() == Some(t)))
            .collect();
        Ok(Referrers { manifests, from })
    }

    /// Pushes `manifest`, whose `subject` is the manifest `subject_digest`, by digest, and
    /// makes it findable as a referrer: a registry with the referrers API does that itself;
    /// on one without, the entry is added to the fallback tag's index. The fallback tag is
    /// never written where the referrers API exists (ECR has it, and its tags may be
    /// immutable). Two writers adding to the same fallback index at once can lose one
    /// entry: the registry offers no conditional write.
    pub async fn attach_referrer(
        &self,
        repository: &str,
        subject_digest: &str,
        manifest: &RawManifest,
    ) -> Result<Attached> {
        let entry = referrer_entry(manifest)?;
        let (digest, recorded) = self.put_manifest_by_digest(repository, manifest).await?;
        if recorded.is_some() || self.referrers_api(repository, subject_digest, None).await?.is_some() {
            return Ok(Attached { digest, fallback_tag: None });
        }
        let (index, _) = self.fallback_index(repository, subject_digest).await?;
        let tag = fallback_tag(subject_digest);
        if let Some(updated) = with_referrer(index, &entry)? {
            let url = format!("{}/v2/{repository}/manifests/{tag}", self.base);
            let response =
                self.client.send(hyper::Method::PUT, &url, &[("content-type", OCI_INDEX)], updated.into()).await?;
            if !response.status.is_success() {
                bail!(
                    "PUT {}: {} {}",
                    http::redact(&url),
                    response.status,
                    String::from_utf8_lossy(&response.body).trim()
                );
            }
        }
        Ok(Attached { digest, fallback_tag: Some(tag) })
    }

    /// The referrers API's answer (every page), or `None` when the registry has no such API.
    async fn referrers_api(
        &self,
        repository: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>> {
        let query = match artifact_type {
            Some(t) => format!("?{}", serde_urlencoded::to_string([("artifactType", t)])?),
            None => String::new(),
        };
        let mut url = format!("{}/v2/{repository}/referrers/{digest}{query}", self.base);
        let mut manifests = Vec::new();
        for _ in 0..100 {
            let response = self.client.get(&url, &[("accept", OCI_INDEX)]).await?;
            if response.status == hyper::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status.is_success() {
                bail!(
                    "GET {}: {} {}",
                    http::redact(&url),
                    response.status,
                    String::from_utf8_lossy(&response.body).trim()
                );
            }
            manifests.extend(parse_index(&response.body).with_context(|| format!("GET {}", http::redact(&url)))?);
            match next_page(&response.headers) {
                Some(next) if next.starts_with('/') => url = format!("{}{next}", self.base),
                Some(next) => url = next,
                None => return Ok(Some(manifests)),
            }
        }
        bail!("GET {}: the registry's referrers list has more than 100 pages", http::redact(&url))
    }

    /// The index under the fallback tag of `digest` (raw, if any) and its entries.
    async fn fallback_index(&self, repository: &str, digest: &str) -> Result<(Option<bytes::Bytes>, Vec<Descriptor>)> {
        let url = format!("{}/v2/{repository}/manifests/{}", self.base, fallback_tag(digest));
        let response = self.client.get(&url, &[("accept", OCI_INDEX)]).await?;
        if response.status == hyper::StatusCode::NOT_FOUND {
            return Ok((None, Vec::new()));
        }
        if !response.status.is_success() {
            bail!("GET {}: {} {}", http::redact(&url), response.status, String::from_utf8_lossy(&response.body).trim());
        }
        let manifests = parse_index(&response.body).with_context(|| format!("GET {}", http::redact(&url)))?;
        Ok((Some(response.body), manifests))
    }

    /// Does the repository hold the blob?
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let response = self.client.send(hyper::Method::HEAD, &url, &[], bytes::Bytes::new()).await?;
        match response.status {
            s if s.is_success() || s.is_redirection() => Ok(true),
            hyper::StatusCode::NOT_FOUND => Ok(false),
            s => bail!("HEAD {}: {s}", http::redact(&url)),
        }
    }

    /// Opens a blob upload in `repository`; returns where to send the content.
    async fn start_upload(&self, repository: &str) -> Result<String> {
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self.client.send(hyper::Method::POST, &start, &[], bytes::Bytes::new()).await?;
        if response.status != hyper::StatusCode::ACCEPTED {
            bail!(
                "POST {}: {} {}",
                http::redact(&start),
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            );
        }
        self.location(&response.headers, &start)
    }

    /// Completes the upload at `location` as the blob `digest` (the registry checks it).
    async fn finish_upload(&self, location: &str, digest: &str) -> Result<()> {
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = format!("{location}{separator}digest={digest}");
        let response = self.client.send(hyper::Method::PUT, &finish, &[], bytes::Bytes::new()).await?;
        if response.status != hyper::StatusCode::CREATED {
            bail!(
                "PUT {} (completing blob {digest}): {} {}",
                http::redact(&finish),
                response.status,
                String::from_utf8_lossy(&response.body).trim()
            );
        }
        Ok(())
    }

    /// Streams the blob `digest` (of `size` bytes) from `source` into this registry: the
    /// body goes through a chunk at a time, whatever its size. The registry checks the
    /// digest of what arrived.
    pub async fn copy_blob(&self, source: &Registry, repository: &str, digest: &str, size: u64) -> Result<()> {
        tokio::time::timeout(BLOB_TIMEOUT, self.copy_blob_unbounded(source, repository, digest, size))
            .await
            .map_err(|_| anyhow::anyhow!("copying blob {digest} of {repository} took longer than {BLOB_TIMEOUT:?}"))?
    }

    async fn copy_blob_unbounded(&self, source: &Registry, repository: &str, digest: &str, size: u64) -> Result<()> {
        let body = source.open_blob(repository, digest).await?;
        let location = self.start_upload(repository).await?;
        let uploader = self.client.clone().with_timeout(BLOB_TIMEOUT);
        let length = size.to_string();
        let headers = [("content-type", "application/octet-stream"), ("content-length", length.as_str())];
        let patched = uploader.stream(hyper::Method::PATCH, &location, &headers, body).await?;
        let status = patched.status();
        let location = self.location(patched.headers(), &location)?;
        let detail = http_body_util::Limited::new(patched.into_body(), http::MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status != hyper::StatusCode::ACCEPTED {
            bail!("PATCH {}: {status} {}", http::redact(&location), String::from_utf8_lossy(&detail).trim());
        }
        self.finish_upload(&location, digest).await?;
        Ok(())
    }

    /// The body of blob `digest`, unread (a redirect is followed as `redirect` says).
    async fn open_blob(&self, repository: &str, digest: &str) -> Result<http::Body> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        // The head comes within the client's time limit; the body's reading is the
        // caller's to bound ([`Registry::copy_blob`]).
        let reader = &self.client;
        let mut response = reader.stream(hyper::Method::GET, &url, &[], http::full(bytes::Bytes::new())).await?;
        if let Some(location) = redirect(response.status(), response.headers())? {
            response =
                reader.anonymous().stream(hyper::Method::GET, &location, &[], http::full(bytes::Bytes::new())).await?;
        }
        if !response.status().is_success() {
            bail!("GET {}: {}", http::redact(&url), response.status());
        }
        Ok(response.into_body().map_err(Into::into).boxed())
    }

    /// An upload's `Location`, made absolute.
    fn location(&self, headers: &hyper::HeaderMap, after: &str) -> Result<String> {
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .with_context(|| format!("the registry answered {} without a Location", http::redact(after)))?;
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

    /// A small blob (a provenance bundle, a config), read whole; its bytes must have its digest.
    pub async fn blob(&self, repository: &str, digest: &str) -> Result<bytes::Bytes> {
        let body = self.get(&format!("/v2/{repository}/blobs/{digest}")).await?;
        if digest_of(&body) != digest {
            bail!("the registry served blob {digest} of {repository} with other bytes");
        }
        Ok(body)
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
            bail!("GET {}: {}", http::redact(&url), response.status);
        }
        Ok(response.body)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The referrers tag schema's tag for `digest`: `<alg>-<hex>`, at most 128 characters.
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1).chars().take(128).collect()
}

/// The entries of an image index (a referrers list).
fn parse_index(body: &[u8]) -> Result<Vec<Descriptor>> {
    #[derive(Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(body).context("the referrers list is not an image index")?;
    Ok(index.manifests)
}

/// How `manifest` is listed among its subject's referrers: its descriptor, its
/// `artifactType` (or, without one, its config's media type) and its annotations.
fn referrer_entry(manifest: &RawManifest) -> Result<Descriptor> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Fields {
        artifact_type: Option<String>,
        config: Option<Config>,
        subject: Option<serde_json::Value>,
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        media_type: String,
    }
    let fields: Fields = serde_json::from_slice(&manifest.body).context("the referrer manifest is not valid JSON")?;
    if fields.subject.is_none() {
        bail!("the referrer manifest has no `subject`: it would refer to nothing");
    }
    Ok(Descriptor {
        media_type: manifest.media_type.clone(),
        digest: digest_of(&manifest.body),
        size: manifest.body.len() as u64,
        artifact_type: fields.artifact_type.or(fields.config.map(|c| c.media_type)),
        annotations: fields.annotations,
    })
}

/// The fallback index `existing` (or a new one) with `entry` added; `None` when it already
/// lists it. Entries and fields already there are kept as they are.
fn with_referrer(existing: Option<bytes::Bytes>, entry: &Descriptor) -> Result<Option<Vec<u8>>> {
    let mut index: serde_json::Value = match existing {
        Some(body) => serde_json::from_slice(&body).context("the fallback tag's index is not valid JSON")?,
        None => serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [] }),
    };
    let manifests = index
        .as_object_mut()
        .context("the fallback tag's index is not a JSON object")?
        .entry("manifests")
        .or_insert_with(|| serde_json::json!([]))
        .as_array_mut()
        .context("the fallback tag's index has a `manifests` that is not a list")?;
    if manifests.iter().any(|m| m.get("digest").and_then(|d| d.as_str()) == Some(entry.digest.as_str())) {
        return Ok(None);
    }
    manifests.push(serde_json::to_value(entry)?);
    Ok(Some(serde_json::to_vec(&index)?))
}

/// The next page of a paginated list: the `Link: <url>; rel="next"` header's URL.
fn next_page(headers: &hyper::HeaderMap) -> Option<String> {
    headers.get_all("link").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|link| {
        let (target, params) = link.trim().split_once(';')?;
        let next = params.split(';').any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "sha256:f06875c0004a77a7cb552005abdd38c40b26583172a87e232276ad2e8b4be643";
    const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

    fn referrer_manifest(annotations: &str) -> RawManifest {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{SUBJECT}","size":583}}{annotations}}}"#
        );
        RawManifest { body: body.into(), media_type: "application/vnd.oci.image.manifest.v1+json".to_string() }
    }

    #[test]
    fn the_fallback_tag_is_the_digest_with_a_dash() {
        assert_eq!(fallback_tag(SUBJECT), SUBJECT.replace(':', "-"));
        let long = format!("sha512:{}", "a".repeat(128));
        assert_eq!(fallback_tag(&long).len(), 128);
    }

    #[test]
    fn a_referrer_is_listed_with_its_artifact_type_and_annotations() {
        let with = referrer_manifest(
            r#","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{"a":"b"}"#,
        );
        let entry = referrer_entry(&with).unwrap();
        assert_eq!(entry.digest, digest_of(&with.body));
        assert_eq!(entry.size, with.body.len() as u64);
        assert_eq!(entry.artifact_type.as_deref(), Some("application/vnd.dev.sigstore.bundle.v0.3+json"));
        assert_eq!(entry.annotations, BTreeMap::from([("a".to_string(), "b".to_string())]));
        // Without `artifactType`, the config's media type stands for it (OCI 1.1).
        let entry = referrer_entry(&referrer_manifest("")).unwrap();
        assert_eq!(entry.artifact_type.as_deref(), Some("application/vnd.oci.empty.v1+json"));
        let image = RawManifest { body: r#"{"schemaVersion":2,"layers":[]}"#.into(), media_type: "x".to_string() };
        assert!(format!("{:#}", referrer_entry(&image).unwrap_err()).contains("no `subject`"));
    }

    #[test]
    fn the_fallback_index_gains_an_entry_once_and_keeps_the_others() {
        let entry = referrer_entry(&referrer_manifest("")).unwrap();
        let first = with_referrer(None, &entry).unwrap().unwrap();
        let index: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(index["mediaType"], OCI_INDEX);
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(parse_index(&first).unwrap(), vec![entry.clone()]);
        assert!(with_referrer(Some(first.clone().into()), &entry).unwrap().is_none());

        let other = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","digest":"sha256:00","size":1,"platform":{"os":"x"}}],"annotations":{"k":"v"}}"#;
        let both = with_referrer(Some(other.into()), &entry).unwrap().unwrap();
        let index: serde_json::Value = serde_json::from_slice(&both).unwrap();
        assert_eq!(index["annotations"]["k"], "v");
        assert_eq!(index["manifests"][0]["platform"]["os"], "x");
        assert_eq!(index["manifests"][1]["digest"], entry.digest.as_str());
    }

    /// A registry on a loopback port that keeps manifests in memory, with or without the
    /// referrers API, and records each request as `METHOD path`.
    struct FakeRegistry {
        registry: Registry,
        state: std::sync::Arc<std::sync::Mutex<FakeState>>,
    }

    #[derive(Default)]
    struct FakeState {
        referrers_api: bool,
        /// Answers a manifest with a subject with `OCI-Subject`, as the spec asks of a
        /// registry with the referrers API (one that has the API but omits it is allowed).
        oci_subject: bool,
        manifests: BTreeMap<String, (String, bytes::Bytes)>,
        requests: Vec<String>,
    }

    impl FakeRegistry {
        async fn start(referrers_api: bool, oci_subject: bool) -> FakeRegistry {
            use hyper_util::rt::TokioIo;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let state = std::sync::Arc::new(std::sync::Mutex::new(FakeState {
                referrers_api,
                oci_subject,
                ..FakeState::default()
            }));
            let shared = state.clone();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let state = shared.clone();
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, request).await) }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                    );
                }
            });
            let auth = ecr::RegistryAuth {
                username: "u".to_string(),
                password: "p".to_string(),
                host: format!("127.0.0.1:{port}"),
                plain_http: true,
            };
            FakeRegistry { registry: Registry::new(&auth).unwrap(), state }
        }

        fn requests(&self) -> Vec<String> {
            std::mem::take(&mut self.state.lock().unwrap().requests)
        }

        fn manifest(&self, reference: &str) -> Option<bytes::Bytes> {
            self.state.lock().unwrap().manifests.get(reference).map(|(_, body)| body.clone())
        }
    }

    async fn answer(
        state: &std::sync::Mutex<FakeState>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
        let (method, path) = (request.method().clone(), request.uri().path().to_string());
        let content_type =
            request.headers().get("content-type").and_then(|t| t.to_str().ok()).unwrap_or("").to_string();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut state = state.lock().unwrap();
        state.requests.push(format!("{method} {path}"));
        let reply = |status: u16, body: bytes::Bytes| {
            hyper::Response::builder().status(status).body(http_body_util::Full::new(body)).unwrap()
        };
        let parts: Vec<&str> = path.trim_start_matches("/v2/r/").splitn(2, '/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("PUT", ["manifests", reference]) => {
                let digest = digest_of(&body);
                let subject = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["subject"]["digest"].clone();
                state.manifests.insert(digest.clone(), (content_type.clone(), body.clone()));
                state.manifests.insert(reference.to_string(), (content_type, body));
                let mut response = reply(201, bytes::Bytes::new());
                response.headers_mut().insert("docker-content-digest", digest.parse().unwrap());
                if state.oci_subject
                    && let Some(subject) = subject.as_str()
                {
                    response.headers_mut().insert("oci-subject", subject.parse().unwrap());
                }
                response
            }
            ("GET", ["manifests", reference]) => match state.manifests.get(*reference) {
                Some((_, body)) => reply(200, body.clone()),
                None => reply(404, bytes::Bytes::new()),
            },
            ("GET", ["referrers", digest]) if state.referrers_api => {
                let mut listed = Vec::new();
                for (reference, (media_type, body)) in &state.manifests {
                    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
                    if reference.starts_with("sha256:") && json["subject"]["digest"] == *digest {
                        let manifest = RawManifest { body: body.clone(), media_type: media_type.clone() };
                        listed.push(referrer_entry(&manifest).unwrap());
                    }
                }
                reply(
                    200,
                    serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "manifests": listed })).unwrap().into(),
                )
            }
            _ => reply(404, bytes::Bytes::new()),
        }
    }

    fn sigstore_referrer() -> RawManifest {
        referrer_manifest(r#","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json""#)
    }

    #[tokio::test]
    async fn a_registry_without_the_referrers_api_gets_the_fallback_tag() {
        let fake = FakeRegistry::start(false, false).await;
        let manifest = sigstore_referrer();
        let attached = fake.registry.attach_referrer("r", SUBJECT, &manifest).await.unwrap();
        let tag = fallback_tag(SUBJECT);
        assert_eq!(attached.fallback_tag.as_deref(), Some(tag.as_str()));
        assert_eq!(
            fake.requests(),
            [
                format!("PUT /v2/r/manifests/{}", attached.digest),
                format!("GET /v2/r/referrers/{SUBJECT}"),
                format!("GET /v2/r/manifests/{tag}"),
                format!("PUT /v2/r/manifests/{tag}"),
            ]
        );
        let listed = parse_index(&fake.manifest(&tag).unwrap()).unwrap();
        assert_eq!(listed, vec![referrer_entry(&manifest).unwrap()]);

        // Attached again: the index already lists it and is not written.
        fake.registry.attach_referrer("r", SUBJECT, &manifest).await.unwrap();
        assert!(!fake.requests().contains(&format!("PUT /v2/r/manifests/{tag}")));

        let found = fake.registry.referrers("r", SUBJECT, Some(BUNDLE_TYPE)).await.unwrap();
        assert_eq!((found.manifests.len(), found.from), (1, ReferrersFrom::FallbackTag));
        let found = fake.registry.referrers("r", SUBJECT, Some("application/other")).await.unwrap();
        assert!(found.manifests.is_empty());
    }

    #[tokio::test]
    async fn a_registry_with_the_referrers_api_never_gets_the_fallback_tag() {
        for oci_subject in [true, false] {
            let fake = FakeRegistry::start(true, oci_subject).await;
            let attached = fake.registry.attach_referrer("r", SUBJECT, &sigstore_referrer()).await.unwrap();
            assert_eq!(attached.fallback_tag, None);
            let requests = fake.requests();
            assert!(requests.iter().all(|r| !r.contains(&fallback_tag(SUBJECT))), "{requests:?}");
            assert_eq!(requests.len(), if oci_subject { 1 } else { 2 }, "{requests:?}");

            let found = fake.registry.referrers("r", SUBJECT, Some(BUNDLE_TYPE)).await.unwrap();
            assert_eq!(found.from, ReferrersFrom::Api);
            assert_eq!(found.manifests[0].digest, attached.digest);
            assert_eq!(fake.requests(), [format!("GET /v2/r/referrers/{SUBJECT}")]);
        }
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(next_page(&headers), None);
        headers.insert("link", r#"</v2/r/referrers/sha256:ab?n=2&last=x>; rel="next""#.parse().unwrap());
        assert_eq!(next_page(&headers).as_deref(), Some("/v2/r/referrers/sha256:ab?n=2&last=x"));
        headers.insert("link", r#"<https://r.example/v2/r/tags/list>; rel="prev""#.parse().unwrap());
        assert_eq!(next_page(&headers), None);
    }

    /// What a [`serve`]d server saw of one request: `METHOD uri` and its `Authorization`.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

    /// A server on a loopback port that answers each request with `answer(method, path)`
    /// and records what it saw; returns `http://127.0.0.1:<port>` and the record.
    async fn serve<F>(answer: F) -> (String, Seen)
    where
        F: Fn(&str, &str) -> hyper::Response<http::Body> + Send + Sync + 'static,
    {
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Seen::default();
        let (record, answer) = (seen.clone(), std::sync::Arc::new(answer));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (record, answer) = (record.clone(), answer.clone());
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (record, answer) = (record.clone(), answer.clone());
                    async move {
                        let authorization =
                            request.headers().get("authorization").map(|a| a.to_str().unwrap().to_string());
                        let (method, uri) = (request.method().to_string(), request.uri().to_string());
                        record.lock().unwrap().push((format!("{method} {uri}"), authorization));
                        let _ = request.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(answer(&method, &uri))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (base, seen)
    }

    fn respond(status: u16, headers: &[(&str, &str)]) -> hyper::Response<http::Body> {
        let mut response = hyper::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(http::full(bytes::Bytes::new())).unwrap()
    }

    /// The registry at `base` (`http://127.0.0.1:<port>`), as `Registry::new` makes it.
    fn registry_at(base: &str) -> Registry {
        let auth = ecr::RegistryAuth {
            username: "AWS".to_string(),
            password: "the-password".to_string(),
            host: base.trim_start_matches("http://").to_string(),
            plain_http: true,
        };
        Registry::new(&auth).unwrap()
    }

    #[tokio::test]
    async fn an_upload_elsewhere_gets_no_credentials() {
        // Another port of the same address is another origin, as another host is.
        let (elsewhere, seen_elsewhere) = serve(|method, uri| match method {
            "PATCH" => respond(202, &[("location", "/elsewhere/upload?_state=next")]),
            "PUT" if uri.contains("digest=") => respond(201, &[]),
            _ => respond(404, &[]),
        })
        .await;
        let upload = format!("{elsewhere}/elsewhere/upload?_state=first");
        let (base, seen_registry) = serve(move |method, _| match method {
            "HEAD" => respond(404, &[]),
            "POST" => respond(202, &[("location", upload.as_str())]),
            _ => respond(404, &[]),
        })
        .await;
        let registry = registry_at(&base);
        // The PATCH's relative `Location` is the registry's own (it resolves against it),
        // so the upload ends there; what matters is what went elsewhere.
        let _ = registry.push_blob("r", bytes::Bytes::from_static(b"blob")).await;
        let registry_saw = seen_registry.lock().unwrap().clone();
        assert!(registry_saw.iter().all(|(_, auth)| auth.is_some()), "{registry_saw:?}");
        let elsewhere_saw = seen_elsewhere.lock().unwrap().clone();
        assert!(elsewhere_saw.iter().any(|(request, _)| request.starts_with("PATCH")), "{elsewhere_saw:?}");
        assert!(elsewhere_saw.iter().all(|(_, auth)| auth.is_none()), "credentials went elsewhere: {elsewhere_saw:?}");
    }

    /// A presigned S3 URL's secrets, as ECR's blob redirects carry them.
    const PRESIGNED: &str = "X-Amz-Security-Token=the-session-token&X-Amz-Signature=the-signature";

    fn assert_no_query(err: &anyhow::Error) {
        for shown in [format!("{err:#}"), format!("{err:?}")] {
            for secret in ["X-Amz", "the-session-token", "the-signature", "?"] {
                assert!(!shown.contains(secret), "the error shows `{secret}`: {shown}");
            }
        }
    }

    #[tokio::test]
    async fn a_failed_redirected_read_keeps_the_presigned_query_out_of_the_error() {
        // Where the redirect points: a refused connection, a 403, a server that never answers.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let (forbidden, _) = serve(|_, _| respond(403, &[])).await;
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_base = format!("http://{}", silent.local_addr().unwrap());
        for target in [closed, forbidden, silent_base] {
            let location = format!("{target}/bucket/blob?{PRESIGNED}");
            let (base, _) = serve(move |_, _| respond(307, &[("location", location.as_str())])).await;
            let mut registry = registry_at(&base);
            registry.client = registry.client.with_timeout(std::time::Duration::from_millis(500));
            let err = registry.blob("r", SUBJECT).await.unwrap_err();
            assert_no_query(&err);
            let err = registry.open_blob("r", SUBJECT).await.err().unwrap();
            assert_no_query(&err);
        }
        drop(silent);
    }

    /// `left` bytes of zeros, 64 KiB a frame, made as they are read (never held whole);
    /// `sent` counts what was handed over.
    struct Zeros {
        left: u64,
        sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl hyper::body::Body for Zeros {
        type Data = bytes::Bytes;
        type Error = Box<dyn std::error::Error + Send + Sync>;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
            static CHUNK: [u8; 65536] = [0; 65536];
            let n = self.left.min(CHUNK.len() as u64);
            if n == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= n;
            self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(bytes::Bytes::from_static(&CHUNK[..n as usize])))))
        }
    }

    /// The peak resident memory of this process so far (`VmHWM`), in KiB.
    fn peak_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    #[tokio::test]
    async fn a_blob_bigger_than_a_manifest_is_found_by_head() {
        // A HEAD answer's length is the blob's: no body is read, so no cap applies.
        let (base, _) = serve(|_, _| respond(200, &[("content-length", "49283072")])).await;
        assert!(registry_at(&base).has_blob("r", SUBJECT).await.unwrap());
    }

    #[tokio::test]
    async fn a_config_blob_of_100_mib_fails_in_one_line_without_being_read_whole() {
        const SIZE: u64 = 100 << 20;
        // Announced (Content-Length) or not (chunked): refused at once, or at the cap.
        for announced in [true, false] {
            let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counter = sent.clone();
            let (base, _) = serve(move |_, _| {
                let body = Zeros { left: SIZE, sent: counter.clone() };
                let mut response = hyper::Response::builder().status(200);
                if announced {
                    response = response.header("content-length", SIZE);
                }
                response.body(body.boxed()).unwrap()
            })
            .await;
            let registry = registry_at(&base);
            let manifest = ecr::Manifest {
                body: format!(r#"{{"schemaVersion":2,"config":{{"digest":"{SUBJECT}","size":{SIZE}}},"layers":[]}}"#),
                media_type: "application/vnd.oci.image.manifest.v1+json".to_string(),
                digest: SUBJECT.to_string(),
            };
            let before = peak_kib();
            let err = registry.image_config("r", &manifest, "linux/amd64").await.unwrap_err();
            let grown_mib = (peak_kib() - before) / 1024;
            let shown = format!("{err:#}");
            assert!(!shown.contains('\n') && shown.contains("more than"), "{shown}");
            let sent_mib = sent.load(std::sync::atomic::Ordering::Relaxed) >> 20;
            eprintln!("announced={announced}: sent {sent_mib} MiB, peak memory grew {grown_mib} MiB: {shown}");
            // What crossed is the cap and what the sockets buffer, far from the whole: what is
            // not read is not held. (The peak memory is shown, not asserted: it is the whole
            // test process's, and other tests run beside this one.)
            assert!(sent_mib < 32, "the client read {sent_mib} MiB of a {} MiB config", SIZE >> 20);
        }
    }
}
