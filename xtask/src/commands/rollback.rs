//! `cargo xtask rollback`: back to the commit a stage ran before, found for the person on
//! call rather than by them.

use std::{io::IsTerminal, process::ExitCode};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use xtask_local_stack::{
    base_images::DEFAULT_MIRROR,
    chain::{self, ChainOptions},
    stage as local,
};
use xtask_release::{
    clients::{docker::build::BuilderChoice, git::Git},
    domain::workspace::Workspace,
    support::{exit::Verdict, lock::Lock},
    workflows::{
        deploy::{DeployOptions, Report},
        rollback::{self, Choice},
    },
};

use crate::commands::{
    output,
    stage_args::{self, Opened, StageArgs},
};

/// Roll a stage back: without `--to`, to the commit it ran before the one it runs now (read
/// from the `deployed-<stage>.` tags deploy leaves on the images it deployed). It prints the
/// commit, its subject and when it last ran there, asks to go on (unless `--yes`; without a
/// terminal `--yes` is required), then deploys it as `deploy --rev` does, with the same checks
/// and the same proof that every service runs it. When a blue/green or canary deployment of
/// the service stack is still under way with the previous revision running (its bake, or a
/// traffic shift), ECS is asked to roll that deployment back instead
/// (`StopServiceDeployment`, `ROLLBACK`). Nothing earlier to roll back to is a verdict (exit 1).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Commit to roll back to (SHA, branch, tag, `HEAD~3`); by default the one the stage ran
    /// before the one it runs.
    #[arg(long, value_name = "REV")]
    to: Option<String>,
    /// Roll back without asking (required when stdin is not a terminal), and without cdk asking
    /// to approve security-sensitive changes.
    #[arg(long)]
    yes: bool,
    /// How long to wait, in seconds, for each service to roll out (or ECS to roll it back).
    /// Default: 900, plus the stage's rollout time, as for `deploy`.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    wait_timeout: Option<u64>,
    /// Print one JSON object on stdout: {"choice": {"stage", "runs", "commit", "subject",
    /// "last_ran", "previous"}, "deploy": what `deploy --json` prints}.
    #[arg(long)]
    json: bool,
    /// The Debian mirror a local stage's base images are made from: local stages only.
    #[arg(long, env = "XTASK_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR, value_name = "URL", hide = true)]
    debian_mirror: String,
    /// The builder a local stage uses: local stages only.
    #[arg(long, value_enum, env = "XTASK_BUILDER", default_value_t = BuilderChoice::Auto, value_name = "BUILDER", hide = true)]
    builder: BuilderChoice,
}

#[derive(Serialize)]
struct Json<'a> {
    choice: &'a Choice,
    deploy: &'a Report,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let git = Git::open(&ws.root)?;
        let to = self.to.as_deref().map(|rev| git.resolve(rev)).transpose()?;
        // One deploy of a stage at a time from this workspace: a second waits for the first.
        let _one_at_a_time = Lock::stage(&ws.target_dir(), &stage.name, "another deploy, gc or untag").await?;
        let is_local = local::serves(stage);
        if is_local {
            chain::start(ws, &self.debian_mirror).await?;
        }
        let opened = self.stage.open(ws, stage).await?;
        let choice = rollback::choose(&opened, &git, to.as_deref()).await?;
        for line in rollback::describe(&choice) {
            eprintln!("{line}");
        }
        if !self.yes {
            confirm(&choice).await?;
        }
        let source = match is_local {
            true => None,
            false => stage_args::open_source(ws, stage).await?,
        };
        let options = DeployOptions {
            source: source.as_deref(),
            tag: &choice.commit,
            approve: self.yes,
            pin_digest: false,
            cdk_args: &[],
            wait_timeout: match self.wait_timeout {
                Some(seconds) => std::time::Duration::from_secs(seconds),
                None => stage.rollout()?.default_wait(),
            },
        };
        let report = match &opened {
            Opened::Local(_) => {
                let chain = ChainOptions { work_tree: None, debian_mirror: &self.debian_mirror, builder: self.builder };
                chain::deploy(ws, stage, &chain, &options).await?
            }
            Opened::Aws(ctx) => rollback::rollback(ctx, &choice, &options).await?,
        };
        if self.json {
            output::json(&Json { choice: &choice, deploy: &report })?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Asks on the terminal whether to go on; refuses when there is no terminal to ask on.
async fn confirm(choice: &Choice) -> Result<()> {
    let stage = &choice.stage;
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to roll back stage `{stage}` without confirmation: stdin is not a terminal; run `cargo xtask rollback --stage {stage} --yes` to roll back without asking"
        );
    }
    eprint!("roll back stage {stage} to {}? [y/N] ", &choice.commit[..12.min(choice.commit.len())]);
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await?
    .context("cannot read the answer from stdin")?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!(Verdict(format!("rollback of stage `{stage}` cancelled; nothing was changed")));
    }
    Ok(())
}
