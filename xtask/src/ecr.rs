//! Amazon ECR: repositories, registry credentials, images by tag, retagging.

use anyhow::{Context, Result, bail};
use aws_sdk_ecr::{
    Client,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{ImageDetail, ImageIdentifier, Repository},
};
use base64::Engine;

/// Credentials for the registry, good for a few hours. Never printed or written to disk.
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// `host[:port]` of the registry, without scheme.
    pub host: String,
}

impl RegistryAuth {
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

/// An SDK error as one line: the service's code and message, or the transport failure.
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("no message"))
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

pub async fn authorization(client: &Client) -> Result<RegistryAuth> {
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .context("cannot get an ECR authorization token")?;
    let data = out
        .authorization_data()
        .first()
        .context("ECR returned no authorization data")?;
    let token = data.authorization_token().context("ECR returned no authorization token")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .context("the ECR authorization token is not base64")?;
    let decoded = String::from_utf8(decoded).context("the ECR authorization token is not text")?;
    let (username, password) = decoded.split_once(':').context("the ECR authorization token has no `user:password` form")?;
    let endpoint = data.proxy_endpoint().context("ECR returned no registry endpoint")?;
    let host = endpoint.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    Ok(RegistryAuth { username: username.to_string(), password: password.to_string(), host: host.to_string() })
}

/// Does the repository exist?
pub async fn repository_exists(client: &Client, name: &str) -> Result<bool> {
    match client.describe_repositories().repository_names(name).send().await {
        Ok(out) => Ok(!out.repositories().is_empty()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => Ok(false),
        Err(err) => Err(anyhow::anyhow!(describe(&err))).with_context(|| format!("cannot describe ECR repository `{name}`")),
    }
}

/// The repository, or an error that says how to create it.
pub async fn repository(client: &Client, name: &str, create_hint: &str) -> Result<Repository> {
    match client.describe_repositories().repository_names(name).send().await {
        Ok(out) => out
            .repositories()
            .first()
            .cloned()
            .with_context(|| format!("ECR did not describe repository `{name}`")),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {
            bail!("ECR repository `{name}` does not exist; create it with `{create_hint}`")
        }
        Err(err) => Err(anyhow::anyhow!(describe(&err))).with_context(|| format!("cannot describe ECR repository `{name}`")),
    }
}

/// The image tagged `tag`, if there is one.
pub async fn image_by_tag(client: &Client, repository: &str, tag: &str) -> Result<Option<ImageDetail>> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    match client.describe_images().repository_name(repository).image_ids(id).send().await {
        Ok(out) => Ok(out.image_details().first().cloned()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_image_not_found_exception()) => Ok(None),
        Err(err) => Err(anyhow::anyhow!(describe(&err)))
            .with_context(|| format!("cannot look up tag {tag} in ECR repository `{repository}`")),
    }
}

/// A manifest as ECR stores it.
pub struct Manifest {
    pub body: String,
    pub media_type: String,
    pub digest: String,
}

/// The manifest of the image `tag` names.
pub async fn manifest(client: &Client, repository: &str, tag: &str) -> Result<Manifest> {
    let id = ImageIdentifier::builder().image_tag(tag).build();
    let out = client
        .batch_get_image()
        .repository_name(repository)
        .image_ids(id)
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.docker.distribution.manifest.list.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .accepted_media_types("application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(&e)))
        .with_context(|| format!("cannot read the manifest of {repository}:{tag}"))?;
    let image = out
        .images()
        .first()
        .with_context(|| format!("ECR has no image {repository}:{tag}"))?;
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

/// The `mediaType` field of a manifest.
pub fn media_type_of(manifest: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).context("the manifest is not JSON")?;
    value["mediaType"]
        .as_str()
        .map(str::to_owned)
        .context("the manifest names no mediaType")
}

/// What adding a tag did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tagged {
    Added,
    /// The tag already named this very image (another job got there first).
    AlreadyThere,
}

/// Adds `tag` to the image whose manifest is `manifest` (`BatchGetImage` + `PutImage`).
/// Never removes a tag. On an immutable repository a tag that names another image is an error.
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
    match result {
        Ok(_) => Ok(Tagged::Added),
        Err(err) => {
            let exists = err.as_service_error().is_some_and(|e| {
                e.is_image_already_exists_exception() || e.is_image_tag_already_exists_exception()
            });
            if !exists {
                return Err(anyhow::anyhow!(describe(&err)))
                    .with_context(|| format!("cannot tag {repository}@{} as {tag}", manifest.digest));
            }
            let current = image_by_tag(client, repository, tag).await?;
            let digest = current.as_ref().and_then(|d| d.image_digest()).unwrap_or("");
            if digest == manifest.digest {
                Ok(Tagged::AlreadyThere)
            } else {
                bail!(
                    "tag {tag} in `{repository}` already names another image ({digest}, not {}); the repository's tags are immutable, so a commit's tag can never be moved: find out which job pushed it",
                    manifest.digest
                )
            }
        }
    }
}
