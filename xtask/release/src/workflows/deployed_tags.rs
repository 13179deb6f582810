//! The `deployed-<stage>.<UTC time>` tags: what `deploy` adds to each image it deployed, so
//! the lifecycle policy's rule for the stage keeps it (see `retention`). The tags stay on the
//! last `rollback-window` images deployed to the stage only: the rule, whose count is the
//! window, then never has more images than it keeps, whatever order they were pushed in.

use anyhow::{Context, Result};

use crate::{
    clients::ecr::{self, Tagged},
    domain::{
        channel::Channel,
        retention::{self, Facts},
    },
    stage::StageContext,
};

/// Adds `deployed-<stage>.<now>` to the image `tag` names in each configured image's
/// repository of `channel` (where the deploy takes the images from). Before, the images
/// that leave the rollback window lose the stage's deployed tags; after, each image keeps
/// only its newest one.
pub async fn record(ctx: &StageContext<'_>, tag: &str, channel: Channel) -> Result<()> {
    let config = &ctx.ws.config;
    let stage = &ctx.stage.name;
    let window = config.rollback_window as usize;
    for image in &config.images {
        let repository = &channel.repository(image);
        let manifest = ecr::manifest(&ctx.ecr, repository, tag).await?;
        // First make room (the window less this image), then tag: an interruption between
        // the two leaves fewer deployed images than the rule keeps, never more.
        prune(&ctx.ecr, repository, stage, window.saturating_sub(1), Some(&manifest.digest)).await?;
        // Another deploy of the stage in the same second took this second's tag: the next one.
        let mut attempts = 0;
        let deployed = loop {
            let deployed = retention::deployed_tag(stage, &retention::timestamp_now());
            match ecr::put_tag(&ctx.ecr, repository, &manifest, &deployed).await? {
                Tagged::Added | Tagged::AlreadyThere => break deployed,
                Tagged::Taken(_) if attempts < 3 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
                }
                taken => {
                    taken.require(repository, &deployed, &manifest.digest)?;
                }
            }
        };
        eprintln!("{}: tagged {repository}@{} as {deployed}", image.name, manifest.digest);
        prune(&ctx.ecr, repository, stage, window, None).await?;
    }
    Ok(())
}

/// Removes the stage's deployed tags that `retention::stale_deployed_tags` names.
async fn prune(
    client: &aws_sdk_ecr::Client,
    repository: &str,
    stage: &str,
    keep: usize,
    except: Option<&str>,
) -> Result<()> {
    let details = ecr::images(client, repository).await?;
    let tags: Vec<Vec<String>> = details.iter().map(|d| d.image_tags().to_vec()).collect();
    let facts: Vec<Facts> = tags.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
    let except = except.and_then(|digest| details.iter().position(|d| d.image_digest() == Some(digest)));
    let stale = retention::stale_deployed_tags(&facts, stage, keep, except);
    if stale.is_empty() {
        return Ok(());
    }
    ecr::delete_tags(client, repository, &stale)
        .await
        .with_context(|| format!("cannot drop the deployed tags of stage `{stage}` that are no longer needed"))?;
    eprintln!("{repository}: dropped {}", stale.join(", "));
    Ok(())
}
