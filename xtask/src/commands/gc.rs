//! `cargo xtask gc`: delete what the lifecycle policy expires, now, and say why.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{output, stage_args::StageArgs};
use xtask_release::{
    domain::workspace::Workspace,
    workflows::gc::{self, RepositoryPlan},
};

/// List (and with `--apply`, delete) the images the repositories' lifecycle policy expires:
/// main's images past the last `keep-images`, pull-request images past `keep-pr-images`,
/// older images with neither tag past the last `keep-images` tagged ones. Never an image a
/// stage runs or can roll back to (the newest `rollback-window` deployed to each stage), nor a
/// manifest an index that stays references; untagged manifests that no index references go
/// once a day old. Without `--apply` nothing is deleted.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Keep this many images of main instead of `keep-images`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep: Option<u32>,
    /// Delete the listed images (BatchDeleteImage by digest).
    #[arg(long)]
    apply: bool,
    /// Print one JSON object on stdout: {"stage", "applied", "repositories": [{"repository", "delete": [{"digest", "tags", "reason"}]}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    stage: &'a str,
    applied: bool,
    repositories: &'a [RepositoryPlan],
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        let plans = gc::list(&ctx, self.keep).await?;
        let verb = if self.apply { "deleting" } else { "would delete" };
        for plan in &plans {
            eprintln!("{}: {verb} {} of {} images", plan.repository, plan.delete.len(), plan.images);
            for d in &plan.delete {
                let tags = if d.tags.is_empty() { "untagged".to_string() } else { d.tags.join(", ") };
                eprintln!("  {}  [{tags}]  {}", d.digest, d.reason);
            }
            if self.apply && !plan.delete.is_empty() {
                gc::delete(&ctx, plan).await?;
                eprintln!("{}: deleted {} images", plan.repository, plan.delete.len());
            }
        }
        if !self.apply {
            eprintln!("nothing deleted; run again with --apply to delete these");
        }
        if self.json {
            output::json(&Report { stage: &stage.name, applied: self.apply, repositories: &plans })?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
