//! Amazon ECR: repositories, registry credentials, images by tag, retagging, scanning.

use anyhow::{Context, Result, bail};
use aws_sdk_ecr::{
    Client,
    types::{self, ImageDetail, ImageFailureCode, ImageIdentifier, Repository},
};
use base64::Engine;

use crate::clients::aws::SdkResultExt;
use crate::domain::scan::{Frequency, RegistryScanning, Rule, Scan, ScanType};

/// Credentials for the registry, good for a few hours. Never printed or written to disk.
#[derive(Clone)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// `host[:port]` of the registry, without scheme.
    pub host: String,
    /// Spoken over plain http (a registry on this machine); https otherwise.
    pub plain_http: bool,
}

impl RegistryAuth {
    /// `scheme://host[:port]` of the registry's HTTP API. Credentials go over plain http to
    /// a loopback address only, never across a network.
    pub fn base_url(&self) -> Result<String> {
        if !self.plain_http {
            return Ok(format!("https://{}", self.host));
        }
        let name = match self.host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => self.host.as_str(),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let loopback = name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            bail!(
                "refusing to send registry credentials over plain http to {}: only a loopback address may be spoken to without TLS",
                self.host
            );
        }
        Ok(format!("http://{}", self.host))
    }

    /// The `Authorization` header value for the registry's HTTP API.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth").field("username", &self.username).field("host", &self.host).finish()
    }
}

pub async fn authorization(client: &Client) -> Result<RegistryAuth> {
    let out = client.get_authorization_token().send().await.sdk_context(|| "cannot get an ECR authorization token")?;
    let data = out.authorization_data().first().context("ECR returned no authorization data")?;
    let token = data.authorization_token().context("ECR returned no authorization token")?;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(token).context("the ECR authorization token is not base64")?;
    let decoded = String::from_utf8(decoded).context("the ECR authorization token is not text")?;
    let (username, password) =
        decoded.split_once(':').context("the ECR authorization token has no `user:password` form")?;
    let endpoint = data.proxy_endpoint().context("ECR returned no registry endpoint")?;
    let host = endpoint.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    Ok(RegistryAuth {
        username: username.to_string(),
        password: password.to_string(),
        host: host.to_string(),
        plain_http: false,
    })
}

/// Does the repository exist?
pub async fn repository_exists(client: &Client, name: &str) -> Result<bool> {
    match client.describe_repositories().repository_names(name).send().await {
        Ok(out) => Ok(!out.repositories().is_empty()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => Ok(false),
        Err(err) => Err(err).sdk_context(|| format!("cannot describe ECR repository `{name}`")),
    }
}

/// The repository, or an error that says how to create it.
pub async fn repository(client: &Client, name: &str, create_hint: &str) -> Result<Repository> {
    match client.describe_repositories().repository_names(name).send().await {
        Ok(out) => {
            out.repositories().first().cloned().with_context(|| format!("ECR did not describe repository `{name}`"))
        }
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {
            Err(no_repository(name, create_hint))
        }
        Err(err) => Err(err).sdk_context(|| format!("cannot describe ECR repository `{name}`")),
    }
}

/// The image tagged `tag`, if there is one.
pub async fn image_by_tag(client: &Client, repository: &str, tag: &str) -> Result<Option<ImageDetail>> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    image_by(client, repository, id, None, || format!("cannot look up tag {tag} in ECR repository `{repository}`"))
        .await
}

/// The image `id` names, or `None` when ECR has no such image; `what` is the error's context.
async fn image_by(
    client: &Client,
    repository: &str,
    id: ImageIdentifier,
    create_hint: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<Option<ImageDetail>> {
    match client.describe_images().repository_name(repository).image_ids(id).send().await {
        Ok(out) => Ok(out.image_details().first().cloned()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_image_not_found_exception()) => Ok(None),
        Err(err)
            if create_hint.is_some()
                && err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) =>
        {
            Err(no_repository(repository, create_hint.unwrap_or_default()))
        }
        Err(err) => Err(err).sdk_context(what),
    }
}

