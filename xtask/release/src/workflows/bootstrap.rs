//! Prepare a stage's account for deploys: `cdk bootstrap`, then the registry stack (the
//! ECR repositories: immutable tags, scan on push, lifecycle policy; the signing keys), and
//! where the settings name a GitHub repository, the CI stack (its OIDC provider and the
//! roles its workflow assumes). Idempotent.

use anyhow::{Result, bail};

use crate::{clients::cdk::Cdk, stage::StageContext};

pub struct BootstrapOptions {
    /// Deploy without cdk asking to approve security-sensitive changes.
    pub approve: bool,
    /// Deploy the CI stack too, when `github-repository` is set.
    pub ci: bool,
}

pub async fn bootstrap(ctx: &StageContext<'_>, options: &BootstrapOptions) -> Result<()> {
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let stack = deploy_stacks(ctx, &cdk, options).await?;
    done(ctx, &stack);
    Ok(())
}

/// `cdk bootstrap`, then `cdk deploy` of the registry stack (and the CI stack); returns the
/// registry stack's name.
pub async fn deploy_stacks(ctx: &StageContext<'_>, cdk: &Cdk<'_>, options: &BootstrapOptions) -> Result<String> {
    cdk.bootstrap().await?;
    let config = &ctx.ws.config;
    let stack = config.registry_stack(ctx.stage);
    let mut stacks = vec![stack.clone()];
    if options.ci && config.github_repository.is_some() {
        stacks.push(config.ci_stack(ctx.stage));
    }
    for name in &stacks {
        let status = cdk.deploy(name, None, options.approve, &[]).await?;
        if !status.success() {
            bail!("deploying {name} failed ({status}); cdk's output above says why");
        }
    }
    Ok(stack)
}

/// The line that ends a bootstrap.
pub fn done(ctx: &StageContext<'_>, stack: &str) {
    eprintln!("stage {} bootstrapped: {stack} deployed", ctx.stage.name);
}
