//! Promotion: a commit's images go from the stage that built them to a stage that runs
//! what that one ran, with the same digest, never built again. Registry to registry over
//! the OCI distribution API, each side with its own stage's credentials: the blobs the
//! target lacks stream across, then the manifests are put with the same bytes, an index's
//! platform manifests first. What is already there is not sent again, so an interrupted
//! promotion finishes on a re-run.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::{
    clients::ecr::{self, Tagged},
    clients::registry_api::{self, RawManifest, Registry},
    domain::config::Image,
    domain::image::INPUTS_TAG_PREFIX,
    domain::retention,
    stage::StageContext,
    support::{
        exit::Verdict,
        progress::{Progress, Task},
    },
    workflows::attest::{self, Trust, Verified},
};

pub struct PromoteOptions<'a> {
    /// The commit's tag (its full SHA).
    pub tag: &'a str,
    /// Images by name; all configured images when empty.
    pub images: &'a [String],
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub commit: String,
    pub from: String,
    pub to: String,
    pub images: Vec<ImageReport>,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub name: String,
    pub repository: String,
    pub digest: String,
    pub action: Action,
    /// Blobs sent across, and their bytes.
    pub blobs_copied: usize,
    pub bytes_copied: u64,
    /// Blobs the target had already.
    pub blobs_present: usize,
    /// Tags the image has in the target now, of those promotion adds.
    pub tags: Vec<String>,
    /// The referrer holding the signed provenance that was verified and copied along.
    pub provenance: String,
    /// The trusted key that signed it.
    pub signer: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Copied (all or part: a re-run finishes what an interrupted one began).
    Promoted,
    /// The target had this very image under the commit's tag: nothing was sent.
    AlreadyThere,
}

/// What crossed for one image.
#[derive(Default)]
struct Counts {
    copied: usize,
    bytes: u64,
    present: usize,
}

/// The stage images of `target` come from (its `promote-from`), or an error that says so.
pub fn source_stage(target: &crate::domain::config::Stage) -> Result<&str> {
    target.promote_from.as_deref().with_context(|| {
        format!(
            "stage `{}` builds its own images (it has no `promote-from`); push to it instead: `cargo xtask push --stage {}`",
            target.name, target.name
        )
    })
}

/// Copies each image of `options.tag` from `source`'s ECR to `target`'s and reports.
pub async fn promote(
    source: &StageContext<'_>,
    target: &StageContext<'_>,
    options: &PromoteOptions<'_>,
) -> Result<Report> {
    let config = &target.ws.config;
    let images = config.select_images(options.images)?;
    let tag = options.tag;
    // Everything that can be refused is, before a byte moves. The source's image, with all
    // its tags, and its manifest.
    let mut sources = vec![];
    for image in &images {
        let Some(found) = ecr::image_by_tag(&source.ecr, &image.repository, tag).await? else {
            bail!(
                "{}:{tag} is not in stage `{}`'s ECR: only what that stage has can be promoted; push the commit there first (`cargo xtask push --stage {}`)",
                image.repository,
                source.stage.name,
                source.stage.name
            );
        };
        ecr::repository(&target.ecr, &image.repository, &target.bootstrap_hint()).await?;
        let manifest = ecr::manifest(&source.ecr, &image.repository, tag).await?;
        sources.push((manifest, found.image_tags().to_vec()));
    }
    // Only what the target trusts crosses: a statement about the very bytes, naming the
    // commit, signed by a key of the target's trust (the source's main key unless set).
    let from = Registry::new(source.registry().await?)?;
    let trust = Trust::of(target, Some(source)).await?;
    let mut proofs = vec![];
    for (image, (manifest, _)) in images.iter().zip(&sources) {
        match attest::find(&from, &image.repository, &manifest.digest, Some(tag), &trust).await? {
            Ok(verified) => proofs.push(verified),
            Err(unproven) => bail!(Verdict(format!(
                "refusing to promote {}:{tag} to stage `{}`: in stage `{}`, {unproven}; only an image its release path pushed and signed is promoted",
                image.repository, target.stage.name, source.stage.name
            ))),
        }
    }
    let to = Registry::new(target.registry().await?)?;
    let progress = Progress::detect();
    let mut reports = vec![];
    for ((image, (manifest, source_tags)), proof) in images.into_iter().zip(sources).zip(proofs) {
        let task = progress.task(&image.name);
        let images = (&manifest, source_tags.as_slice(), &proof);
        let report = promote_image(source, target, (&from, &to), image, images, tag, &task).await;
        match report {
            Ok(report) => reports.push(report),
            Err(err) => {
                task.abandon();
                return Err(err);
            }
        }
    }
    Ok(Report {
        commit: tag.to_string(),
        from: source.stage.name.clone(),
        to: target.stage.name.clone(),
        images: reports,
    })
}