/// The image tagged `tag` in `repository`, if there is one; an error that says how to
/// create the repository when it does not exist. One call (DescribeImages).
pub async fn image_in(client: &Client, repository: &str, tag: &str, create_hint: &str) -> Result<Option<ImageDetail>> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    let what = || format!("cannot look up tag {tag} in ECR repository `{repository}`");
    image_by(client, repository, id, Some(create_hint), what).await
}

/// The error for a repository that does not exist, with how to create it.
fn no_repository(name: &str, create_hint: &str) -> anyhow::Error {
    anyhow::anyhow!("ECR repository `{name}` does not exist; create it with `{create_hint}`")
}

/// The image with `digest`, or `None` when ECR has no such image.
pub async fn image_by_digest(client: &Client, repository: &str, digest: &str) -> Result<Option<ImageDetail>> {
    let id = ImageIdentifier::builder().image_digest(digest).build();
    image_by(client, repository, id, None, || format!("cannot look up image {digest} in ECR repository `{repository}`"))
        .await
}

/// Every media type an image's manifest may have: a single image (Docker, OCI) or an
/// index of them (a Docker manifest list, an OCI index).
pub const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// A manifest as ECR stores it.
pub struct Manifest {
    pub body: String,
    pub media_type: String,
    pub digest: String,
}

/// The manifest of the image `tag` names.
pub async fn manifest(client: &Client, repository: &str, tag: &str) -> Result<Manifest> {
    manifest_of(client, repository, ImageIdentifier::builder().image_tag(tag).build(), tag).await
}

/// The manifest of the image with `digest`.
pub async fn manifest_by_digest(client: &Client, repository: &str, digest: &str) -> Result<Manifest> {
    manifest_of(client, repository, ImageIdentifier::builder().image_digest(digest).build(), digest).await
}

async fn manifest_of(client: &Client, repository: &str, id: ImageIdentifier, tag: &str) -> Result<Manifest> {
    let out = client
        .batch_get_image()
        .repository_name(repository)
        .image_ids(id)
        .set_accepted_media_types(Some(MANIFEST_TYPES.map(String::from).to_vec()))
        .send()
        .await
        .sdk_context(|| format!("cannot read the manifest of {repository}:{tag}"))?;
    let image = out.images().first().with_context(|| format!("ECR has no image {repository}:{tag}"))?;
    let body = image.image_manifest().context("ECR returned an image without its manifest")?.to_string();
    let media_type = match image.image_manifest_media_type() {
        Some(t) => t.to_string(),
        None => media_type_of(&body)?,
    };
    let digest = image
        .image_id()
        .and_then(|id| id.image_digest())
        .context("ECR returned an image without its digest")?
        .to_string();
    Ok(Manifest { body, media_type, digest })
}

/// Every image of the repository (`DescribeImages`, every page).
pub async fn images(client: &Client, repository: &str) -> Result<Vec<ImageDetail>> {
    let mut images = vec![];
    let mut token = None;
    loop {
        let out = client
            .describe_images()
            .repository_name(repository)
            .set_next_token(token)
            .send()
            .await
            .sdk_context(|| format!("cannot list the images of ECR repository `{repository}`"))?;
        images.extend(out.image_details().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(images);
        }
    }
}

/// Removes `ids` (tags or digests) with `BatchDeleteImage`. Removing an image's last tag
/// deletes the image: callers check that first.
pub async fn delete(client: &Client, repository: &str, ids: Vec<ImageIdentifier>) -> Result<()> {
    for chunk in ids.chunks(100) {
        let out = client
            .batch_delete_image()
            .repository_name(repository)
            .set_image_ids(Some(chunk.to_vec()))
            .send()
            .await
            .sdk_context(|| format!("cannot delete images of ECR repository `{repository}`"))?;
        if let Some(failure) = out.failures().first() {
            let id = failure.image_id();
            let what = id.and_then(|i| i.image_tag().or(i.image_digest())).unwrap_or("an image");
            bail!(
                "ECR did not delete {what} from `{repository}`: {} ({})",
                failure.failure_reason().unwrap_or("no reason given"),
                failure.failure_code().map(|c| c.as_str()).unwrap_or("no code")
            );
        }
    }
    Ok(())
}

/// Removes one tag (the image keeps its other tags).
pub async fn delete_tag(client: &Client, repository: &str, tag: &str) -> Result<()> {
    delete_tags(client, repository, &[tag.to_string()]).await
}

