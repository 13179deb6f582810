//! Deploy a commit's images with `cdk deploy`, never an image that is not in ECR, and
//! prove afterwards that each service runs it.
//!
//! The images run from main's repositories; a commit whose images are only in the
//! pull-request ones (a branch, a dirty work tree on the local stage) runs from those, and
//! only on a stage that trusts the key that signed them.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::{
    clients::{
        cdk::{Cdk, ImageContext},
        ecr,
        git::Git,
        registry_api::Registry,
    },
    domain::channel::Channel,
    stage::{Rollouts, StageContext},
    support::exit::Verdict,
    workflows::{
        attest, check, deployed_tags,
        rollout::EcsRollouts,
        verify::{self, ServiceState},
    },
};

pub struct DeployOptions<'a> {
    /// The image tag to deploy: a commit's full SHA (or a dirty work tree's tag).
    pub tag: &'a str,
    /// Deploy without cdk asking to approve security-sensitive changes.
    pub approve: bool,
    /// Pin each container to its image digest as well as the tag.
    pub pin_digest: bool,
    /// Passed to `cdk deploy` as they are.
    pub cdk_args: &'a [String],
    /// How long to wait for the services to roll out.
    pub wait_timeout: Duration,
    /// The stage's `promote-from` stage, opened, when it has one.
    pub source: Option<&'a StageContext<'a>>,
}

/// What a deploy did: `deploy --json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub stage: String,
    pub commit: String,
    pub stack: String,
    pub images: Vec<DeployedImage>,
}

#[derive(Debug, Serialize)]
pub struct DeployedImage {
    pub name: String,
    pub digest: String,
    #[serde(flatten)]
    pub service: ServiceState,
}

/// A deploy checked and ready for cdk: the digests of the commit's images, the image
/// reference each container must use once rolled out, and what the stage ran before.
pub struct Prepared {
    pub tag: String,
    /// Where the images are: main's repositories or the pull-request ones.
    pub channel: Channel,
    /// Per image name, in the configured order: its digest.
    pub digests: Vec<(String, String)>,
    /// Per image name: the reference its container must use (`<uri>:<tag>` or `<uri>@<digest>`).
    pub expected: BTreeMap<String, String>,
    /// The commit the stage ran before, if this clone knows it: a failed deploy names it for the rollback.
    pub before: Option<String>,
    /// The service stack.
    pub stack: String,
}

/// Checks and protects the images (the deployed tags), deploys with `cdk deploy`, proves
/// the rollout through ECS: the path of a stage in AWS. Each step is a function of its own, so a
/// stage served some other way runs the same steps around its own.
pub async fn deploy(ctx: &StageContext<'_>, options: &DeployOptions<'_>) -> Result<Report> {
    let prepared = prepare(ctx, options).await?;
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let outputs = cdk_deploy(&cdk, &prepared, options).await?;
    let states = rollout(ctx, &prepared, &outputs, options, &EcsRollouts).await?;
    finish(ctx, prepared, states).await
}

