//! `plan`: what `push` and `deploy` would do for a commit, changing nothing. Per image,
//! push's decision (skip: the commit's tag is in ECR; retag: an image with the same inputs
//! is, and which; build: new inputs, and what changed since the nearest earlier commit
//! with an image), and for deploy the commit each image runs in the stage now, the commits
//! between that and the target, and `cdk diff` of the service stack. Its JSON lists the
//! images to build as a CI matrix takes them. Push's decision is read in the repository
//! the channel's images go to (main's, or a pull request's `pr/<repository>`).

use anyhow::Result;
use serde::Serialize;

use crate::{
    clients::cdk::{Cdk, ImageContext},
    clients::ecr,
    clients::git::{Git, ImageTag},
    clients::registry_api::Registry,
    domain::image::{self, BASE_IMAGES_LABEL, Plan},
    domain::inventory::timestamp_rfc3339,
    domain::retention::{self, Facts},
    domain::{channel::Channel, config::Image},
    stage::StageContext,
};

pub struct PlanOptions<'a> {
    /// The commit planned for.
    pub commit: &'a str,
    /// The work tree's tag when it is a clean checkout of `commit`: only then can the image
    /// inputs be computed (push builds the work tree).
    pub work_tree: Option<&'a ImageTag>,
    /// Run `cdk diff` of the service stack.
    pub diff: bool,
    /// Where the commit's images go: main's repositories or the pull-request ones.
    pub channel: Channel,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub commit: String,
    pub stage: String,
    pub images: Vec<ImagePlan>,
    /// The images `push` would build: a GitHub Actions matrix takes it as is
    /// (`matrix: { image: ${{ fromJSON(needs.plan.outputs.build) }} }`).
    pub build: Vec<String>,
    pub deploy: DeployPlan,
}

