//! Prepare a stage's account for deploys: `cdk bootstrap`, then the registry stack (the
//! ECR repositories: immutable tags, scan on push, lifecycle policy). Idempotent.

use anyhow::{Result, bail};

use crate::{cdk::Cdk, stage::StageContext};

pub struct BootstrapOptions {
    /// Deploy without cdk asking to approve security-sensitive changes.
    pub approve: bool,
}

pub async fn bootstrap(ctx: &StageContext<'_>, options: &BootstrapOptions) -> Result<()> {
    let cdk = Cdk::new(ctx)?;
    cdk.bootstrap().await?;
    let stack = ctx.ws.config.registry_stack(ctx.stage);
    let status = cdk.deploy(&stack, None, options.approve, &[]).await?;
    if !status.success() {
        bail!("deploying {stack} failed ({status}); cdk's output above says why");
    }
    ctx.target.after_bootstrap(&ctx.ecr, &cdk, &stack).await?;
    eprintln!("stage {} bootstrapped: {stack} deployed", ctx.stage.name);
    Ok(())
}
