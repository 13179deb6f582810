//! Deploy a commit's images with `cdk deploy`, never an image that is not in ECR.

use anyhow::{Context, Result, bail};

use crate::{
    cdk::{Cdk, ImageContext},
    deployable, deployed_tags,
    exit::Verdict,
    stage::StageContext,
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
}

/// Checks that every image of `options.tag` is in ECR, then deploys the service stack with
/// `-c imageTag=<tag>`. A missing image or a failed `cdk deploy` is a [`Verdict`].
pub async fn deploy(ctx: &StageContext<'_>, options: &DeployOptions<'_>) -> Result<()> {
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

    let cdk = Cdk::new(ctx)?;
    let image = ImageContext { tag: tag.to_string(), digests: if options.pin_digest { digests } else { vec![] } };
    let service = config.service_stack(ctx.stage);
    ctx.target.before_deploy(&cdk, &service).await?;
    let status = cdk.deploy(&service, Some(&image), options.approve, options.cdk_args).await?;
    if !status.success() {
        bail!(Verdict(format!("cdk deploy of {service} failed ({status}); cdk's output above says why")));
    }
    eprintln!("deployed {service} at {tag}");
    // The stage's lifecycle rule keeps what it runs and its rollback window by these tags.
    deployed_tags::record(ctx, tag).await.with_context(|| {
        format!(
            "deployed {service} at {tag}, but could not tag its images `{}<time>`, so the lifecycle policy does not protect them; run the deploy again",
            crate::retention::deployed_prefix(&ctx.stage.name)
        )
    })?;
    Ok(())
}
