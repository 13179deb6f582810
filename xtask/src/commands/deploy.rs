//! `cargo xtask deploy`: deploy a commit's images with `cdk deploy`, never an image
//! that is not in ECR.

use std::process::ExitCode;

use anyhow::{Result, bail};

use xtask_local_stack::{
    base_images::DEFAULT_MIRROR,
    chain::{self, ChainOptions},
    stage as local,
};
use xtask_release::{
    clients::{docker::build::BuilderChoice, git::Git},
    domain::workspace::Workspace,
    stage::{Access, StageContext},
    support::lock::Lock,
    workflows::deploy::{self, DeployOptions},
    workflows::work_tree,
};

use crate::commands::{
    output,
    stage_args::{self, StageArgs},
};

/// Deploy the service stack at a commit: check that every image of the commit is in
/// ECR, then run `cdk deploy <service stack> -c imageTag=<sha>`, so a new image alone
/// always rolls the service; then wait until each ECS service's primary deployment has
/// rolled out and runs the commit's image. ECS's service deployment is followed through each
/// lifecycle stage and its bake (older services: the primary deployment's rollout state), and
/// the image digest ECS resolved for the service is compared with the one ECR has for the
/// commit. A deployment ECS rolled back or stopped (circuit breaker, alarms), or tasks that
/// keep failing, fail the deploy (exit 1) with ECS's reasons, what it said of the stopped
/// tasks and the command that rolls back. `--rev` deploys an earlier commit without checking
/// it out (`cargo xtask rollback` finds the one the stage ran before). A stage with `promote-from` deploys only
/// images promoted from that stage.
///
/// `--stage local` runs the whole chain on the local stack: starts it if needed,
/// bootstraps it, pushes the work tree, deploys, then runs the services' containers on
/// this machine and prints their URLs (see `cargo xtask local --help` for its own flags).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Commit to deploy (SHA, branch, tag, `HEAD~3`); HEAD by default, whose work tree must be clean.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Deploy without cdk asking to approve security-sensitive changes (`--require-approval never`).
    /// The local stage never asks.
    #[arg(long)]
    yes: bool,
    /// Pin each container to its image digest (`-c imageDigest=...`) as well as the tag.
    #[arg(long)]
    pin_digest: bool,
    /// Deploy a dirty work tree's `<sha>-dirty-<hash>` image: local stages only (see `cargo xtask local --help`).
    #[arg(long, conflicts_with = "rev", hide = true)]
    allow_dirty: bool,
    /// The Debian mirror a local stage's base images are made from: local stages only.
    #[arg(long, env = "XTASK_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR, value_name = "URL", hide = true)]
    debian_mirror: String,
    /// The builder a local stage pushes the work tree with first: local stages only.
    #[arg(long, value_enum, env = "XTASK_BUILDER", default_value_t = BuilderChoice::Auto, value_name = "BUILDER", hide = true)]
    builder: BuilderChoice,
    /// How long to wait, in seconds, for each service to roll out with the commit's image
    /// after `cdk deploy` (ECS's service deployment; on the local stack, the container's health
    /// check). Default: 900, plus the stage's rollout time (the bake and traffic shifts of a
    /// blue-green, canary or linear stage).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    wait_timeout: Option<u64>,
    /// Print one JSON object on stdout: {"stage", "commit", "stack", "images": [{"name", "digest",
    /// "cluster", "service", "task_definition", "image", "running_digest", "state", "url"}]}.
    #[arg(long)]
    json: bool,
    /// Arguments passed to `cdk deploy` as they are (after `--`).
    #[arg(last = true, value_name = "CDK_ARGS")]
    cdk_args: Vec<String>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let local = local::serves(stage);
        if self.allow_dirty && !local {
            bail!(
                "--allow-dirty images are never deployed to stage `{}`; commit the changes and push them",
                stage.name
            );
        }
        let git = Git::open(&ws.root)?;
        // The work tree's tag is taken once: a file changed mid-deploy cannot change it.
        let (tag, work_tree) = match &self.rev {
            Some(rev) => (git.resolve(rev)?, None),
            None => {
                let tag = work_tree::tag(&ws.config, &git, self.allow_dirty)?;
                (tag.to_string(), Some(tag))
            }
        };
        // One deploy of a stage at a time from this workspace: a second waits for the first.
        let _one_at_a_time = Lock::stage(&ws.target_dir(), &stage.name, "another deploy, gc or untag").await?;
        let source = match local {
            true => None,
            false => stage_args::open_source(ws, stage).await?,
        };
        let options = DeployOptions {
            source: source.as_deref(),
            tag: &tag,
            approve: self.yes,
            pin_digest: self.pin_digest,
            cdk_args: &self.cdk_args,
            wait_timeout: match self.wait_timeout {
                Some(seconds) => std::time::Duration::from_secs(seconds),
                None => stage.rollout()?.default_wait(),
            },
        };
        let report = if local {
            let chain = ChainOptions {
                work_tree: work_tree.as_ref(),
                debian_mirror: &self.debian_mirror,
                builder: self.builder,
            };
            chain::deploy(ws, stage, &chain, &options).await?
        } else {
            let access = Access::aws(stage, self.stage.profile.as_deref()).await?;
            deploy::deploy(&StageContext::open(ws, stage, access)?, &options).await?
        };
        if self.json {
            output::json(&report)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
