//! Pushing an image through the daemon, with registry credentials handed over
//! per request (never `docker login`, never a config file).

use anyhow::{Context, Result, bail};
use bollard::{Docker, auth::DockerCredentials, query_parameters::PushImageOptions, query_parameters::TagImageOptions};
use futures_util::StreamExt;
use indicatif::HumanBytes;

use crate::{clients::ecr::RegistryAuth, support::progress::Progress};

/// What a push did.
#[derive(Debug, Default)]
pub struct Pushed {
    pub digest: String,
    /// Layers uploaded, and layers the registry already had.
    pub layers_pushed: usize,
    pub layers_present: usize,
}

/// Tags `local` as `<registry>/<repository>:<tag>` and pushes it. Every item of the
/// push stream is checked: a failed push is an error, never a quiet success.
pub async fn push(
    docker: &Docker,
    local: &str,
    repository: &str,
    tag: &str,
    auth: &RegistryAuth,
    progress: &Progress,
) -> Result<Pushed> {
    let remote = format!("{}/{repository}", auth.host);
    docker
        .tag_image(local, Some(TagImageOptions { repo: Some(remote.clone()), tag: Some(tag.to_string()) }))
        .await
        .with_context(|| format!("cannot tag {local} as {remote}:{tag}"))?;
    let credentials = DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.clone()),
        serveraddress: Some(auth.host.clone()),
        ..Default::default()
    };
    let options = PushImageOptions { tag: Some(tag.to_string()), ..Default::default() };
    let task = progress.task(&format!("push {remote}:{tag}"));
    let mut stream = docker.push_image(&remote, Some(options), Some(credentials));
    let mut pushed = Pushed::default();
    let result: Result<()> = async {
        while let Some(item) = stream.next().await {
            let info = item.map_err(|err| explain(err.to_string(), &auth.host))?;
            if let Some(detail) = info.error_detail {
                return Err(explain(detail.message.unwrap_or_default(), &auth.host));
            }
            let Some(status) = info.status else { continue };
            match status.as_str() {
                "Pushed" => pushed.layers_pushed += 1,
                "Layer already exists" => pushed.layers_present += 1,
                "Pushing" => {
                    if let Some(detail) = info.progress_detail
                        && let (Some(current), Some(total)) = (detail.current, detail.total)
                    {
                        task.detail(format!(
                            "uploading a layer: {} / {}",
                            HumanBytes(current.max(0) as u64),
                            HumanBytes(total.max(0) as u64)
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            if let Some(rest) = status.split("digest: ").nth(1) {
                pushed.digest = rest.split_whitespace().next().unwrap_or_default().to_string();
            }
            task.step(format!(
                "{status} ({} layers pushed, {} already there)",
                pushed.layers_pushed, pushed.layers_present
            ));
        }
        Ok(())
    }
    .await;
    // The registry-qualified name was only needed for the push.
    let _ = docker
        .remove_image(&format!("{remote}:{tag}"), None::<bollard::query_parameters::RemoveImageOptions>, None)
        .await;
    if let Err(err) = result {
        task.abandon();
        return Err(err.context(format!("push of {remote}:{tag} failed")));
    }
    if pushed.digest.is_empty() {
        task.abandon();
        bail!("push of {remote}:{tag} ended without the registry reporting a digest");
    }
    task.finish(format!(
        "pushed {remote}:{tag} ({} layers uploaded, {} already there)",
        pushed.layers_pushed, pushed.layers_present
    ));
    Ok(pushed)
}

/// The registry refused the manifest because the tag names another image in an immutable
/// repository (another job pushed the same tag first).
#[derive(Debug)]
pub struct TagTaken(String);

impl std::fmt::Display for TagTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; the tag already exists in an immutable repository", self.0)
    }
}

impl std::error::Error for TagTaken {}

/// A push error with what to do about it.
fn explain(message: String, host: &str) -> anyhow::Error {
    let hint = if message.contains("no basic auth credentials")
        || message.contains("unauthorized")
        || message.contains("authentication required")
        || message.contains("denied")
    {
        "the registry rejected the credentials; ECR tokens last 12 hours, so check the profile's permissions (ecr:GetAuthorizationToken, ecr:InitiateLayerUpload, ecr:PutImage)"
    } else if message.contains("connection refused") || message.contains("no such host") || message.contains("timeout")
    {
        "the registry cannot be reached from the Docker daemon; check the network (for the local stage: `cargo xtask local status`)"
    } else if message.contains("tag invalid") || message.contains("already exists") || message.contains("immutable") {
        return anyhow::Error::new(TagTaken(format!("{message} (registry {host})")));
    } else {
        "see the registry's message"
    };
    anyhow::anyhow!("{message} (registry {host}); {hint}")
}