async fn promote_image(
    source: &StageContext<'_>,
    target: &StageContext<'_>,
    (from, to): (&Registry, &Registry),
    image: &Image,
    (manifest, source_tags, proof): (&ecr::Manifest, &[String], &Verified),
    tag: &str,
    task: &Task,
) -> Result<ImageReport> {
    let started = Instant::now();
    let repository = &image.repository;
    let digest = &manifest.digest;
    let mut counts = Counts::default();
    let action = match ecr::image_by_tag(&target.ecr, repository, tag).await? {
        Some(there) if there.image_digest() == Some(digest.as_str()) => Action::AlreadyThere,
        Some(there) => bail!(
            "{repository}:{tag} in stage `{}` is another image ({}, not {digest} as in `{}`); its tags are immutable, so it cannot be promoted over: find out who pushed it",
            target.stage.name,
            there.image_digest().unwrap_or("no digest"),
            source.stage.name
        ),
        None => {
            let raw = RawManifest { body: manifest.body.clone().into(), media_type: manifest.media_type.clone() };
            task.step(format!("promoting {repository}@{} to stage `{}`", short(digest), target.stage.name));
            copy_manifest(from, to, repository, &raw, &mut counts, task).await?;
            let put = to.put_manifest(repository, tag, &raw).await?;
            if !put.is_empty() && put != *digest {
                bail!("the registry of stage `{}` stored {repository}:{tag} as {put}, not {digest}", target.stage.name);
            }
            Action::Promoted
        }
    };
    // The inputs tag travels with the image (a later commit with the same inputs finds it),
    // and so does its channel tag, so the target's lifecycle rules count it as the source's do.
    let mut tags = vec![tag.to_string()];
    let travelling = [INPUTS_TAG_PREFIX, retention::MAIN_PREFIX, retention::PR_PREFIX];
    let extra = source_tags.iter().filter(|t| travelling.iter().any(|prefix| t.starts_with(prefix)));
    for extra_tag in extra {
        match ecr::put_tag(&target.ecr, repository, manifest, extra_tag).await? {
            Tagged::Added | Tagged::AlreadyThere => tags.push(extra_tag.clone()),
            // Another image with these inputs was promoted earlier: it keeps the tag.
            Tagged::Taken(_) => {}
        }
    }
    // The provenance goes along, same bytes, so the target's deploy verifies it there.
    if to.manifest(repository, &proof.referrer).await?.is_none() {
        attest::copy(from, to, repository, digest, &proof.referrer).await?;
    }
    // Confirmed in the target's ECR, as `push` confirms what it pushed.
    let confirmed = ecr::image_by_tag(&target.ecr, repository, tag).await?;
    if confirmed.as_ref().and_then(|d| d.image_digest()) != Some(digest.as_str()) {
        bail!(
            "{repository}:{tag} is not in stage `{}`'s ECR after promotion; run the command again",
            target.stage.name
        );
    }
    let how = match action {
        Action::AlreadyThere => "already there".to_string(),
        Action::Promoted => format!(
            "promoted in {:.1}s: {} blobs copied ({}), {} present",
            started.elapsed().as_secs_f64(),
            counts.copied,
            megabytes(counts.bytes),
            counts.present
        ),
    };
    task.finish(format!("{repository}:{} @ {} {how}", short(tag), short(digest)));
    Ok(ImageReport {
        name: image.name.clone(),
        repository: repository.clone(),
        digest: digest.clone(),
        action,
        blobs_copied: counts.copied,
        bytes_copied: counts.bytes,
        blobs_present: counts.present,
        tags,
        provenance: proof.referrer.clone(),
        signer: proof.signer.clone(),
    })
}

/// Copies what `manifest` refers to: for an index, each platform's manifest (with its
/// blobs), put by digest; for an image, its config and layers.
async fn copy_manifest(
    from: &Registry,
    to: &Registry,
    repository: &str,
    manifest: &RawManifest,
    counts: &mut Counts,
    task: &Task,
) -> Result<()> {
    let references = registry_api::references(&manifest.body)?;
    for (digest, size) in &references.blobs {
        if to.has_blob(repository, digest).await? {
            counts.present += 1;
            continue;
        }
        task.detail(format!("copying blob {} ({})", short(digest), megabytes(*size)));
        to.copy_blob(from, repository, digest, *size)
            .await
            .with_context(|| format!("cannot copy blob {digest} of `{repository}`; run the command again to resume"))?;
        counts.copied += 1;
        counts.bytes += size;
    }
    for child in &references.manifests {
        if to.manifest(repository, child).await?.is_some() {
            continue;
        }
        let inner = from
            .manifest(repository, child)
            .await?
            .with_context(|| format!("the index of `{repository}` lists {child}, which its registry does not have"))?;
        Box::pin(copy_manifest(from, to, repository, &inner, counts, task)).await?;
        to.put_manifest(repository, child, &inner).await?;
    }
    Ok(())
}

fn short(reference: &str) -> &str {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    crate::support::text::prefix(hex, 12)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
