//! Flags shared by the commands that talk to a stage, and the one place a stage is opened:
//! in its AWS account, or on the local stack for a stage it serves.

use anyhow::{Context, Result};
use xtask_local_stack::{
    settings::LOCAL_STAGE,
    stage::{self as local, LocalStage},
};
use xtask_release::{
    domain::{config::Stage, workspace::Workspace},
    stage::{Access, StageContext},
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
        local::check_flags(stage, self.profile.as_deref())?;
        Ok(stage)
    }

    /// The stage opened: SDK configuration, credentials checked, its registry known.
    pub async fn open<'w>(&self, ws: &'w Workspace, stage: &'w Stage) -> Result<Opened<'w>> {
        open(ws, stage, self.profile.as_deref()).await
    }
}

/// A stage opened where it lives.
pub enum Opened<'w> {
    Aws(StageContext<'w>),
    Local(LocalStage<'w>),
}

impl<'w> Opened<'w> {
    pub fn ctx(&self) -> &StageContext<'w> {
        match self {
            Opened::Aws(ctx) => ctx,
            Opened::Local(local) => &local.ctx,
        }
    }
}

impl<'w> std::ops::Deref for Opened<'w> {
    type Target = StageContext<'w>;
    fn deref(&self) -> &StageContext<'w> {
        self.ctx()
    }
}

/// Opens `stage` with `profile` (already checked against it): on the local stack for a
/// stage it serves (which must be running), in its AWS account otherwise.
pub async fn open<'w>(ws: &'w Workspace, stage: &'w Stage, profile: Option<&str>) -> Result<Opened<'w>> {
    if local::serves(stage) {
        return Ok(Opened::Local(local::open(ws, stage).await?));
    }
    Ok(Opened::Aws(StageContext::open(ws, stage, Access::aws(stage, profile).await?)?))
}

/// The stage `stage` runs the images of (`promote-from`), opened with its own profile; `None`
/// for a stage that builds its own.
pub async fn open_source<'w>(ws: &'w Workspace, stage: &Stage) -> Result<Option<Opened<'w>>> {
    let Some(from) = &stage.promote_from else { return Ok(None) };
    let source = ws.config.stage(from)?;
    let opened = open(ws, source, None)
        .await
        .with_context(|| format!("cannot reach stage `{from}`, whose images stage `{}` runs", stage.name))?;
    Ok(Some(opened))
}

/// Flags of the commands that start the local stack.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalStackArgs {
    /// Debian mirror the local stack's base images are made from (debootstrap), on first start.
    #[arg(long, env = "XTASK_DEBIAN_MIRROR", default_value = xtask_local_stack::base_images::DEFAULT_MIRROR, value_name = "URL")]
    pub debian_mirror: String,
}
