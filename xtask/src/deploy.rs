//! Deploy a commit's images with `cdk deploy`, never an image that is not in ECR, and
//! prove afterwards that each service runs it.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::{
    cdk::{Cdk, ImageContext},
    deployable, deployed_tags, ecr,
    exit::Verdict,
    git::Git,
    stage::StageContext,
    verify::{self, ServiceState},
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

/// Checks that every image of `options.tag` is in ECR, then deploys the service stack with
/// `-c imageTag=<tag>`. A missing image or a failed `cdk deploy` is a [`Verdict`].
pub async fn deploy(ctx: &StageContext<'_>, options: &DeployOptions<'_>) -> Result<Report> {
    let config = &ctx.ws.config;
    let tag = options.tag;
    let mut digests = vec![];
    for image in &config.images {
        let (check, found) = deployable::presence(&ctx.ecr, image, tag).await?;
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
    for check in deployable::promoted(ctx, tag).await? {
        if !check.ok {
            bail!(Verdict(format!("refusing to deploy: {}", check.detail)));
        }
        eprintln!("{}: {}", check.name, check.detail);
    }

    // What the stage runs now: the commit a failed deploy names for the rollback.
    let before = running_commit(ctx).await?;
    // The image reference each container must use once the deploy rolled out.
    let mut expected = BTreeMap::new();
    for (image, (_, digest)) in config.images.iter().zip(&digests) {
        let repository = ecr::repository(&ctx.ecr, &image.repository, &ctx.bootstrap_hint()).await?;
        let uri = repository.repository_uri().context("ECR returned a repository without its URI")?;
        let reference = if options.pin_digest { format!("{uri}@{digest}") } else { format!("{uri}:{tag}") };
        expected.insert(image.name.clone(), reference);
    }

    let cdk = Cdk::new(ctx)?;
    let pinned = if options.pin_digest { digests.clone() } else { vec![] };
    let image = ImageContext { tag: tag.to_string(), digests: pinned };
    let service = config.service_stack(ctx.stage);
    let outputs = match ctx.target.before_deploy(ctx, &cdk, &service, &expected, options.cdk_args).await? {
        Some(outputs) => outputs,
        None => {
            let status = cdk.deploy(&service, Some(&image), options.approve, options.cdk_args).await?;
            if !status.success() {
                bail!(Verdict(format!("cdk deploy of {service} failed ({status}); cdk's output above says why")));
            }
            cdk.outputs(&service)?
        }
    };
    // CloudFormation's success is not the service's: each must run this commit's image.
    let states = match verify::verify(ctx, &outputs, &expected, options.wait_timeout).await? {
        Ok(states) => states,
        Err(failures) => {
            let what: Vec<String> = failures.iter().map(|f| format!("{}: {}", f.name, f.reasons.join("; "))).collect();
            let rollback = match &before {
                Some(commit) if commit != tag => {
                    format!("; roll back with `cargo xtask deploy --stage {} --rev {commit}`", ctx.stage.name)
                }
                _ => String::new(),
            };
            bail!(Verdict(format!("deploy of {service} at {tag} failed: {}{rollback}", what.join(" / "))));
        }
    };
    for state in &states {
        if let Some(url) = &state.url {
            eprintln!("{}: {url} (curl {url}/version)", state.name);
        }
    }
    ctx.target.after_deploy(&service, &expected, &outputs)?;
    eprintln!("deployed {service} at {tag}: every service runs it");
    // The stage's lifecycle rule keeps what it runs and its rollback window by these tags.
    deployed_tags::record(ctx, tag).await.with_context(|| {
        format!(
            "deployed {service} at {tag}, but could not tag its images `{}<time>`, so the lifecycle policy does not protect them; run the deploy again",
            crate::retention::deployed_prefix(&ctx.stage.name)
        )
    })?;
    Ok(Report {
        stage: ctx.stage.name.clone(),
        commit: tag.to_string(),
        stack: service,
        images: states
            .into_iter()
            .zip(digests)
            .map(|(state, (name, digest))| DeployedImage { name, digest, service: state })
            .collect(),
    })
}

/// The commit the stage runs now, from its newest deployed tag, if this clone knows it.
async fn running_commit(ctx: &StageContext<'_>) -> Result<Option<String>> {
    let git = Git::open(&ctx.ws.root)?;
    for image in &ctx.ws.config.images {
        if let Some(commit) = crate::plan::runs(ctx, &git, image).await?.runs {
            return Ok(Some(commit));
        }
    }
    Ok(None)
}
