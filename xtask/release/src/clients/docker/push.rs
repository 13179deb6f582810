//! Pushing an image through the daemon, with registry credentials handed over
//! per request (never `docker login`, never a config file).

use anyhow::{Context, Result, bail};
use bollard::{
    Docker,
    auth::DockerCredentials,
    models::PushImageInfo,
    query_parameters::{PushImageOptions, TagImageOptions},
};
use futures_util::StreamExt;
use indicatif::HumanBytes;

use crate::{
    clients::ecr::RegistryAuth,
    support::progress::{Progress, Task},
};

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
    let result = follow(&mut stream, &auth.host, &task).await;
    // The registry-qualified name was only needed for the push.
    let _ = docker
        .remove_image(&format!("{remote}:{tag}"), None::<bollard::query_parameters::RemoveImageOptions>, None)
        .await;
    let pushed = match result {
        Ok(pushed) => pushed,
        Err(err) => {
            task.abandon();
            return Err(err.context(format!("push of {remote}:{tag} failed")));
        }
    };
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

/// Reads a push's progress stream to its end: counts the layers, takes the digest the
/// registry reported for the manifest, and fails on any error the daemon reports.
///
/// Once the registry has reported the manifest's digest, the image is in the registry: a
/// stream that breaks after that (a daemon that closes the connection in the middle of
/// its last, informational message: "bytes remaining on stream") ends the reading, not the
/// push. The caller proves the tag names that digest in ECR either way.
async fn follow<S>(stream: &mut S, host: &str, task: &Task) -> Result<Pushed>
where
    S: futures_util::Stream<Item = Result<PushImageInfo, bollard::errors::Error>> + Unpin,
{
    let mut pushed = Pushed::default();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(_) if !pushed.digest.is_empty() => break,
            Err(err) => return Err(explain(err.to_string(), host)),
        };
        if let Some(detail) = info.error_detail {
            return Err(explain(detail.message.unwrap_or_default(), host));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(text: &str) -> Result<PushImageInfo, bollard::errors::Error> {
        Ok(PushImageInfo { status: Some(text.to_string()), ..Default::default() })
    }

    fn broken() -> Result<PushImageInfo, bollard::errors::Error> {
        Err(bollard::errors::Error::IOError { err: std::io::Error::other("bytes remaining on stream") })
    }

    async fn read(items: Vec<Result<PushImageInfo, bollard::errors::Error>>) -> Result<Pushed> {
        let task = Progress::detect().task("push");
        follow(&mut futures_util::stream::iter(items), "registry.test", &task).await
    }

    const DIGEST: &str = "sha256:d8c434830afa6ad627867a710c77c289c2c19bf60c7cc499fd0f48a632ae6f29";

    #[tokio::test]
    async fn a_stream_that_breaks_after_the_registry_named_the_digest_is_a_push() {
        let pushed =
            read(vec![status("Pushed"), status(&format!("abc: digest: {DIGEST} size: 529")), broken()]).await.unwrap();
        assert_eq!((pushed.digest.as_str(), pushed.layers_pushed), (DIGEST, 1));
    }

    #[tokio::test]
    async fn a_stream_that_breaks_before_the_digest_is_a_failed_push() {
        let err = read(vec![status("Pushed"), broken()]).await.unwrap_err();
        assert!(format!("{err:#}").contains("bytes remaining on stream (registry registry.test)"), "{err:#}");
    }

    #[tokio::test]
    async fn an_error_the_daemon_reports_fails_even_after_a_digest() {
        let refused = PushImageInfo {
            error_detail: Some(bollard::models::ErrorDetail {
                message: Some("tag invalid: the tag already exists".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = read(vec![status(&format!("abc: digest: {DIGEST} size: 529")), Ok(refused)]).await.unwrap_err();
        assert!(err.is::<TagTaken>(), "{err:#}");
    }
}
