//! The `deployed-<stage>-<UTC time>` tags: what `deploy` adds to each image it deployed, so
//! the lifecycle policy's rule for the stage keeps it (see `retention`). The tags stay on the
//! last `rollback-window` images deployed to the stage only: the rule, whose count is the
//! window, then never has more images than it keeps, whatever order they were pushed in.

use anyhow::{Context, Result};
use aws_sdk_ecr::types::ImageIdentifier;

use crate::{
    ecr::{self, Tagged},
    retention::{self, Facts},
    stage::StageContext,
};

/// Adds `deployed-<stage>-<now>` to the image `tag` names in each configured repository,
/// after dropping the stage's deployed tags from images that leave the rollback window.
pub async fn record(ctx: &StageContext<'_>, tag: &str) -> Result<()> {
    let config = &ctx.ws.config;
    let stage = &ctx.stage.name;
    for image in &config.images {
        let manifest = ecr::manifest(&ctx.ecr, &image.repository, tag).await?;
        // First make room (the window less this image), then tag: an interruption between
        // the two leaves fewer deployed images than the rule keeps, never more.
        let keep = config.rollback_window.saturating_sub(1);
        prune(&ctx.ecr, &image.repository, stage, keep, &manifest.digest).await?;
        // Another deploy of the stage in the same second took this second's tag: the next one.
        let mut attempts = 0;
        let deployed = loop {
            let deployed = retention::deployed_tag(stage, &retention::timestamp_now());
            match ecr::put_tag(&ctx.ecr, &image.repository, &manifest, &deployed).await? {
                Tagged::Added | Tagged::AlreadyThere => break deployed,
                Tagged::Taken(_) if attempts < 3 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
                }
                taken => {
                    taken.require(&image.repository, &deployed, &manifest.digest)?;
                }
            }
        };
        eprintln!("{}: tagged {}@{} as {deployed}", image.name, image.repository, manifest.digest);
    }
    Ok(())
}

/// Removes stage `stage`'s deployed tags from every image deployed to it but the newest
/// `keep` (and `except`). An image whose only tags are those keeps them: removing them
/// would delete it.
async fn prune(client: &aws_sdk_ecr::Client, repository: &str, stage: &str, keep: u32, except: &str) -> Result<()> {
    let details = ecr::images(client, repository).await?;
    let tags: Vec<Vec<String>> = details.iter().map(|d| d.image_tags().to_vec()).collect();
    let facts: Vec<Facts> = tags.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
    let deployments = retention::deployments(&facts);
    let Some(list) = deployments.get(stage) else { return Ok(()) };
    let prefix = retention::deployed_prefix(stage);
    let mut drop = vec![];
    for &(i, _) in list.iter().filter(|(i, _)| details[*i].image_digest() != Some(except)).skip(keep as usize) {
        let (stage_tags, others): (Vec<&String>, Vec<&String>) =
            tags[i].iter().partition(|t| retention::parse_deployed(t).is_some_and(|(s, _)| s == stage));
        debug_assert!(stage_tags.iter().all(|t| t.starts_with(&prefix)));
        if others.is_empty() {
            eprintln!(
                "note: {repository}@{} has no tag but its deployed ones; it keeps them",
                details[i].image_digest().unwrap_or_default()
            );
            continue;
        }
        drop.extend(stage_tags.into_iter().map(|t| ImageIdentifier::builder().image_tag(t).build()));
    }
    if drop.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = drop.iter().filter_map(|id| id.image_tag().map(str::to_owned)).collect();
    ecr::delete(client, repository, drop)
        .await
        .with_context(|| format!("cannot drop deployed tags that left the rollback window of stage `{stage}`"))?;
    eprintln!("{repository}: left the rollback window of stage {stage}: {}", names.join(", "));
    Ok(())
}
