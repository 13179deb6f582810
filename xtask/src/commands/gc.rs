//! `cargo xtask gc`: delete what the lifecycle policy expires, now, and say why.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::commands::{output, stage_args::StageArgs};
use xtask_release::{
    domain::workspace::Workspace,
    support::lock::Lock,
    workflows::gc::{self, Applied, RepositoryPlan},
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
    /// Delete the listed images. Each image's tags are read again right before it goes, and
    /// one whose tags changed since the listing (a retag, a deploy) is left alone; an image
    /// goes by removing exactly its listed tags (BatchDeleteImage), so a tag added at the
    /// last moment still keeps it. Waits for a deploy of the stage from this workspace.
    #[arg(long)]
    apply: bool,
    /// With --apply: delete what this earlier `gc --json` output lists (the plan a reviewer
    /// saw), not a new listing; still only images whose tags are as listed then.
    #[arg(long, value_name = "FILE", requires = "apply")]
    plan: Option<std::path::PathBuf>,
    /// Print one JSON object on stdout: {"stage", "applied", "repositories": [{"repository", "delete": [{"digest", "tags", "reason"}]}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    stage: &'a str,
    applied: bool,
    repositories: &'a [RepositoryPlan],
    /// With --apply: what happened to each listed image, per repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<&'a [Applied]>,
}

/// The part of a saved `gc --json` that `--plan` reads.
#[derive(Deserialize)]
struct SavedPlan {
    stage: String,
    repositories: Vec<RepositoryPlan>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let saved = self.plan.as_deref().map(|path| read_plan(ws, &stage.name, path)).transpose()?;
        // No deploy of this workspace rolls an image out while its stage's images go.
        let _lock = match self.apply {
            true => Some(Lock::stage(&ws.target_dir(), &stage.name, "a deploy, gc or untag").await?),
            false => None,
        };
        let ctx = self.stage.open(ws, stage).await?;
        let plans = match saved {
            Some(saved) => saved,
            None => gc::list(&ctx, self.keep).await?,
        };
        let verb = if self.apply { "deleting" } else { "would delete" };
        let mut results = vec![];
        for plan in &plans {
            match self.plan {
                Some(_) => eprintln!("{}: {verb} {} images, as planned", plan.repository, plan.images_doomed()),
                None => eprintln!("{}: {verb} {} of {} images", plan.repository, plan.images_doomed(), plan.images),
            }
            let (referrers, images): (Vec<_>, Vec<_>) = plan.delete.iter().partition(|d| d.subject.is_some());
            for d in images {
                let tags = if d.tags.is_empty() { "untagged".to_string() } else { d.tags.join(", ") };
                eprintln!("  {}  [{tags}]  {}", d.digest, d.reason);
            }
            if !referrers.is_empty() {
                eprintln!(
                    "  and {} signed provenance manifests of those images (`--json` lists them)",
                    referrers.len()
                );
            }
            if self.apply && !plan.delete.is_empty() {
                let applied = gc::delete(&ctx, plan).await?;
                for skipped in &applied.skipped {
                    eprintln!("  kept {}: {}", skipped.digest, skipped.reason);
                }
                let gone = match applied.gone.len() {
                    0 => String::new(),
                    n => format!(" ({n} already gone)"),
                };
                eprintln!("{}: deleted {} images{gone}", plan.repository, applied.deleted.len());
                results.push(applied);
            }
        }
        if !self.apply {
            eprintln!("nothing deleted; run again with --apply to delete these");
        }
        if self.json {
            let results = self.apply.then_some(results.as_slice());
            output::json(&Report { stage: &stage.name, applied: self.apply, repositories: &plans, results })?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A saved `gc --json` of stage `stage`, for the workspace's repositories only.
fn read_plan(ws: &Workspace, stage: &str, path: &std::path::Path) -> Result<Vec<RepositoryPlan>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the gc plan {}; give a file `gc --json` wrote", path.display()))?;
    let saved: SavedPlan = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the output of `cargo xtask gc --json`", path.display()))?;
    if saved.stage != stage {
        bail!(
            "the gc plan {} is for stage `{}`, not `{stage}`; pass --stage {}",
            path.display(),
            saved.stage,
            saved.stage
        );
    }
    for plan in &saved.repositories {
        if !ws.config.images.iter().any(|image| image.repository == plan.repository) {
            bail!(
                "the gc plan {} names repository `{}`, which no image of this workspace uses",
                path.display(),
                plan.repository
            );
        }
    }
    Ok(saved.repositories)
}
