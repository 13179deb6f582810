//! The local stage's whole chain, so that one command shows the whole path: `deploy --stage
//! local` starts the stack, bootstraps the stage when its settings changed, pushes the work
//! tree, then deploys ([`crate::deploy`]). Each step is the release library's own, the one
//! its command runs; what is added around them is the local stack's alone.

use anyhow::Result;
use xtask_release::{
    clients::{
        cdk::Cdk,
        docker::build::BuilderChoice,
        git::{Git, ImageTag},
    },
    domain::{config::Stage, workspace::Workspace},
    support::lock::Lock,
    workflows::{
        bootstrap::{self, BootstrapOptions},
        deploy::{DeployOptions, Report},
        push::{self, Channel, PushOptions},
    },
};

use crate::{
    stack::Stack,
    stage::{self, LocalStage},
};

/// What the chain adds to a deploy.
pub struct ChainOptions<'a> {
    /// The work tree's tag when deploying HEAD (pushed first), `None` for `--rev`.
    pub work_tree: Option<&'a ImageTag>,
    /// Where the local stack's base images fetch Debian's packages.
    pub debian_mirror: &'a str,
    pub builder: BuilderChoice,
}

/// When a command of a local stage bootstraps it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// When the settings changed since the last bootstrap (or its repositories are gone):
    /// `deploy`, which deploys the registry stack's settings too.
    WhenSettingsChanged,
    /// When the stage's repositories are missing: `promote`, which only needs them there.
    WhenRepositoriesMissing,
}

/// Starts the local stack if it is not running (`local up`): the first step of a local
/// stage's commands.
pub async fn start(ws: &Workspace, debian_mirror: &str) -> Result<()> {
    Stack::new(ws).up(ws, debian_mirror).await.map(drop)
}

/// Opens `stage` on the running stack and bootstraps the stage `when` it needs it: what a
/// command of a local stage does after [`start`], so that a newcomer's `deploy --stage
/// local`, then `promote --to local-prod`, work on a fresh stack.
pub async fn ready<'w>(ws: &'w Workspace, stage: &'w Stage, when: Bootstrap) -> Result<LocalStage<'w>> {
    let local = stage::open(ws, stage).await?;
    let ready = || async {
        match when {
            Bootstrap::WhenSettingsChanged => local.stack.is_bootstrapped(ws, stage, &local.ctx.ecr).await,
            Bootstrap::WhenRepositoriesMissing => stage::repositories_exist(&local).await,
        }
    };
    if !ready().await? {
        let _one_at_a_time = bootstrap_lock(&local.stack).await?;
        // Another checkout may have bootstrapped it while this one waited.
        if !ready().await? {
            // No CI stack: moto has no IAM OIDC provider, and no workflow assumes roles here.
            bootstrap(&local, &BootstrapOptions { approve: true, ci: false }).await?;
        }
    }
    Ok(local)
}

/// `bootstrap` of a local stage: the release library's, then what moto's CloudFormation
/// drops or makes otherwise: the repository settings (scan on push, lifecycle policy), from
/// the registry stack's template, and the signing keys (after the stack, which makes their
/// aliases); recorded so the chain bootstraps again only when the settings change.
pub async fn bootstrap(local: &LocalStage<'_>, options: &BootstrapOptions) -> Result<()> {
    let ctx = &local.ctx;
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let stack = bootstrap::deploy_stacks(ctx, &cdk, options).await?;
    // The template cdk just deployed: a second synth would cost as long as the deploy.
    let template = match cdk.synthesized(&stack) {
        Some(template) => template,
        None => cdk.synth(&stack, None).await?,
    };
    crate::repository_settings::apply(&ctx.ecr, &template).await?;
    crate::signing_keys::ensure_for(&local.ctx, local.stack.dir()).await?;
    bootstrap::done(ctx, &stack);
    local.stack.mark_bootstrapped(ctx.ws, ctx.stage)
}

/// Bootstraps of one local stack take turns (two deploys from two checkouts would run two
/// `cdk bootstrap` into one emulated account at once), whichever command runs them.
pub async fn bootstrap_lock(stack: &Stack) -> Result<Lock> {
    Lock::acquire(&stack.dir().join("bootstrap.lock"), "another bootstrap of the local stack").await
}

/// `deploy --stage <a local stage>`: the stack ready, the work tree pushed (unless the
/// stage's images are promoted, or `--rev` names a commit), then the deploy.
/// `options.source` is not read: the chain opens the stage's `promote-from` stage itself.
pub async fn deploy(
    ws: &Workspace,
    stage: &Stage,
    chain: &ChainOptions<'_>,
    options: &DeployOptions<'_>,
) -> Result<Report> {
    start(ws, chain.debian_mirror).await?;
    let local = ready(ws, stage, Bootstrap::WhenSettingsChanged).await?;
    let source = match &stage.promote_from {
        Some(from) => Some(stage::open(ws, ws.config.stage(from)?).await?),
        None => None,
    };
    let options = DeployOptions { source: source.as_ref().map(|s| &s.ctx), ..*options };
    // A stage that runs what another ran is never pushed to: its images are promoted.
    if let Some(tag) = chain.work_tree.filter(|_| stage.promote_from.is_none()) {
        let channel = Channel::of(&Git::open(&ws.root)?, tag, &ws.config.main_branch)?;
        let push = PushOptions {
            tag,
            images: &[],
            rebuild: false,
            build_cache: true,
            builder: chain.builder,
            channel,
            jobs: push::default_jobs(ws.config.images.len()),
        };
        push::push(&local.ctx, &push).await?;
    }
    crate::deploy::deploy(&local, &options).await
}
