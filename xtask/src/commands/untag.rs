//! `cargo xtask untag`: remove one tag from an image in ECR, never by accident.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::commands::{image_ref, stage_args::StageArgs};
use xtask_release::{
    clients::ecr, domain::inventory::Inventory, domain::retention, domain::workspace::Workspace, support::exit::Verdict,
};

/// Remove one tag from an image in ECR (BatchDeleteImage).
///
/// Refused (exit 1): a `deployed-` tag (the record of a deployment, which keeps the image
/// from expiring; `deploy` drops it once the image leaves the stage's rollback window); any
/// tag of an image a stage runs or can roll back to (one of the newest `rollback-window`
/// images deployed to a stage); and the image's last tag, since ECR then deletes the image,
/// unless `--delete-image` says that is meant.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The tag to remove: a configured image's name, `:`, and the tag, such as `app:latest`.
    #[arg(value_name = "IMAGE:TAG")]
    tag: String,
    /// Remove the image's last tag, which deletes the image.
    #[arg(long)]
    delete_image: bool,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let (image, tag) = image_ref::parse(ws, &self.tag)?;
        if tag.starts_with("sha256:") {
            bail!("untag removes a tag, not a digest; give IMAGE:TAG (`cargo xtask gc` deletes images)");
        }
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        let repository = &image.repository;
        if retention::parse_deployed(&tag).is_some() {
            bail!(Verdict(format!(
                "refusing to remove {repository}:{tag}: it records a deployment and keeps the image for a rollback; `cargo xtask deploy` drops it when the image leaves the stage's rollback window"
            )));
        }
        let inventory = Inventory::read(&ctx.ecr, repository).await?;
        let Some(at) = inventory.by_tag(&tag) else {
            bail!(Verdict(format!(
                "{repository}:{tag} is not in ECR (stage {}); `cargo xtask images --stage {}` lists the tags",
                stage.name, stage.name
            )));
        };
        let found = &inventory.images[at];
        let window = ws.config.rollback_window;
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
        if found.tags.len() == 1 && !self.delete_image {
            bail!(Verdict(format!(
                "refusing to remove {repository}:{tag}: it is the last tag of {}, and ECR deletes an image with its last tag; pass --delete-image if that is meant",
                found.digest
            )));
        }
        if found.tags.len() == 1 {
            // By digest: what ECR does with a last tag, said explicitly.
            let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&found.digest).build();
            ecr::delete(&ctx.ecr, repository, vec![id]).await?;
            eprintln!("removed {repository}:{tag} and with it the image {}", found.digest);
        } else {
            ecr::delete_tag(&ctx.ecr, repository, &tag).await?;
            eprintln!("removed {repository}:{tag}; {} keeps {}", found.digest, found.tags.len() - 1);
        }
        Ok(ExitCode::SUCCESS)
    }
}
