//! `cargo xtask images`: what each repository holds, and what each stage runs and ran.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{output, stage_args, stage_args::StageArgs};
use xtask_release::{
    clients::{git::Git, registry_api::Registry},
    domain::image::rfc3339,
    domain::inventory::{Image, Inventory, StageUse},
    domain::workspace::Workspace,
    support::text::prefix,
    workflows::attest::{self, Trust},
};

/// List each repository's images, newest first: tags (a commit's shown short, with its
/// subject when the commit is in the local history), when pushed, size, scan findings, who
/// signed its provenance (a key the stage trusts, and the commit it names), and
/// which stage runs it or ran it and since when (from the `deployed-<stage>.<time>` tags that
/// `deploy` adds). What to look at before a rollback (`cargo xtask deploy --rev <sha>`).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// Print one JSON object on stdout: {"stage", "repositories": [{"repository", "image",
    /// "images": [{"digest", "tags", "commit", "subject", "pushed_at", "size_bytes", "media_type",
    /// "scan", "provenance", "stages": [{"stage", "status", "since", "in_rollback_window"}]}]}]}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    stage: &'a str,
    repositories: Vec<RepositoryReport>,
}

#[derive(Serialize)]
struct RepositoryReport {
    repository: String,
    image: String,
    images: Vec<ImageReport>,
}

#[derive(Serialize)]
struct ImageReport {
    #[serde(flatten)]
    image: Image,
    commit: Option<String>,
    subject: Option<String>,
    pushed_at: String,
    /// Who signed its provenance, or why none is trusted.
    provenance: String,
    stages: Vec<StageUse>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stage = self.stage.check(ws)?;
        let ctx = self.stage.open(ws, stage).await?;
        let source = stage_args::open_source(ws, stage).await?;
        let trust = Trust::for_check(&ctx, source.as_deref()).await;
        let registry = Registry::new(ctx.registry().await?)?;
        let git = Git::open(&ws.root).ok();
        let mut report = Report { stage: &stage.name, repositories: vec![] };
        for configured in &ws.config.images {
            let inventory = Inventory::read(&ctx.ecr, &configured.repository).await?;
            let uses = inventory.stage_uses(ws.config.rollback_window);
            let mut images = vec![];
            for (image, stages) in inventory.images.into_iter().zip(uses) {
                // An image's signed provenance is shown as its own line, not as an image.
                if inventory.subjects.contains_key(&image.digest) {
                    continue;
                }
                let commit = image.tags.iter().find_map(|t| commit_of(t)).map(str::to_owned);
                let subject = commit.as_deref().and_then(|c| git.as_ref()?.subject(c));
                let pushed_at = rfc3339(u64::try_from(image.pushed_at / 1000).unwrap_or(0));
                let provenance = match &trust {
                    Ok(trust) => attest::describe(&registry, &configured.repository, &image.digest, trust).await?,
                    Err(err) => format!("provenance not checked: {err:#}"),
                };
                images.push(ImageReport { image, commit, subject, pushed_at, provenance, stages });
            }
            report.repositories.push(RepositoryReport {
                repository: configured.repository.clone(),
                image: configured.name.clone(),
                images,
            });
        }
        if self.json {
            return output::json(&report).map(|()| ExitCode::SUCCESS);
        }
        let mut text = String::new();
        for repository in &report.repositories {
            text.push_str(&format!("{} ({}), newest first:\n", repository.repository, repository.image));
            if repository.images.is_empty() {
                text.push_str("  no images\n");
            }
            for image in &repository.images {
                text.push_str(&describe(image));
            }
        }
        output::text(&text)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The commit SHA of a commit tag (`<40 hex>` or `<40 hex>-dirty-<hash>`).
fn commit_of(tag: &str) -> Option<&str> {
    let sha = tag.get(..40)?;
    let rest = &tag[40..];
    (sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && (rest.is_empty() || rest.starts_with("-dirty-")))
    .then_some(sha)
}

fn describe(image: &ImageReport) -> String {
    let short = |digest: &str| xtask_release::support::text::short_digest(digest).to_string();
    let mut head = match (&image.commit, &image.subject) {
        (Some(c), Some(s)) => format!("{} {s}", prefix(c, 12)),
        (Some(c), None) => prefix(c, 12).to_string(),
        (None, _) => short(&image.image.digest),
    };
    for u in &image.stages {
        head.push_str(&format!("  [{} {} since {}]", u.stage, u.status, u.since));
    }
    let tags: Vec<String> = (image.image.tags.iter())
        .map(|t| match &image.commit {
            Some(c) => t.replace(c.as_str(), prefix(c, 12)),
            None => t.clone(),
        })
        .collect();
    let size = match image.image.size_bytes {
        None => "size ?".to_string(),
        Some(b) if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{:.1} MiB", b as f64 / 1048576.0),
    };
    let scan = match &image.image.scan {
        None => "no scan".to_string(),
        Some(counts) if counts.is_empty() => "scan: no findings".to_string(),
        Some(counts) => format!(
            "scan: {}",
            counts.iter().map(|(s, n)| format!("{n} {}", s.to_lowercase())).collect::<Vec<_>>().join(", ")
        ),
    };
    let tags = if tags.is_empty() { "untagged".to_string() } else { tags.join(", ") };
    let provenance = match &image.commit {
        Some(c) => image.provenance.replace(c.as_str(), prefix(c, 12)),
        None => image.provenance.clone(),
    };
    format!(
        "  {head}\n    {}  pushed {}  {size}  {scan}\n    tags: {tags}\n    {provenance}\n",
        short(&image.image.digest),
        image.pushed_at
    )
}
