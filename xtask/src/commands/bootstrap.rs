//! `cargo xtask bootstrap`: prepare a stage's account for deploys.

use std::process::ExitCode;

use anyhow::Result;

use xtask_local_stack::chain;
use xtask_release::{
    domain::workspace::Workspace,
    workflows::bootstrap::{self, BootstrapOptions},
};

use crate::commands::stage_args::{Opened, StageArgs};

/// `cdk bootstrap` of the stage's account and region, then deploy its registry stack
/// (the ECR repositories, main's and pull requests': immutable tags, scan on push, lifecycle
/// policy; the KMS keys that sign provenance) and, with `github-repository` set, its CI stack
/// (GitHub's OIDC provider and the workflow's roles). Idempotent.
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
        let options = BootstrapOptions { approve: self.yes, ci: true };
        match self.stage.open(ws, stage).await? {
            Opened::Aws(ctx) => bootstrap::bootstrap(&ctx, &options).await?,
            Opened::Local(local) => {
                let _one_at_a_time = chain::bootstrap_lock(&local.stack).await?;
                // No CI stack on the local stack: moto has no IAM OIDC provider.
                chain::bootstrap(&local, &BootstrapOptions { ci: false, ..options }).await?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
