//! `cargo xtask gc`: delete what the lifecycle policy expires, now, and say why.

use std::process::ExitCode;

use anyhow::Result;
use aws_sdk_ecr::types::ImageIdentifier;
use serde::Serialize;

use crate::commands::{output, stage_args::StageArgs};
use xtask_release::{
    clients::ecr,
    domain::inventory::Inventory,
    domain::retention::{self, Settings},
    domain::workspace::Workspace,
    workflows::gc::{self, Doomed},
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
    repositories: Vec<RepositoryReport>,
}

#[derive(Serialize)]
struct RepositoryReport {
    repository: String,
    delete: Vec<Doomed>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        let mut settings = Settings::of(&ws.config);
        if let Some(keep) = self.keep {
            settings.keep_main = keep;
        }
        let policy = retention::policy(&settings);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut report = Report { stage: &stage.name, applied: self.apply, repositories: vec![] };
        for image in &ws.config.images {
            let inventory = Inventory::read(&ctx.ecr, &image.repository).await?;
            let doomed = gc::plan(&inventory, &policy, settings.rollback_window, now);
            let verb = if self.apply { "deleting" } else { "would delete" };
            eprintln!("{}: {verb} {} of {} images", image.repository, doomed.len(), inventory.images.len());
            for d in &doomed {
                let tags = if d.tags.is_empty() { "untagged".to_string() } else { d.tags.join(", ") };
                eprintln!("  {}  [{tags}]  {}", d.digest, d.reason);
            }
            if self.apply && !doomed.is_empty() {
                let ids = doomed.iter().map(|d| ImageIdentifier::builder().image_digest(&d.digest).build()).collect();
                ecr::delete(&ctx.ecr, &image.repository, ids).await?;
                eprintln!("{}: deleted {} images", image.repository, doomed.len());
            }
            report.repositories.push(RepositoryReport { repository: image.repository.clone(), delete: doomed });
        }
        if !self.apply {
            eprintln!("nothing deleted; run again with --apply to delete these");
        }
        if self.json {
            output::json(&report)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
