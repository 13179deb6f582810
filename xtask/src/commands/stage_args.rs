//! Flags shared by the commands that talk to a stage, and the one place a stage is opened:
//! in its AWS account, or on the local stack for a stage it serves.

use anyhow::{Context, Result};
use xtask_local_stack::{
    settings::LOCAL_STAGE,
    stage::{self as local, LocalStage},
};
use xtask_release::{
    clients::git::{Git, ImageTag},
    domain::{channel::Channel, config::Stage, workspace::Workspace},
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

/// `--channel`: the line of history a commit's images belong to, which says where they are
/// (main's repositories or the `pr/` ones) and which lifecycle rule counts them.
#[derive(Debug, Clone, clap::Args)]
pub struct ChannelArgs {
    /// Which line of history the images belong to: `main` (main's repositories, tag
    /// `main-<sha>`, kept `keep-images`), `pr` (the `pr/<repository>` repositories, tag
    /// `pr-<sha>`, kept `keep-pr-images`), or `auto`: `main` when the commit is reachable
    /// from the main branch (`refs/remotes/origin/<main-branch>` or
    /// `refs/heads/<main-branch>`), `pr` otherwise and for a dirty work tree. CI can set it
    /// from the event (`pr` on GitHub's pull_request events).
    #[arg(long, value_enum, env = "XTASK_CHANNEL", default_value_t = ChannelChoice::Auto, value_name = "CHANNEL")]
    pub channel: ChannelChoice,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ChannelChoice {
    Auto,
    Main,
    Pr,
}

impl ChannelArgs {
    /// The channel of the images tagged `tag` in `stage`. A stage that runs another's images
    /// (`promote-from`) has main's alone: `auto` is `main` there, and `pr` an error.
    pub fn resolve(&self, ws: &Workspace, stage: &Stage, tag: &ImageTag) -> Result<Channel> {
        let promoted = stage.promote_from.is_some();
        Ok(match self.channel {
            ChannelChoice::Main => Channel::Main,
            ChannelChoice::Auto if promoted => Channel::Main,
            ChannelChoice::Pr if promoted => anyhow::bail!(
                "stage `{}` runs the images promoted from stage `{}` and has no pull-request repositories; drop --channel pr (or XTASK_CHANNEL)",
                stage.name,
                stage.promote_from.as_deref().unwrap_or_default()
            ),
            ChannelChoice::Pr => Channel::Pr,
            ChannelChoice::Auto => Channel::of(&Git::open(&ws.root)?, tag, &ws.config.main_branch)?,
        })
    }
}