/// Removes `tags`, each from whichever image it names.
pub async fn delete_tags(client: &Client, repository: &str, tags: &[String]) -> Result<()> {
    delete(client, repository, tags.iter().map(|tag| ImageIdentifier::builder().image_tag(tag).build()).collect()).await
}

/// Deletes the image `digest` by removing exactly `tags` (by digest when it has none): a
/// tag added since they were read keeps the image, where a delete by digest would drop it
/// with every tag. `Ok(false)` when ECR no longer has the image or one of the tags on it.
pub async fn delete_by_tags(client: &Client, repository: &str, digest: &str, tags: &[String]) -> Result<bool> {
    let ids: Vec<ImageIdentifier> = if tags.is_empty() {
        vec![ImageIdentifier::builder().image_digest(digest).build()]
    } else {
        tags.iter().map(|tag| ImageIdentifier::builder().image_digest(digest).image_tag(tag).build()).collect()
    };
    let out = client
        .batch_delete_image()
        .repository_name(repository)
        .set_image_ids(Some(ids))
        .send()
        .await
        .sdk_context(|| format!("cannot delete image {digest} of ECR repository `{repository}`"))?;
    let mut gone = true;
    for failure in out.failures() {
        match failure.failure_code() {
            Some(ImageFailureCode::ImageNotFound | ImageFailureCode::ImageTagDoesNotMatchDigest) => gone = false,
            code => bail!(
                "ECR did not delete {digest} from `{repository}`: {} ({})",
                failure.failure_reason().unwrap_or("no reason given"),
                code.map(|c| c.as_str()).unwrap_or("no code")
            ),
        }
    }
    Ok(gone)
}

/// The registry's scanning configuration (`GetRegistryScanningConfiguration`): its scan
/// type and rules. A rule frequency or filter type the API may add later counts as scanning
/// nothing; a missing scan type is the default, `BASIC`.
pub async fn registry_scanning(client: &Client) -> Result<RegistryScanning> {
    let out = client
        .get_registry_scanning_configuration()
        .send()
        .await
        .sdk_context(|| "cannot read the registry's scanning configuration")?;
    let Some(configuration) = out.scanning_configuration() else {
        return Ok(RegistryScanning { scan_type: ScanType::Basic, rules: vec![] });
    };
    let scan_type = match configuration.scan_type() {
        None | Some(types::ScanType::Basic) => ScanType::Basic,
        Some(types::ScanType::Enhanced) => ScanType::Enhanced,
        Some(other) => bail!("the registry's scan type `{}` is not BASIC or ENHANCED", other.as_str()),
    };
    let rules = configuration
        .rules()
        .iter()
        .map(|rule| Rule {
            frequency: match rule.scan_frequency() {
                types::ScanFrequency::ScanOnPush => Frequency::ScanOnPush,
                types::ScanFrequency::ContinuousScan => Frequency::ContinuousScan,
                _ => Frequency::Manual,
            },
            filters: rule
                .repository_filters()
                .iter()
                .filter(|f| *f.filter_type() == types::ScanningRepositoryFilterType::Wildcard)
                .map(|f| f.filter().to_string())
                .collect(),
        })
        .collect();
    Ok(RegistryScanning { scan_type, rules })
}

/// The scan result of the image `repository:tag` (`DescribeImageScanFindings`, first page:
/// the severity counts cover every finding); `None` when no scan has started.
pub async fn scan_findings(client: &Client, repository: &str, tag: &str) -> Result<Option<Scan>> {
    let result = client
        .describe_image_scan_findings()
        .repository_name(repository)
        .image_id(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await;
    let out = match result {
        Ok(out) => out,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_scan_not_found_exception()) => return Ok(None),
        Err(err) => return Err(err).sdk_context(|| format!("cannot read the scan findings of {repository}:{tag}")),
    };
    let status = out.image_scan_status();
    let findings = out.image_scan_findings();
    Ok(Some(Scan {
        status: status.and_then(|s| s.status()).map(|s| s.as_str().to_string()),
        description: status.and_then(|s| s.description()).unwrap_or_default().to_string(),
        counts: findings
            .and_then(|f| f.finding_severity_counts())
            .into_iter()
            .flatten()
            .map(|(severity, count)| (severity.as_str().to_string(), *count))
            .collect(),
        completed: findings.is_some_and(|f| f.image_scan_completed_at().is_some()),
        enhanced_findings: findings.map_or(0, |f| f.enhanced_findings().len()),
    }))
}

