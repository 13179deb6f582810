//! Keeps the local registry and the emulated ECR in agreement, as they are one
//! service in AWS:
//! - registry → ECR: each manifest push (a registry notification) becomes an ECR
//!   image with the same tag and the same digest (`PutImage` with `imageDigest`,
//!   since moto derives its own digest otherwise);
//! - ECR → registry: a tag added through ECR `PutImage` (a retag) is put to the
//!   registry when a client first asks for it (see front.rs), so it can be pulled.
//!
//! Runs as `cargo xtask local sync`, started by `local up`.

use std::{collections::HashSet, path::Path};

use anyhow::{Context, Result};
use aws_sdk_ecr::Client as Ecr;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use serde::Deserialize;
use tokio::sync::Mutex;
use xshell::cmd;

use crate::{
    ports::{Ports, RegistryPorts},
    process,
};
use xtask_release::{clients::aws::SdkResultExt, clients::ecr, clients::http, domain::workspace::Workspace};

/// Starts the sync of one account's registry (`account`: `None` for moto's own).
pub fn start(
    ws: &Workspace,
    moto: u16,
    ports: &RegistryPorts,
    region: &str,
    account: Option<&str>,
    log: &Path,
) -> Result<process::Started> {
    let exe = std::env::current_exe().context("cannot find this program's path to start the sync process")?;
    let sh = &ws.sh;
    let (aws, registry, backend, listen) =
        (moto.to_string(), ports.registry.to_string(), ports.registry_backend.to_string(), ports.sync.to_string());
    let account: Vec<&str> = account.map(|a| vec!["--account", a]).unwrap_or_default();
    process::spawn(
        cmd!(
            sh,
            "{exe} local sync --aws-port {aws} --registry-port {registry} --registry-backend-port {backend} --listen-port {listen} --region {region} {account...}"
        ),
        log,
    )
}

pub struct Sync {
    pub ecr: Ecr,
    registry: http::Client,
    registry_url: String,
    /// `repository:tag` pairs known to be in both.
    synced: Mutex<HashSet<String>>,
}

impl Sync {
    /// The sync of the registry of `account` (`None`: moto's own) at the ports of `ports`.
    pub async fn new(ports: &Ports, region: &str, account: Option<&str>) -> Result<Sync> {
        let ecr_client = Ecr::new(&ports.sdk_config_in(region, account).await);
        let auth = ecr::authorization(&ecr_client).await?;
        // The registry itself, behind the front: what the sync writes, ECR already has.
        let registry_url = format!("http://127.0.0.1:{}", ports.registry_backend);
        Ok(Sync {
            ecr: ecr_client,
            registry: http::Client::new().with_credentials(&registry_url, auth.basic_header())?,
            registry_url,
            synced: Mutex::new(HashSet::new()),
        })
    }
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    action: String,
    target: Target,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: Option<String>,
}

