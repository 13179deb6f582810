//! Add a tag to an image already in ECR (`BatchGetImage` + `PutImage`, the same manifest
//! bytes), refused when the tag names another image: the repositories' tags are immutable.

use anyhow::{Result, bail};

use crate::{
    clients::ecr::{self, Tagged},
    domain::config::Image,
    stage::StageContext,
    support::exit::Verdict,
};

/// What `retag` did to the image with `digest`.
pub struct Retagged {
    pub digest: String,
    /// `false`: the tag already named this image; nothing changed.
    pub added: bool,
}

/// Tags the image `from` (a tag or a `sha256:` digest) of `image`'s repository `new_tag`; an
/// absent image or a tag taken by another is a [`Verdict`].
pub async fn retag(ctx: &StageContext<'_>, image: &Image, from: &str, new_tag: &str) -> Result<Retagged> {
    let (stage, repository) = (&ctx.stage.name, &image.repository);
    let manifest = if from.starts_with("sha256:") {
        ecr::manifest_by_digest(&ctx.ecr, repository, from).await?
    } else {
        if ecr::image_by_tag(&ctx.ecr, repository, from).await?.is_none() {
            bail!(Verdict(format!(
                "{repository}:{from} is not in ECR (stage {stage}); `cargo xtask images --stage {stage}` lists what is"
            )));
        }
        ecr::manifest(&ctx.ecr, repository, from).await?
    };
    let digest = manifest.digest.clone();
    match ecr::put_tag(&ctx.ecr, repository, &manifest, new_tag).await? {
        Tagged::Added => Ok(Retagged { digest, added: true }),
        Tagged::AlreadyThere => Ok(Retagged { digest, added: false }),
        Tagged::Taken(other) => bail!(Verdict(format!(
            "refusing to retag: {repository}:{new_tag} already names another image ({other}, not {digest}); the repository's tags are immutable: pick another tag, or `cargo xtask untag {}:{new_tag}` first if that image may lose it",
            image.name
        ))),
    }
}