/// Is this manifest media type an index (a manifest list)?
pub fn is_index(media_type: &str) -> bool {
    media_type.contains("manifest.list") || media_type.contains("image.index")
}

/// The media type of a manifest: its `mediaType` field, or, where OCI lets it leave that
/// out, what its shape says: an index lists `manifests`, an image has a `config`.
pub fn media_type_of(manifest: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).context("the manifest is not JSON")?;
    if let Some(media_type) = value["mediaType"].as_str() {
        return Ok(media_type.to_owned());
    }
    if value["manifests"].is_array() {
        return Ok("application/vnd.oci.image.index.v1+json".to_owned());
    }
    if value["config"].is_object() {
        return Ok("application/vnd.oci.image.manifest.v1+json".to_owned());
    }
    bail!("the manifest names no mediaType and is neither an index (`manifests`) nor an image (`config`)")
}

/// What adding a tag did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tagged {
    Added,
    /// The tag already named this very image (another job got there first).
    AlreadyThere,
    /// The tag names another image (this digest); an immutable repository keeps it there.
    Taken(String),
}

impl Tagged {
    /// `Taken` as the error it is where the tag must name this image.
    pub fn require(self, repository: &str, tag: &str, digest: &str) -> Result<Tagged> {
        if let Tagged::Taken(other) = &self {
            bail!(
                "tag {tag} in `{repository}` already names another image ({other}, not {digest}); the repository's tags are immutable, so a commit's tag can never be moved: find out which job pushed it"
            );
        }
        Ok(self)
    }
}

/// Adds `tag` to the image whose manifest is `manifest` (`BatchGetImage` + `PutImage`).
/// Never removes a tag.
pub async fn put_tag(client: &Client, repository: &str, manifest: &Manifest, tag: &str) -> Result<Tagged> {
    let result = client
        .put_image()
        .repository_name(repository)
        .image_manifest(&manifest.body)
        .image_manifest_media_type(&manifest.media_type)
        .image_digest(&manifest.digest)
        .image_tag(tag)
        .send()
        .await;
    let Err(err) = result else { return Ok(Tagged::Added) };
    let exists = err
        .as_service_error()
        .is_some_and(|e| e.is_image_already_exists_exception() || e.is_image_tag_already_exists_exception());
    if !exists {
        return Err(err).sdk_context(|| format!("cannot tag {repository}@{} as {tag}", manifest.digest));
    }
    let current = image_by_tag(client, repository, tag).await?;
    let digest = current.as_ref().and_then(|d| d.image_digest()).unwrap_or("");
    Ok(if digest == manifest.digest { Tagged::AlreadyThere } else { Tagged::Taken(digest.to_string()) })
}

#[cfg(test)]
mod tests {
    use super::RegistryAuth;

    #[test]
    fn plain_http_only_to_loopback() {
        let auth = |host: &str, plain_http| RegistryAuth {
            username: "AWS".into(),
            password: "secret".into(),
            host: host.into(),
            plain_http,
        };
        assert_eq!(auth("127.0.0.1:5000", true).base_url().unwrap(), "http://127.0.0.1:5000");
        assert_eq!(auth("localhost:5000", true).base_url().unwrap(), "http://localhost:5000");
        assert_eq!(auth("[::1]:5000", true).base_url().unwrap(), "http://[::1]:5000");
        assert_eq!(
            auth("1.dkr.ecr.eu-west-1.amazonaws.com", false).base_url().unwrap(),
            "https://1.dkr.ecr.eu-west-1.amazonaws.com"
        );
        for host in ["localhost.example.com", "localhost.example.com:5000", "127.0.0.1.nip.io", "10.0.0.1:5000"] {
            let err = auth(host, true).base_url().unwrap_err().to_string();
            assert!(err.contains("refusing to send registry credentials over plain http"), "{host}: {err}");
        }
    }
}
