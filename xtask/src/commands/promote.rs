//! `cargo xtask promote`: copy a commit's images to a stage that runs what another ran.

use std::process::ExitCode;

use anyhow::Result;

use xtask_local_stack::{
    base_images::DEFAULT_MIRROR,
    chain,
    stage::{self as local},
};
use xtask_release::{
    clients::git::Git,
    domain::{config::Stage, workspace::Workspace},
    workflows::promote::{self, PromoteOptions},
};

use crate::commands::{
    output,
    stage_args::{self, Opened},
};

/// Copy a commit's images from the stage that built them (the target's `promote-from`)
/// to the target stage's ECR, with the same digests: nothing is built again, so what
/// runs there is byte for byte what was checked before.
///
/// Registry to registry over the OCI distribution API, each side with its own stage's
/// credentials: blobs the target lacks are streamed across, manifests (and an index's
/// platform manifests) are put with the same bytes, then the commit's tag and its inputs
/// tag are added. Memory stays flat whatever the layer sizes. A re-run after an
/// interruption sends only what is missing; a commit already promoted is a no-op.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stage to promote to; it names where its images come from (`promote-from`).
    #[arg(long, value_name = "STAGE")]
    to: String,
    /// Commit to promote (SHA, branch, tag, `HEAD~3`); HEAD by default.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Image to promote (repeatable); all configured images by default.
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// AWS profile for the target stage (overrides its `profile`).
    #[arg(long, env = "XTASK_PROFILE", value_name = "PROFILE")]
    profile: Option<String>,
    /// AWS profile for the source stage (overrides its `profile`).
    #[arg(long, value_name = "PROFILE")]
    from_profile: Option<String>,
    /// Print one JSON object on stdout: {"commit", "from", "to", "images": [{"name", "digest", "action", ...}]}.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let target = ws.config.stage(&self.to)?;
        let source = ws.config.stage(promote::source_stage(target)?)?;
        local::check_flags(target, self.profile.as_deref())?;
        local::check_flags(source, self.from_profile.as_deref())?;
        ws.config.select_images(&self.images)?;
        let tag = Git::open(&ws.root)?.resolve(self.rev.as_deref().unwrap_or("HEAD"))?;
        // Stages of one promotion live in the same place (the settings say so): the local
        // stack is started once for both.
        if local::serves(target) {
            chain::start(ws, DEFAULT_MIRROR).await?;
        }
        let source = open(ws, source, self.from_profile.as_deref()).await?;
        let target = open(ws, target, self.profile.as_deref()).await?;
        let report = promote::promote(&source, &target, &PromoteOptions { tag: &tag, images: &self.images }).await?;
        if self.json {
            output::json(&report)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Opens a stage of the promotion; a local stage (on the stack already started) is
/// bootstrapped first if its repositories are missing, as `deploy --stage local` makes its
/// stage ready.
async fn open<'w>(ws: &'w Workspace, stage: &'w Stage, profile: Option<&str>) -> Result<Opened<'w>> {
    if local::serves(stage) {
        let local = chain::ready(ws, stage, chain::Bootstrap::WhenRepositoriesMissing).await?;
        return Ok(Opened::Local(local));
    }
    stage_args::open(ws, stage, profile).await
}
