//! Prepare a stage's account for deploys: `cdk bootstrap`, then the registry stack (the
//! ECR repositories: immutable tags, scan on push, lifecycle policy). Idempotent.

use anyhow::{Result, bail};

use crate::{clients::cdk::Cdk, stage::StageContext};

pub struct BootstrapOptions {
    /// Deploy without cdk asking to approve security-sensitive changes.
    pub approve: bool,
}

pub async fn bootstrap(ctx: &StageContext<'_>, options: &BootstrapOptions) -> Result<()> {
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let stack = deploy_stacks(ctx, &cdk, options).await?;
    done(ctx, &stack);
    Ok(())
}

/// `cdk bootstrap`, then `cdk deploy` of the registry stack; returns the stack's name.
pub async fn deploy_stacks(ctx: &StageContext<'_>, cdk: &Cdk<'_>, options: &BootstrapOptions) -> Result<String> {
    cdk.bootstrap().await?;
    let stack = ctx.ws.config.registry_stack(ctx.stage);
    let status = cdk.deploy(&stack, None, options.approve, &[]).await?;
    if !status.success() {
        bail!("deploying {stack} failed ({status}); cdk's output above says why");
    }
    Ok(stack)
}

/// The line that ends a bootstrap.
pub fn done(ctx: &StageContext<'_>, stack: &str) {
    eprintln!("stage {} bootstrapped: {stack} deployed", ctx.stage.name);
}
