//! `cargo xtask retag`: add a tag to an image already in ECR.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{image_ref, stage_args::StageArgs};
use xtask_release::{domain::workspace::Workspace, workflows::retag};

/// Add a tag to an image already in ECR, without pulling or pushing it: ECR BatchGetImage
/// reads its manifest, PutImage stores it under the new tag with the same media type and
/// digest. A no-op when the tag already names the image; refused (exit 1) when it names
/// another image, since the repository's tags are immutable.
///
/// Moving a repository from `latest` to commit tags: `cargo xtask retag app:latest <sha>`,
/// then `cargo xtask untag app:latest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The image to tag: a configured image's name, `:`, and one of its tags (or its
    /// `sha256:` digest), such as `app:latest`.
    #[arg(value_name = "IMAGE:FROM")]
    from: String,
    /// The tag to add.
    #[arg(value_name = "NEW_TAG")]
    new_tag: String,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let (image, from) = image_ref::parse(ws, &self.from)?;
        image_ref::check_tag(&self.new_tag)?;
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        let (repository, tag) = (&image.repository, &self.new_tag);
        let done = retag::retag(&ctx, image, &from, tag).await?;
        match done.added {
            true => eprintln!("tagged {repository}@{} as {tag}", done.digest),
            false => eprintln!("{repository}:{tag} already names {}; nothing to do", done.digest),
        }
        Ok(ExitCode::SUCCESS)
    }
}
