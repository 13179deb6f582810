//! Remove one tag from an image in ECR, never by accident: never a `deployed-` tag (it keeps
//! an image for a rollback), never a tag of an image a stage runs or can roll back to, and
//! an image's last tag (which deletes the image) only when asked.

use anyhow::{Result, bail};

use crate::{
    clients::ecr,
    domain::{config::Image, inventory::Inventory, retention},
    stage::StageContext,
    support::exit::Verdict,
};

/// What `untag` did.
pub enum Untagged {
    /// The tag is gone; the image keeps `left` other tags.
    Removed { digest: String, left: usize },
    /// It was the image's last tag: the image is deleted.
    Deleted { digest: String },
}

/// Refuses what is not a tag, before any stage is opened.
pub fn check_tag(tag: &str) -> Result<()> {
    if tag.starts_with("sha256:") {
        bail!("untag removes a tag, not a digest; give IMAGE:TAG (`cargo xtask gc` deletes images)");
    }
    Ok(())
}

/// Removes `tag` of `image`'s repository; a refusal is a [`Verdict`]. `delete_image` allows
/// removing an image's last tag, which deletes the image.
pub async fn untag(ctx: &StageContext<'_>, image: &Image, tag: &str, delete_image: bool) -> Result<Untagged> {
    check_tag(tag)?;
    let (stage, repository) = (&ctx.stage.name, &image.repository);
    if retention::parse_deployed(tag).is_some() {
        bail!(Verdict(format!(
            "refusing to remove {repository}:{tag}: it records a deployment and keeps the image for a rollback; `cargo xtask deploy` drops it when the image leaves the stage's rollback window"
        )));
    }
    let inventory = Inventory::read(&ctx.ecr, repository).await?;
    let Some(at) = inventory.by_tag(tag) else {
        bail!(Verdict(format!(
            "{repository}:{tag} is not in ECR (stage {stage}); `cargo xtask images --stage {stage}` lists the tags"
        )));
    };
    let found = &inventory.images[at];
    let window = ctx.ws.config.rollback_window;
    if inventory.protected(window).contains(&at) {
        let uses: Vec<String> = inventory.stage_uses(window)[at]
            .iter()
            .filter(|u| u.in_rollback_window)
            .map(|u| format!("stage {} {} it (deployed {})", u.stage, u.status, u.since))
            .collect();
        bail!(Verdict(format!(
            "refusing to remove {repository}:{tag}: {} is deployed ({}), so its tags stay while it is in the rollback window",
            found.digest,
            uses.join("; ")
        )));
    }
    if found.tags.len() == 1 && !delete_image {
        bail!(Verdict(format!(
            "refusing to remove {repository}:{tag}: it is the last tag of {}, and ECR deletes an image with its last tag; pass --delete-image if that is meant",
            found.digest
        )));
    }
    let digest = found.digest.clone();
    if found.tags.len() == 1 {
        // By the tag, never by the digest: a tag added since the listing (a retag, a deploy)
        // keeps the image.
        if !ecr::delete_by_tags(&ctx.ecr, repository, &digest, std::slice::from_ref(&found.tags[0])).await? {
            bail!(Verdict(format!("{repository}:{tag} no longer names {digest}; nothing was removed")));
        }
        return Ok(match ecr::image_by_digest(&ctx.ecr, repository, &digest).await? {
            None => Untagged::Deleted { digest },
            Some(kept) => Untagged::Removed { digest, left: kept.image_tags().len() },
        });
    }
    ecr::delete_tag(&ctx.ecr, repository, tag).await?;
    Ok(Untagged::Removed { digest, left: found.tags.len() - 1 })
}
