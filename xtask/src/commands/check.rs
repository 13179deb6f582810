//! `cargo xtask check`: prove a commit deployable before merge.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use serde::Serialize;

use crate::commands::{
    output,
    stage_args::{self, ChannelArgs, StageArgs},
};
use xtask_release::{
    clients::git::{Git, ImageTag},
    domain::{channel::Channel, workspace::Workspace},
    support::exit,
    workflows::check::{self, Check, CheckOptions, Severity, State},
};

/// Prove a commit deployable: every image of the commit is in ECR with the right
/// revision label and platform, its scan findings are under the threshold, the
/// repositories are sound (immutable tags, scan on push, lifecycle policy), and the
/// service stack synthesizes with the tag. The images are checked where the commit's
/// channel puts them: a pull request's in the `pr/<repository>` repositories. Exits 0 only
/// if every check passes, 1 if one fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Commit to check; by default HEAD, whose work tree must then be clean.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Fail on scan findings at or above this severity.
    #[arg(long, value_enum, default_value_t = Severity::Critical, value_name = "SEVERITY")]
    severity: Severity,
    /// How long to wait for a scan on push to complete, in seconds.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    scan_timeout: u64,
    /// Print one JSON object on stdout: {"commit", "stage", "ok", "checks": [{"name", "ok", "detail"}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    commit: &'a str,
    stage: &'a str,
    ok: bool,
    checks: &'a [Check],
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let commit = Git::open(&ws.root)?.resolve(self.rev.as_deref().unwrap_or("HEAD"))?;
        let channel = self.channel.resolve(ws, stage, &ImageTag { commit, dirty: None })?;
        let ctx = self.stage.open(ws, stage).await?;
        let source = stage_args::open_source(ws, stage).await?;
        let options = CheckOptions {
            source: source.as_deref(),
            rev: self.rev.as_deref(),
            severity: self.severity,
            scan_timeout: Duration::from_secs(self.scan_timeout),
            channel,
        };
        let (commit, checks) = check::check(&ctx, &options).await?;
        let ok = checks.iter().all(Check::ok);
        if self.json {
            output::json(&Report { commit: &commit, stage: &stage.name, ok, checks: &checks })?;
        }
        let pr = match channel {
            Channel::Pr => " (a pull request's images, in the pr/ repositories)",
            Channel::Main => "",
        };
        eprintln!("check of {commit} for stage {}{pr}:", stage.name);
        for check in &checks {
            let verdict = match check.state {
                State::Fail => "FAIL",
                State::Warn => "warn",
                State::Pass => "ok",
            };
            eprintln!("  {verdict:<4}  {:<24} {}", check.name, check.detail);
        }
        let failed: Vec<&str> = checks.iter().filter(|c| !c.ok()).map(|c| c.name.as_str()).collect();
        if failed.is_empty() {
            eprintln!("deployable: all {} checks passed", checks.len());
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("not deployable: {} of {} checks failed ({})", failed.len(), checks.len(), failed.join(", "));
            Ok(ExitCode::from(exit::VERDICT))
        }
    }
}
