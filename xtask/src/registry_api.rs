//! The registry's HTTP API (OCI distribution), for what ECR's API does not say:
//! an image's config (labels, os, architecture).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{ecr, http};

pub struct Registry {
    client: http::Client,
    base: String,
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
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
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

    /// GET with the registry's credentials; a redirect (ECR sends blobs from S3) is
    /// followed without them.
    async fn get(&self, path: &str) -> Result<bytes::Bytes> {
        let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
        let url = format!("{}{path}", self.base);
        let mut response = self.client.get(&url, &[("accept", accept)]).await?;
        if response.status.is_redirection() {
            let location = response
                .headers
                .get("location")
                .and_then(|l| l.to_str().ok())
                .context("a redirect without a location")?
                .to_string();
            response = self.client.anonymous().get(&location, &[]).await?;
        }
        if !response.status.is_success() {
            bail!("GET {url}: {}", response.status);
        }
        Ok(response.body)
    }
}