/// Checks that every image of `options.tag` is in ECR (and, for a stage with `promote-from`,
/// is the very image promoted); a missing image is a [`Verdict`], before anything changes.
/// Then tags the images `deployed-<stage>.<time>`, so nothing deletes them mid-rollout.
pub async fn prepare(ctx: &StageContext<'_>, options: &DeployOptions<'_>) -> Result<Prepared> {
    let config = &ctx.ws.config;
    let tag = options.tag;
    let mut found = present(ctx, Channel::Main, tag).await?;
    let mut channel = Channel::Main;
    // Not all in main's repositories: a stage that builds its images may have them all in
    // the pull-request ones.
    if found.iter().any(|(_, f)| f.is_none()) && ctx.stage.promote_from.is_none() {
        let pr = present(ctx, Channel::Pr, tag).await?;
        let there = |found: &[(check::Check, Option<_>)]| found.iter().map(|(_, f)| f.is_some()).collect::<Vec<_>>();
        channel = channel_of(&there(&found), &there(&pr));
        if channel == Channel::Pr {
            found = pr;
        }
    }
    let mut digests = vec![];
    for (image, (check, found)) in config.images.iter().zip(found) {
        let Some((digest, _)) = found else {
            let how = match &ctx.stage.promote_from {
                Some(from) => format!(
                    "promote it from stage `{from}` first with `cargo xtask promote --to {} --rev {tag}`",
                    ctx.stage.name
                ),
                None => format!(
                    "push the commit first with `cargo xtask push --stage {}` (CI pushes every commit on main)",
                    ctx.stage.name
                ),
            };
            bail!(Verdict(format!("refusing to deploy: {}:{tag} is not in ECR; {how}", image.repository)));
        };
        eprintln!("{}: {}", image.name, check.detail);
        digests.push((image.name.clone(), digest));
    }
    // A stage that runs what another ran deploys only that very image.
    for check in check::promoted(ctx, options.source, tag).await? {
        if !check.ok() {
            bail!(Verdict(format!("refusing to deploy: {}", check.detail)));
        }
        eprintln!("{}: {}", check.name, check.detail);
    }
    // Only bytes a trusted builder signed for this commit roll out: a name proves nothing.
    // A stage that does not trust the pull-request key refuses a pull request's images here.
    let trust = attest::Trust::of(ctx, options.source).await?;
    let registry = Registry::new(ctx.registry().await?)?;
    for (image, (_, digest)) in config.images.iter().zip(&digests) {
        let repository = channel.repository(image);
        match attest::find(&registry, &repository, digest, Some(tag), &trust).await? {
            Ok(verified) => {
                eprintln!("{}: provenance signed by {} for {}", image.name, verified.signer, verified.builder)
            }
            Err(unproven) => bail!(Verdict(format!(
                "refusing to deploy: {unproven}; stage `{}` runs only images its trusted release path signed: {}",
                ctx.stage.name,
                match (&ctx.stage.promote_from, channel) {
                    (Some(from), _) =>
                        format!("push the commit with `cargo xtask push` to stage `{from}` and promote it"),
                    (None, Channel::Pr) => format!(
                        "{tag} has images only in the pull-request repositories; merge it to `{}` and deploy the commit main's push made",
                        config.main_branch
                    ),
                    (None, Channel::Main) => "push the commit with `cargo xtask push`".to_string(),
                }
            ))),
        }
    }

    // What the stage runs now: the commit a failed deploy names for the rollback.
    let before = running_commit(ctx).await?;
    // The image reference each container must use once the deploy rolled out.
    let mut expected = BTreeMap::new();
    for (image, (_, digest)) in config.images.iter().zip(&digests) {
        let repository = ecr::repository(&ctx.ecr, &channel.repository(image), &ctx.bootstrap_hint()).await?;
        let uri = repository.repository_uri().context("ECR returned a repository without its URI")?;
        let reference = if options.pin_digest { format!("{uri}@{digest}") } else { format!("{uri}:{tag}") };
        expected.insert(image.name.clone(), reference);
    }
    // Protect the images before anything rolls them out: the stage's lifecycle rule and gc
    // keep an image with a `deployed-<stage>.` tag, and it stays whatever the outcome,
    // until a later deploy of the stage prunes it out of the rollback window.
    deployed_tags::record(ctx, tag, channel).await.with_context(|| {
        format!(
            "cannot tag the images of {tag} `{}<time>`, which protects them from the lifecycle policy and gc while they roll out; nothing was deployed: run the deploy again",
            crate::domain::retention::deployed_prefix(&ctx.stage.name)
        )
    })?;
    Ok(Prepared { tag: tag.to_string(), channel, digests, expected, before, stack: config.service_stack(ctx.stage) })
}

/// Where a commit's images deploy from, given which of them main's repositories and the
/// pull-request ones hold: main's when it has them all, else the pull-request ones when they
/// have them all. Never a mix (the images of a commit deploy together): otherwise main's,
/// whose missing images the deploy then names.
fn channel_of(in_main: &[bool], in_pr: &[bool]) -> Channel {
    match (in_main.iter().all(|&b| b), in_pr.iter().all(|&b| b)) {
        (false, true) => Channel::Pr,
        _ => Channel::Main,
    }
}

/// Per configured image, the presence check of `tag` in `channel`'s repository and, when
/// the image is there, its digest and tags. A missing pull-request repository (a stage
/// bootstrapped before they existed) holds nothing.
async fn present(
    ctx: &StageContext<'_>,
    channel: Channel,
    tag: &str,
) -> Result<Vec<(check::Check, Option<(String, Vec<String>)>)>> {
    let mut found = vec![];
    for image in &ctx.ws.config.images {
        let repository = channel.repository(image);
        if channel == Channel::Pr && !ecr::repository_exists(&ctx.ecr, &repository).await? {
            found.push((
                check::Check::fail(format!("image {}", image.name), format!("no repository {repository}")),
                None,
            ));
            continue;
        }
        found.push(check::presence(&ctx.ecr, image, &repository, tag).await?);
    }
    Ok(found)
}

