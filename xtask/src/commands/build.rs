//! `cargo xtask build`: build images locally, tagged `<repository>:<sha>`.

use std::process::ExitCode;

use anyhow::Result;

use xtask_local_stack::{settings::LOCAL_STAGE, stage as local};
use xtask_release::{
    clients::docker::{self, build::BuilderChoice},
    clients::git::Git,
    domain::image::Plan,
    domain::workspace::Workspace,
    support::progress::Progress,
    workflows::push::build_spec,
    workflows::work_tree,
};

/// Build images through the Docker Engine API, tagged `<repository>:<commit sha>`;
/// nothing is pushed. The work tree must be clean (or pass --allow-dirty).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Image to build (repeatable); all configured images by default.
    #[arg(long = "image", value_name = "NAME")]
    images: Vec<String>,
    /// Build with a dirty work tree; the tag becomes `<sha>-dirty-<hash>`.
    #[arg(long)]
    allow_dirty: bool,
    /// Stage whose build arguments apply (its AWS settings are not used).
    #[arg(long, env = "XTASK_STAGE", default_value = LOCAL_STAGE, value_name = "STAGE")]
    stage: String,
    /// Which builder the Docker daemon uses.
    #[arg(long, value_enum, env = "XTASK_BUILDER", default_value_t = BuilderChoice::Auto, value_name = "BUILDER")]
    builder: BuilderChoice,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = ws.config.stage(&self.stage)?;
        let images = ws.config.select_images(&self.images)?;
        let git = Git::open(&ws.root)?;
        let tag = work_tree::tag(&ws.config, &git, self.allow_dirty)?;
        let docker = docker::connect().await?;
        let progress = Progress::detect();
        let source = git.source_url();
        let mut stage_args = stage.build_args.clone();
        if local::serves(stage) {
            stage_args.extend(local::build_args(&ws.config, stage).await?);
        }
        for image in images {
            let plan = Plan::new(&ws.config, &stage_args, image, &tag, &source)?;
            let id =
                docker::build::build(&docker, &build_spec(&plan, local::build_network(stage), self.builder), &progress)
                    .await?;
            progress.println(format!("{}: {} ({})", image.name, plan.local_name(), docker::build::short(&id)));
        }
        Ok(ExitCode::SUCCESS)
    }
}
