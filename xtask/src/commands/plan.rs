//! `cargo xtask plan`: what `push` and `deploy` would do for a commit, changing nothing.

use std::{io::Write, process::ExitCode};

use anyhow::{Context, Result};

use crate::commands::{
    output,
    stage_args::{ChannelArgs, StageArgs},
};
use xtask_release::{
    clients::git::{Git, ImageTag},
    domain::workspace::Workspace,
    workflows::plan::{self, Action, PlanOptions, Report},
    workflows::work_tree,
};

/// Show what `push` and `deploy` would do for a commit, and change nothing.
///
/// Per image, push's decision: `skip` (the commit's tag is in ECR), `retag` (an image with
/// the same inputs is; from which commits), `build` (new inputs, and what changed since the
/// nearest earlier commit with an image: context files, the Dockerfile, the settings, base
/// images), or `promote` for a stage with `promote-from`. For deploy: the commit each image
/// runs in the stage now, the commits between that and the target, and `cdk diff` of the
/// service stack. Push's decision is read where the channel's images go (a pull request's
/// in the `pr/<repository>` repositories).
///
/// `--json` lists the images to build under `build`, as a GitHub Actions matrix takes it;
/// in a workflow step it is also written to $GITHUB_OUTPUT as `build=[...]`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    channel: ChannelArgs,
    /// Commit to plan for (SHA, branch, tag, `HEAD~3`); HEAD by default. Image inputs are
    /// computed only from a clean work tree at that commit.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Skip `cdk diff` of the service stack (it synthesizes the app).
    #[arg(long)]
    no_diff: bool,
    /// Print one JSON object on stdout: {"commit", "stage", "images", "build", "deploy"}.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let git = Git::open(&ws.root)?;
        let commit = git.resolve(self.rev.as_deref().unwrap_or("HEAD"))?;
        let work_tree = work_tree::tag(&ws.config, &git, false).ok().filter(|tag| tag.commit == commit);
        let channel = self.channel.resolve(ws, stage, &ImageTag { commit: commit.clone(), dirty: None })?;
        let ctx = self.stage.open(ws, stage).await?;
        let options = PlanOptions { commit: &commit, work_tree: work_tree.as_ref(), diff: !self.no_diff, channel };
        let report = plan::plan(&ctx, &options).await?;
        write_github_output(&report)?;
        if self.json {
            output::json(&report)?;
        } else {
            output::text(&text(&report, &git))?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn text(report: &Report, git: &Git) -> String {
    let short = |sha: &str| sha.get(..12).unwrap_or(sha).to_string();
    let mut out = format!("plan for {} on stage {}\n\npush:\n", short(&report.commit), report.stage);
    for image in &report.images {
        let what = match image.action {
            Action::Skip => format!("skip     already in ECR ({})", image.digest.as_deref().unwrap_or("?")),
            Action::Retag => format!(
                "retag    same inputs as {} ({})",
                image.from.iter().map(|c| short(c)).collect::<Vec<_>>().join(", "),
                image.digest.as_deref().unwrap_or("?")
            ),
            Action::Build => format!("build    {}", image.changed.join("; ")),
            Action::Promote => format!("promote  from stage {}", image.from.join(", ")),
            Action::Unknown => format!("unknown  {}", image.changed.join("; ")),
        };
        out += &format!("  {:<10} {what}\n", image.name);
    }
    out += "\ndeploy:\n";
    for running in &report.deploy.images {
        let now = match (&running.runs, &running.since) {
            (Some(commit), Some(since)) => {
                let subject = git.subject(commit).map(|s| format!(" \"{s}\"")).unwrap_or_default();
                format!("runs {}{subject} since {since}", short(commit))
            }
            _ => "runs nothing deployed by this tool".to_string(),
        };
        out += &format!("  {:<10} {now} → {}\n", running.name, short(&report.deploy.target));
    }
    if !report.deploy.commits.is_empty() {
        let how = if report.deploy.rollback { "rolled back" } else { "new" };
        out += &format!("  {} commits {how}:\n", report.deploy.commits.len());
        for commit in &report.deploy.commits {
            out += &format!("    {} {}\n", short(&commit.sha), commit.subject);
        }
    }
    if let Some(diff) = &report.deploy.diff {
        out += &format!("\ncdk diff {}:\n{}\n", report.deploy.stack, diff.trim_end());
    }
    out
}

/// In a GitHub Actions step: `build=["app",...]` for a matrix of push jobs.
fn write_github_output(report: &Report) -> Result<()> {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT") else { return Ok(()) };
    let mut file =
        std::fs::OpenOptions::new().append(true).create(true).open(&path).context("cannot open $GITHUB_OUTPUT")?;
    writeln!(file, "build={}", serde_json::to_string(&report.build)?)?;
    Ok(())
}
