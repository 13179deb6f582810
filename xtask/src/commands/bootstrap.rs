//! `cargo xtask bootstrap`: prepare a stage's account for deploys.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::{aws, cdk::Cdk, commands::stage_args::StageArgs, config::Stage, workspace::Workspace};

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
        let stage = self.stage.resolve(ws).await?;
        bootstrap(ws, stage, self.stage.profile.as_deref(), self.yes).await?;
        Ok(ExitCode::SUCCESS)
    }
}

pub async fn bootstrap(ws: &Workspace, stage: &Stage, profile: Option<&str>, yes: bool) -> Result<()> {
    let (sdk, target) = aws::load(stage, profile, &ws.config.local).await?;
    aws::ensure_credentials(&sdk, &target).await?;
    let cdk = Cdk::new(ws, stage, &target)?;
    cdk.bootstrap()?;
    let stack = ws.config.registry_stack(stage);
    let status = cdk.deploy(&stack, None, yes || stage.is_local(), &[])?;
    if !status.success() {
        bail!("deploying {stack} failed ({status})");
    }
    if stage.is_local() {
        let template = cdk.synth(&stack, None)?;
        crate::local::repository_settings::apply(&aws_sdk_ecr::Client::new(&sdk), &template).await?;
    }
    eprintln!("stage {} bootstrapped: {stack} deployed", stage.name);
    Ok(())
}