#[derive(Debug, Serialize)]
pub struct ImagePlan {
    pub name: String,
    /// The repository of the channel's images (`pr/<repository>` for a pull request's).
    pub repository: String,
    pub action: Action,
    /// The digest the commit's tag names, or will name (skip, retag, promote).
    pub digest: Option<String>,
    /// Retag: the commits whose tags the reused image carries; promote: the source stage.
    pub from: Vec<String>,
    /// Build: what changed since the nearest earlier commit whose image is in ECR.
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Skip,
    Retag,
    Build,
    /// A stage with `promote-from`: `promote` would copy the image.
    Promote,
    /// The work tree is not a clean checkout of the commit: its inputs cannot be computed.
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct DeployPlan {
    pub stack: String,
    pub target: String,
    pub images: Vec<Running>,
    /// The commits between what runs and the target, newest first (at most 50).
    pub commits: Vec<CommitLine>,
    /// The target is older than what runs: a rollback, and `commits` are those undone.
    pub rollback: bool,
    /// `cdk diff` of the service stack with the target's tag.
    pub diff: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Running {
    pub name: String,
    /// The commit the stage runs (from the newest `deployed-<stage>.` tag), if any.
    pub runs: Option<String>,
    /// When it was deployed, RFC 3339.
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CommitLine {
    pub sha: String,
    pub subject: String,
}

/// How many earlier commits to look through for an image to compare inputs with.
const LOOK_BACK: usize = 30;

pub async fn plan(ctx: &StageContext<'_>, options: &PlanOptions<'_>) -> Result<Report> {
    let ws = ctx.ws;
    let git = Git::open(&ws.root)?;
    let commit = options.commit;
    let mut images = vec![];
    for image in &ws.config.images {
        images.push(push_plan(ctx, &git, image, options).await?);
    }
    let build = images.iter().filter(|i| i.action == Action::Build).map(|i| i.name.clone()).collect();

    let mut running = vec![];
    for image in &ws.config.images {
        running.push(runs(ctx, &git, image).await?);
    }
    // One commit the stage runs (the images deploy together); the newest if they differ.
    let runs_now = running.iter().filter_map(|r| r.runs.as_deref()).find(|c| git.has_commit(c));
    let (commits, rollback) = match runs_now {
        Some(now) if now != commit && git.has_commit(commit) => {
            if git.is_ancestor(commit, now)? {
                (git.commits_between(commit, now, 50)?, true)
            } else {
                (git.commits_between(now, commit, 50)?, false)
            }
        }
        _ => (vec![], false),
    };
    let stack = ws.config.service_stack(ctx.stage);
    let diff = if options.diff {
        let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
        let pr_repositories = options.channel == Channel::Pr;
        Some(cdk.diff(&stack, &ImageContext { tag: commit.to_string(), digests: vec![], pr_repositories }).await?)
    } else {
        None
    };
    Ok(Report {
        commit: commit.to_string(),
        stage: ctx.stage.name.clone(),
        images,
        build,
        deploy: DeployPlan {
            stack,
            target: commit.to_string(),
            images: running,
            commits: commits.into_iter().map(|(sha, subject)| CommitLine { sha, subject }).collect(),
            rollback,
            diff,
        },
    })
}

async fn push_plan(ctx: &StageContext<'_>, git: &Git, image: &Image, options: &PlanOptions<'_>) -> Result<ImagePlan> {
    let ecr_client = &ctx.ecr;
    let commit = options.commit;
    let repository = options.channel.repository(image);
    let mut plan = ImagePlan {
        name: image.name.clone(),
        repository: repository.clone(),
        action: Action::Skip,
        digest: None,
        from: vec![],
        changed: vec![],
    };
    if let Some(found) = ecr::image_by_tag(ecr_client, &repository, commit).await? {
        plan.digest = found.image_digest().map(str::to_owned);
        return Ok(plan);
    }
    if let Some(source) = &ctx.stage.promote_from {
        plan.action = Action::Promote;
        plan.from = vec![source.clone()];
        return Ok(plan);
    }
    let Some(tag) = options.work_tree else {
        plan.action = Action::Unknown;
        plan.changed = vec![format!("inputs not computed: check out {commit} with a clean work tree")];
        return Ok(plan);
    };
    let ws = ctx.ws;
    let build = Plan::new(&ws.config, &ctx.build_args(), image, tag, &git.source_url())?;
    let image::Inputs { bases, tag: inputs_tag, .. } = build.inputs(ctx.docker().await?).await?;
    if let Some(found) = ecr::image_by_tag(ecr_client, &repository, &inputs_tag).await? {
        plan.action = Action::Retag;
        plan.digest = found.image_digest().map(str::to_owned);
        plan.from = found.image_tags().iter().filter(|t| is_commit(t)).cloned().collect();
        return Ok(plan);
    }
    plan.action = Action::Build;
    // A pull request's first push compares with main's images too: its branch starts there.
    let mut compared = vec![repository];
    if options.channel == Channel::Pr {
        compared.push(image.repository.clone());
    }
    plan.changed = changed_inputs(ctx, git, image, &compared, commit, &bases).await?;
    Ok(plan)
}

/// What differs from the nearest earlier commit (first parents) whose image is in ECR (in
/// the first of `repositories` that has one): files of the context and the Dockerfile, the
/// settings, and base images that moved.
async fn changed_inputs(
    ctx: &StageContext<'_>,
    git: &Git,
    image: &Image,
    repositories: &[String],
    commit: &str,
    bases: &[crate::domain::dockerfile::Base],
) -> Result<Vec<String>> {
    for earlier in git.first_parents(commit, LOOK_BACK)? {
        let mut found = None;
        for repository in repositories {
            if ecr::image_by_tag(&ctx.ecr, repository, &earlier).await?.is_some() {
                found = Some(repository.as_str());
                break;
            }
        }
        let Some(repository) = found else { continue };
        let context = image.context.to_string_lossy().trim_end_matches('/').to_string();
        let dockerfile = image.dockerfile.to_string_lossy().to_string();
        let mut changed: Vec<String> = git
            .changed_paths(&earlier, commit)?
            .into_iter()
            .filter_map(|path| {
                if path == dockerfile {
                    Some(format!("Dockerfile {path}"))
                } else if path == "Cargo.toml" {
                    Some("settings (Cargo.toml: build arguments)".to_string())
                } else if context.is_empty() || context == "." || path.starts_with(&format!("{context}/")) {
                    Some(format!("context file {path}"))
                } else {
                    None
                }
            })
            .collect();
        let registry = Registry::new(ctx.registry().await?)?;
        let manifest = ecr::manifest(&ctx.ecr, repository, &earlier).await?;
        if let Ok(config) = registry.image_config(repository, &manifest, image.platform.as_str()).await {
            let recorded = image::recorded_bases(config.labels.get(BASE_IMAGES_LABEL).map_or("", String::as_str));
            for base in bases {
                if recorded.iter().any(|r| r.reference == base.reference && r.digest != base.digest) {
                    changed.push(format!("base image {} moved", base.reference));
                }
            }
        }
        if changed.is_empty() {
            changed.push("no file of the context changed; the base images or build settings did".to_string());
        }
        let short = crate::support::text::prefix(&earlier, 12);
        return Ok(changed.into_iter().map(|c| format!("{c} (since {short})")).collect());
    }
    Ok(vec![format!("no image of the last {LOOK_BACK} commits is in ECR to compare with")])
}

/// The commit the stage runs for `image`: a commit tag of the image its newest deployed
/// tag marks (the newest such commit this clone has, when the image carries several), in
/// main's repository or, for a stage that builds its images, the pull-request one (a
/// branch deployed to a stage that trusts the pull-request key runs from there).
pub async fn runs(ctx: &StageContext<'_>, git: &Git, image: &Image) -> Result<Running> {
    let mut repositories = vec![Channel::Main.repository(image)];
    if ctx.stage.promote_from.is_none() {
        repositories.push(Channel::Pr.repository(image));
    }
    // The tags say it; no manifest need be read (this runs before every deploy).
    let mut newest: Option<(Vec<String>, String)> = None;
    for repository in &repositories {
        // A stage bootstrapped before the pull-request repositories existed has none.
        if *repository != image.repository && !ecr::repository_exists(&ctx.ecr, repository).await? {
            continue;
        }
        let details = ecr::images(&ctx.ecr, repository).await?;
        let tags: Vec<Vec<String>> = details.iter().map(|d| d.image_tags().to_vec()).collect();
        let facts: Vec<Facts> = tags.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
        let here = retention::deployments(&facts).remove(&ctx.stage.name).and_then(|list| list.into_iter().next());
        if let Some((index, timestamp)) = here
            && newest.as_ref().is_none_or(|(_, newest)| timestamp > *newest)
        {
            newest = Some((tags[index].clone(), timestamp));
        }
    }
    let Some((tags, timestamp)) = newest else {
        return Ok(Running { name: image.name.clone(), runs: None, since: None });
    };
    let commits: Vec<&String> = tags.iter().filter(|t| is_commit(t)).collect();
    let runs = commits
        .iter()
        .copied()
        .find(|c| commits.iter().all(|other| git.is_ancestor(other, c).unwrap_or(false)))
        .or(commits.first().copied())
        .cloned();
    Ok(Running { name: image.name.clone(), runs, since: Some(timestamp_rfc3339(&timestamp)) })
}

/// A commit tag: 40 lowercase hex digits.
fn is_commit(tag: &str) -> bool {
    tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
