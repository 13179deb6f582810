//! The chain `deploy` runs before cdk where the stage's target asks for it (the local
//! stack: one command shows the whole path): start the stack, bootstrap it if its
//! settings changed, push the work tree. Each step is the library function its own
//! command calls.

use anyhow::Result;

use crate::{
    bootstrap::{self, BootstrapOptions},
    config::Stage,
    docker::build::BuilderChoice,
    git::{Git, ImageTag},
    push::{self, Channel, PushOptions},
    stage::StageContext,
    target::Target,
    workspace::Workspace,
};

pub struct ChainOptions<'a> {
    /// The AWS profile (`--profile`), already checked against the stage.
    pub profile: Option<&'a str>,
    /// The work tree's tag when deploying HEAD (pushed first), `None` for `--rev`.
    pub work_tree: Option<&'a ImageTag>,
    /// Where the local stack's base images fetch Debian's packages.
    pub debian_mirror: &'a str,
    pub builder: BuilderChoice,
}

/// The stage, resolved and ready for `deploy::deploy`.
pub async fn prepare_deploy<'w>(
    ws: &'w Workspace,
    stage: &'w Stage,
    options: &ChainOptions<'_>,
) -> Result<StageContext<'w>> {
    Target::start(ws, stage, options.debian_mirror).await?;
    let ctx = StageContext::open(ws, stage, options.profile).await?;
    if !ctx.target.deploy_runs_whole_chain() {
        return Ok(ctx);
    }
    if !ctx.target.is_bootstrapped(ws, stage, &ctx.ecr).await? {
        let _one_at_a_time = ctx.target.bootstrap_lock().await?;
        // Another checkout may have bootstrapped it while this one waited.
        if !ctx.target.is_bootstrapped(ws, stage, &ctx.ecr).await? {
            bootstrap::bootstrap(&ctx, &BootstrapOptions { approve: true }).await?;
            ctx.target.mark_bootstrapped(ws, stage)?;
        }
    }
    // A stage that runs what another ran is never pushed to: its images are promoted.
    if let Some(tag) = options.work_tree.filter(|_| stage.promote_from.is_none()) {
        let channel = Channel::of(&Git::open(&ws.root)?, tag, &ws.config.main_branch)?;
        let jobs = push::default_jobs(ws.config.images.len());
        let push = PushOptions {
            tag,
            images: &[],
            rebuild: false,
            build_cache: true,
            builder: options.builder,
            channel,
            jobs,
        };
        push::push(&ctx, &push).await?;
    }
    Ok(ctx)
}
