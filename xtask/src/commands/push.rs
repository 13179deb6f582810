//! `cargo xtask push`: build, tag with the commit and push to ECR, never twice.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{
    output,
    stage_args::{ChannelArgs, StageArgs},
};
use xtask_release::{
    clients::docker::build::BuilderChoice,
    clients::git::Git,
    domain::workspace::Workspace,
    workflows::push::{self, PushOptions},
    workflows::work_tree,
};

/// Build each image through the Docker Engine API, tag it with the commit's full SHA,
/// push it to its ECR repository and confirm it is there. A pull request's images (the
/// `pr` channel) go to `pr/<repository>` and nowhere else.
///
/// Nothing is built twice: a commit whose tag is already in ECR is skipped, and a commit
/// whose image inputs (context after .dockerignore, Dockerfile, build arguments other than
/// the commit, target, platform) match an image already pushed gets that image's tag
/// added (ECR BatchGetImage + PutImage) instead of a build.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Image to push (repeatable); all configured images by default.
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// Build even when an image with the same inputs is already in ECR.
    #[arg(long)]
    rebuild: bool,
    /// Neither read nor write the build cache in ECR (an image's `cache-stage`, pushed as
    /// `buildcache-<key>`): build from what the daemon has alone.
    #[arg(long)]
    no_build_cache: bool,
    /// Print one JSON object on stdout: {"commit", "stage", "images": [...]}.
    #[arg(long)]
    json: bool,
    /// Push a dirty work tree as `<sha>-dirty-<hash>` (local stage only).
    #[arg(long)]
    allow_dirty: bool,
    /// Which builder the Docker daemon uses.
    #[arg(long, value_enum, env = "XTASK_BUILDER", default_value_t = BuilderChoice::Auto, value_name = "BUILDER")]
    builder: BuilderChoice,
    #[command(flatten)]
    channel: ChannelArgs,
    /// How many images to build and push at once, against the one daemon; by default every
    /// image, up to the number of CPUs. On a terminal each image has its progress line; in
    /// CI its lines stay whole, each prefixed with the image's name.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let git = Git::open(&ws.root)?;
        let tag = work_tree::tag(&ws.config, &git, self.allow_dirty)?;
        let channel = self.channel.resolve(ws, stage, &tag)?;
        let ctx = self.stage.open(ws, stage).await?;
        let selected = ws.config.select_images(&self.images)?.len();
        let jobs = self.jobs.map_or_else(|| push::default_jobs(selected), usize::from);
        let options = PushOptions {
            tag: &tag,
            images: &self.images,
            rebuild: self.rebuild,
            build_cache: !self.no_build_cache,
            builder: self.builder,
            channel,
            jobs,
        };
        let report = push::push(&ctx, &options).await?;
        if self.json {
            output::json(&report)?;
        }
        push::write_github_output(&report)?;
        Ok(ExitCode::SUCCESS)
    }
}
