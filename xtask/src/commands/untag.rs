//! `cargo xtask untag`: remove one tag from an image in ECR, never by accident.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{image_ref, stage_args::StageArgs};
use xtask_release::{
    domain::workspace::Workspace,
    support::lock::Lock,
    workflows::untag::{self, Untagged},
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
        untag::check_tag(&tag)?;
        let stage = self.stage.check(ws)?;
        // Not while a deploy of this workspace rolls an image out.
        let _lock = Lock::stage(&ws.target_dir(), &stage.name, "a deploy, gc or untag").await?;
        let ctx = self.stage.open(ws, stage).await?;
        let repository = &image.repository;
        match untag::untag(&ctx, image, &tag, self.delete_image).await? {
            Untagged::Deleted { digest } => eprintln!("removed {repository}:{tag} and with it the image {digest}"),
            Untagged::Removed { digest, left } => eprintln!("removed {repository}:{tag}; {digest} keeps {left}"),
        }
        Ok(ExitCode::SUCCESS)
    }
}
