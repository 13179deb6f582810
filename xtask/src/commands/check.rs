//! `cargo xtask check`: prove a commit deployable before merge.

use std::{process::ExitCode, time::Duration};

use anyhow::Result;
use serde::Serialize;

use crate::{
    aws,
    cdk::{Cdk, ImageContext},
    commands::stage_args::StageArgs,
    deployable::{self, Check, Severity},
    ecr,
    git::Git,
    image::Plan,
    registry_api::Registry,
    workspace::Workspace,
};

/// Prove a commit deployable: every image of the commit is in ECR with the right
/// revision label and platform, its scan findings are under the threshold, the
/// repositories are sound (immutable tags, scan on push, lifecycle policy), and the
/// service stack synthesizes with the tag. Exits 0 only if every check passes.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    stage: StageArgs,
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
        let stage = self.stage.resolve(ws).await?;
        let git = Git::open(&ws.root)?;
        let mut checks = vec![];

        // 1. The commit: a clean work tree at HEAD, or the REV given.
        let (commit, at_head) = match &self.rev {
            Some(rev) => {
                let commit = git.resolve(rev)?;
                let at_head = git.resolve("HEAD").ok().as_deref() == Some(commit.as_str()) && git.dirty_paths()?.is_empty();
                checks.push(Check::pass("tree", format!("checking {rev} = {commit}")));
                (commit, at_head)
            }
            None => {
                let commit = git.resolve("HEAD")?;
                match git.work_tree_tag(false) {
                    Ok(_) => checks.push(Check::pass("tree", format!("clean at {commit}"))),
                    Err(err) => checks.push(Check::fail("tree", format!("{err:#}"))),
                }
                (commit, checks[0].ok)
            }
        };

        let (sdk, target) = aws::load(stage, self.stage.profile.as_deref(), &ws.config.local).await?;
        aws::ensure_credentials(&sdk, &target).await?;
        let client = aws_sdk_ecr::Client::new(&sdk);
        let mut auth = ecr::authorization(&client).await?;
        if let Some(registry) = &stage.registry {
            auth.host = registry.clone();
        }
        let registry = Registry::new(&auth);
        let hint = format!("cargo xtask bootstrap --stage {}", stage.name);
        let source = git.source_url();

        for image in &ws.config.images {
            // 2. Presence, revision label and platform.
            let (present, found) = deployable::presence(&client, image, &commit).await?;
            checks.push(present);
            if let Some((_digest, tags)) = found {
                // The inputs key can be recomputed only from a work tree at this commit.
                let key = if at_head {
                    let tag = crate::git::ImageTag { commit: commit.clone(), dirty: None };
                    Plan::new(&ws.config, stage, image, &tag, &source).ok().and_then(|plan| plan.inputs_key().ok())
                } else {
                    None
                };
                let result =
                    deployable::identity(&client, &registry, &git, image, &commit, &commit, &tags, key.as_deref()).await;
                checks.push(Check::from_result(&format!("revision {}", image.name), result));
                // 3. Scan findings.
                let timeout = Duration::from_secs(self.scan_timeout);
                let result = deployable::scan(&client, image, &commit, self.severity, timeout).await;
                checks.push(Check::from_result(&format!("scan {}", image.name), result));
            }
            // 4. Repository settings.
            let result = deployable::repository_settings(&client, image, &hint).await;
            checks.push(Check::from_result(&format!("repository {}", image.repository), result));
        }

        // 5. The service stack synthesizes with the tag.
        let stack = ws.config.service_stack(stage);
        let image = ImageContext { tag: commit.clone(), digests: vec![] };
        let synth = Cdk::new(ws, stage, &target).and_then(|cdk| cdk.synth(&stack, Some(&image)));
        checks.push(match synth {
            Ok(_) => Check::pass("synth", format!("{stack} synthesizes with imageTag={commit}")),
            Err(err) => Check::fail("synth", format!("{err:#}")),
        });

        let ok = checks.iter().all(|c| c.ok);
        if self.json {
            let report = Report { commit: &commit, stage: &stage.name, ok, checks: &checks };
            println!("{}", serde_json::to_string(&report)?);
        }
        eprintln!("check of {commit} for stage {}:", stage.name);
        for check in &checks {
            eprintln!("  {:<4}  {:<24} {}", if check.ok { "ok" } else { "FAIL" }, check.name, check.detail);
        }
        let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
        if failed.is_empty() {
            eprintln!("deployable: all {} checks passed", checks.len());
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("not deployable: {} of {} checks failed ({})", failed.len(), checks.len(), failed.join(", "));
            Ok(ExitCode::FAILURE)
        }
    }
}