impl Sync {
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode, text: String| {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            *response.status_mut() = status;
            response
        };
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok".into()),
            (&Method::POST, "/events") => {
                let body = match req.into_body().collect().await {
                    Ok(body) => body.to_bytes(),
                    Err(err) => return reply(StatusCode::BAD_REQUEST, err.to_string()),
                };
                match self.registry_to_ecr(&body).await {
                    Ok(()) => reply(StatusCode::OK, String::new()),
                    // The registry retries a failed delivery.
                    Err(err) => {
                        eprintln!("sync: registry → ecr: {err:#}");
                        reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
                    }
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "not found".into()),
        }
    }

    async fn registry_to_ecr(&self, body: &[u8]) -> Result<()> {
        let envelope: Envelope = serde_json::from_slice(body).context("a registry event that is not JSON")?;
        for event in envelope.events {
            let target = event.target;
            let Some(tag) = target.tag.filter(|t| !t.is_empty()) else { continue };
            // Other pushes (blobs) are not images; nor are the referrers lists the front keeps.
            if event.action != "push"
                || !ecr::MANIFEST_TYPES.contains(&target.media_type.as_str())
                || crate::referrers::is_list(&tag, &target.media_type)
            {
                continue;
            }
            let key = format!("{}:{tag}", target.repository);
            if self.synced.lock().await.contains(&key) {
                continue;
            }
            let body = self.registry_manifest(&target.repository, &target.digest).await?;
            let manifest = ecr::Manifest { body, media_type: target.media_type.clone(), digest: target.digest.clone() };
            self.record(&target.repository, &tag, &manifest).await?;
        }
        Ok(())
    }

    /// Records `repository:tag` in ECR as the image `manifest` (no-op when it is there), and
    /// starts the scan ECR would run on push. Pushes come through the front, which records
    /// them before they return; registry events catch anything else.
    pub async fn record(&self, repository: &str, tag: &str, manifest: &ecr::Manifest) -> Result<()> {
        let key = format!("{repository}:{tag}");
        let tagged = ecr::put_tag(&self.ecr, repository, manifest, tag).await?;
        if tagged.require(repository, tag, &manifest.digest)? == ecr::Tagged::Added {
            eprintln!("sync: {key} → ECR ({})", manifest.digest);
            let scan_on_push = self
                .ecr
                .describe_repositories()
                .repository_names(repository)
                .send()
                .await
                .sdk_context(|| format!("cannot describe repository `{repository}`"))?
                .repositories()
                .first()
                .is_some_and(|r| r.image_scanning_configuration().is_some_and(|c| c.scan_on_push()));
            // moto does not scan on push by itself; ECR would. A new tag of an image already
            // scanned (a promotion, a retag) meets moto's scan quota per image: its scan stands.
            if scan_on_push {
                let scan = self
                    .ecr
                    .start_image_scan()
                    .repository_name(repository)
                    .image_id(aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).build())
                    .send()
                    .await;
                match scan {
                    Err(err) if err.as_service_error().is_some_and(|e| e.is_limit_exceeded_exception()) => {}
                    other => {
                        other.sdk_context(|| format!("cannot start the scan on push of {key}"))?;
                    }
                }
            }
        }
        self.synced.lock().await.insert(key);
        Ok(())
    }

    /// Records `manifest` in ECR as an untagged image (a referrer, pushed by digest), as ECR
    /// lists one; no-op when it is there.
    pub async fn record_untagged(&self, repository: &str, manifest: &ecr::Manifest) -> Result<()> {
        let put = self
            .ecr
            .put_image()
            .repository_name(repository)
            .image_manifest(&manifest.body)
            .image_manifest_media_type(&manifest.media_type)
            .image_digest(&manifest.digest)
            .send()
            .await;
        match put {
            Err(err) if err.as_service_error().is_some_and(|e| e.is_image_already_exists_exception()) => Ok(()),
            other => {
                other.sdk_context(|| format!("cannot record {repository}@{} in ECR", manifest.digest))?;
                eprintln!("sync: {repository}@{} → ECR (untagged)", manifest.digest);
                Ok(())
            }
        }
    }

    /// A client of the registry itself (behind the front), with the credentials ECR hands out.
    pub fn registry_client(&self) -> http::Client {
        self.registry.clone()
    }

    async fn registry_manifest(&self, repository: &str, reference: &str) -> Result<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.registry_url);
        let accept = ecr::MANIFEST_TYPES.join(", ");
        let response = self.registry.get(&url, &[("accept", &accept)]).await?;
        if !response.status.is_success() {
            anyhow::bail!("GET {url}: {}", response.status);
        }
        String::from_utf8(response.body.to_vec()).context("a manifest that is not UTF-8")
    }

    /// Puts `repository:tag` to the registry from ECR, if ECR has it and the registry does
    /// not: a tag added through ECR's API (`PutImage`) becomes pullable when it is first
    /// asked for. Returns whether the registry has it now.
    pub async fn materialize(&self, repository: &str, tag: &str) -> Result<bool> {
        let key = format!("{repository}:{tag}");
        let Some(_) = ecr::image_by_tag(&self.ecr, repository, tag).await? else { return Ok(false) };
        let manifest = ecr::manifest(&self.ecr, repository, tag).await?;
        let url = format!("{}/v2/{repository}/manifests/{tag}", self.registry_url);
        let put = self
            .registry
            .send(Method::PUT, &url, &[("content-type", &manifest.media_type)], Bytes::from(manifest.body))
            .await?;
        if !put.status.is_success() {
            // Its blobs were never pushed to the registry: nothing to serve, as in ECR.
            eprintln!(
                "sync: ECR {key} cannot be served: PUT {url}: {} {}",
                put.status,
                String::from_utf8_lossy(&put.body)
            );
            return Ok(false);
        }
        eprintln!("sync: ECR {key} → registry ({})", manifest.digest);
        self.synced.lock().await.insert(key);
        Ok(true)
    }
}
