//! Flags shared by the commands that talk to a stage, or start the local stack.

use anyhow::Result;

use crate::{
    config::{LOCAL_STAGE, Stage},
    local::base_images::DEFAULT_MIRROR,
    stage::StageContext,
    target::Target,
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
    /// The stage, with the flags checked against it, before anything is started or called.
    pub fn check<'w>(&self, ws: &'w Workspace) -> Result<&'w Stage> {
        let stage = ws.config.stage(&self.stage)?;
        Target::check_flags(stage, self.profile.as_deref())?;
        Ok(stage)
    }

    /// The stage resolved: SDK configuration, credentials checked, its target reachable.
    pub async fn open<'w>(&self, ws: &'w Workspace, stage: &'w Stage) -> Result<StageContext<'w>> {
        StageContext::open(ws, stage, self.profile.as_deref()).await
    }
}

/// Flags of the commands that start the local stack.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalStackArgs {
    /// Debian mirror the local stack's base images are made from (debootstrap), on first start.
    #[arg(long, env = "XTASK_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR, value_name = "URL")]
    pub debian_mirror: String,
}
