//! Flags shared by the commands that talk to a stage.

use anyhow::{Result, bail};

use crate::{
    config::{LOCAL_STAGE, Stage},
    local::Stack,
    workspace::Workspace,
};

#[derive(Debug, Clone, clap::Args)]
pub struct StageArgs {
    /// Stage to work on: `local` (the local stack) or one under [workspace.metadata.xtask.stages].
    #[arg(long, env = "XTASK_STAGE", default_value = LOCAL_STAGE, value_name = "STAGE")]
    pub stage: String,
    /// AWS profile for the SDK and for cdk (overrides the stage's `profile`).
    #[arg(long, env = "XTASK_PROFILE", value_name = "PROFILE")]
    pub profile: Option<String>,
}

impl StageArgs {
    /// The stage, with the local stack checked when it is the local one.
    pub async fn resolve<'w>(&self, ws: &'w Workspace) -> Result<&'w Stage> {
        let stage = ws.config.stage(&self.stage)?;
        if stage.is_local() {
            if self.profile.is_some() {
                bail!("--profile does not apply to the local stage, which uses the local stack's dummy credentials");
            }
            Stack::new(ws).ensure_running().await?;
        }
        Ok(stage)
    }
}