/// `cdk deploy` of the service stack with `-c imageTag=<tag>` (and the digests when pinned);
/// returns the stack's outputs. A failed `cdk deploy` is a [`Verdict`].
pub async fn cdk_deploy(
    cdk: &Cdk<'_>,
    prepared: &Prepared,
    options: &DeployOptions<'_>,
) -> Result<BTreeMap<String, String>> {
    let pinned = if options.pin_digest { prepared.digests.clone() } else { vec![] };
    let image =
        ImageContext { tag: prepared.tag.clone(), digests: pinned, pr_repositories: prepared.channel == Channel::Pr };
    let service = &prepared.stack;
    let status = cdk.deploy(service, Some(&image), options.approve, options.cdk_args).await?;
    if !status.success() {
        bail!(Verdict(format!("cdk deploy of {service} failed ({status}); cdk's output above says why")));
    }
    cdk.outputs(service)
}

/// CloudFormation's success is not the service's: waits until each service runs this
/// commit's image, as `rollouts` reports it. A failed rollout is a [`Verdict`] naming the
/// rollback.
pub async fn rollout(
    ctx: &StageContext<'_>,
    prepared: &Prepared,
    outputs: &BTreeMap<String, String>,
    options: &DeployOptions<'_>,
    rollouts: &impl Rollouts,
) -> Result<Vec<ServiceState>> {
    let tag = &prepared.tag;
    match verify::verify(ctx, outputs, &prepared.expected, &prepared.digests, options.wait_timeout, rollouts).await? {
        Ok(states) => Ok(states),
        Err(failures) => {
            let what: Vec<String> = failures.iter().map(|f| format!("{}: {}", f.name, f.reasons.join("; "))).collect();
            let rollback = match &prepared.before {
                Some(commit) if commit != tag => {
                    format!("; roll back with `cargo xtask rollback --stage {} --to {commit}`", ctx.stage.name)
                }
                _ => String::new(),
            };
            bail!(Verdict(format!("deploy of {} at {tag} failed: {}{rollback}", prepared.stack, what.join(" / "))));
        }
    }
}

/// After a proven rollout: says where each service answers and reports (`prepare` tagged
/// the images `deployed-<stage>.<time>` before the rollout).
pub async fn finish(ctx: &StageContext<'_>, prepared: Prepared, states: Vec<ServiceState>) -> Result<Report> {
    let (service, tag) = (&prepared.stack, &prepared.tag);
    for state in &states {
        if let Some(url) = &state.url {
            eprintln!("{}: {url} (curl {url}/version)", state.name);
        }
    }
    eprintln!("deployed {service} at {tag}: every service runs it");
    Ok(Report {
        stage: ctx.stage.name.clone(),
        commit: tag.clone(),
        stack: prepared.stack,
        images: states
            .into_iter()
            .zip(prepared.digests)
            .map(|(state, (name, digest))| DeployedImage { name, digest, service: state })
            .collect(),
    })
}

/// The commit the stage runs now, from its newest deployed tag, if this clone knows it.
async fn running_commit(ctx: &StageContext<'_>) -> Result<Option<String>> {
    let git = Git::open(&ctx.ws.root)?;
    for image in &ctx.ws.config.images {
        if let Some(commit) = crate::workflows::plan::runs(ctx, &git, image).await?.runs {
            return Ok(Some(commit));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_deploys_from_main_unless_only_the_pull_request_repositories_hold_it_all() {
        assert_eq!(channel_of(&[true, true], &[true, true]), Channel::Main);
        assert_eq!(channel_of(&[true, true], &[false, false]), Channel::Main);
        assert_eq!(channel_of(&[false, false], &[true, true]), Channel::Pr);
        assert_eq!(channel_of(&[true, false], &[true, true]), Channel::Pr);
        // A mix is never deployed: main's, whose missing image the deploy names.
        assert_eq!(channel_of(&[true, false], &[false, true]), Channel::Main);
        assert_eq!(channel_of(&[false, false], &[true, false]), Channel::Main);
    }
}
