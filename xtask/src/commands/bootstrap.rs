//! `cargo xtask bootstrap`: prepare a stage's account for deploys.

use std::process::ExitCode;

use anyhow::Result;

use crate::{
    bootstrap::{self, BootstrapOptions},
    commands::stage_args::StageArgs,
    workspace::Workspace,
};

/// `cdk bootstrap` of the stage's account and region, then deploy its registry stack
/// (the ECR repositories: immutable tags, scan on push, lifecycle policy). Idempotent.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Deploy without asking for approval of security-sensitive changes (`--require-approval never`).
    #[arg(long)]
    yes: bool,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        // Bootstraps of one local stack take turns, whichever command runs them.
        let _one_at_a_time = ctx.target.bootstrap_lock().await?;
        bootstrap::bootstrap(&ctx, &BootstrapOptions { approve: self.yes }).await?;
        ctx.target.mark_bootstrapped(ws, stage)?;
        Ok(ExitCode::SUCCESS)
    }
}
