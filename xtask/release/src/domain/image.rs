//! One configured image made concrete for a commit and a stage: its build
//! context, build arguments, OCI labels and the key of its inputs.
//!
//! An image's inputs are its source (the context after ignore rules, the Dockerfile,
//! the build arguments but the commit, the target and the platform) and the base images
//! its `FROM` lines resolve to now: a patched base image is a new input, so the next
//! commit builds on it instead of reusing an image built on the old one.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use sha2::{Digest, Sha256};

use crate::{
    clients::git::ImageTag,
    domain::config::{Config, Image},
    domain::context::BuildContext,
    domain::dockerfile::{self, Base},
};

/// Prefix of the extra tag that records an image's inputs key in ECR, so an
/// unchanged image is found with one `DescribeImages` call.
pub const INPUTS_TAG_PREFIX: &str = "inputs-";

/// Labels a pushed image carries, for `check`: its source key, and each base image it was
/// built on with the digest that reference resolved to (`ref@digest`, space-separated).
pub const SOURCE_KEY_LABEL: &str = "xtask.inputs.source";
pub const BASE_IMAGES_LABEL: &str = "xtask.inputs.base-images";

pub struct Plan<'a> {
    pub image: &'a Image,
    pub tag: ImageTag,
    pub context: BuildContext,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Build arguments that count for the inputs key (all but the commit).
    keyed_args: BTreeMap<String, String>,
    dockerfile: std::path::PathBuf,
}

impl<'a> Plan<'a> {
    /// The plan to build `image` at `tag` for a stage whose build arguments are
    /// `stage_args` (over the image's own; [`crate::stage::StageContext::build_args`]).
    pub fn new(
        config: &Config,
        stage_args: &BTreeMap<String, String>,
        image: &'a Image,
        tag: &ImageTag,
        source: &str,
    ) -> Result<Plan<'a>> {
        let context_dir = config.root.join(&image.context);
        let dockerfile = config.root.join(&image.dockerfile);
        let context = BuildContext::new(&context_dir, &dockerfile)
            .with_context(|| format!("image `{}`: cannot read its build context", image.name))?;

        // Stage arguments override the image's own; the commit argument is set last.
        let mut build_args = image.build_args.clone();
        build_args.extend(stage_args.clone());
        let keyed_args = build_args.clone();
        build_args.insert(config.commit_arg.clone(), tag.to_string());

        let labels = BTreeMap::from([
            ("org.opencontainers.image.revision".to_string(), tag.commit.clone()),
            ("org.opencontainers.image.source".to_string(), source.to_string()),
            ("org.opencontainers.image.created".to_string(), rfc3339_now()),
            ("org.opencontainers.image.title".to_string(), image.name.clone()),
            ("org.opencontainers.image.version".to_string(), tag.to_string()),
        ]);
        Ok(Plan { image, tag: tag.clone(), context, build_args, labels, keyed_args, dockerfile })
    }

    /// The local name the build gets: `<repository>:<tag>`.
    /// The build arguments the inputs key covers: all but the commit.
    pub fn keyed_args(&self) -> &BTreeMap<String, String> {
        &self.keyed_args
    }

    pub fn local_name(&self) -> String {
        format!("{}:{}", self.image.repository, self.tag)
    }

    /// SHA-256 over the image's source, everything it is built from but the commit and the
    /// base images: the context's content (after ignore rules, Dockerfile included), the
    /// other build arguments, the target and the platform. It reads the whole context, so
    /// it is made only when asked.
    pub fn source_key(&self) -> Result<String> {
        source_key(&self.context, &self.context.digest()?, &self.keyed_args, self.image)
    }

    /// What the image would be built from now: its source key, its base images as they
    /// resolve now (see `resolve_bases`), and the inputs tag the two make.
    pub async fn inputs(&self, docker: &Docker) -> Result<Inputs> {
        let (context_key, files) = self.context.digest_and_files()?;
        let source_key = source_key(&self.context, &context_key, &self.keyed_args, self.image)?;
        let bases = resolve_bases(docker, &self.base_images()?).await?;
        let tag = inputs_tag(&inputs_key(&source_key, &bases));
        let sent = files.iter().map(|rel| self.context.root().join(rel)).collect();
        Ok(Inputs { source_key, bases, tag, sent })
    }

    /// The images the Dockerfile's `FROM` lines name, after build arguments.
    pub fn base_images(&self) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(&self.dockerfile)
            .with_context(|| format!("cannot read {}", self.dockerfile.display()))?;
        dockerfile::base_images(&text, &self.keyed_args).with_context(|| {
            format!("image `{}`: cannot read the base images of {}", self.image.name, self.dockerfile.display())
        })
    }

    /// `buildcache-<key>`: the tag of the image's build cache in ECR, for the inputs
    /// `inputs` (module [`build_cache`](crate::domain::build_cache)); `None` without a `cache-stage`.
    pub fn cache_tag(&self, inputs: &Inputs) -> Result<Option<String>> {
        let Some(stage) = &self.image.cache_stage else { return Ok(None) };
        let tag = crate::domain::build_cache::tag(&crate::domain::build_cache::KeyInputs {
            stage,
            dockerfile: &self.dockerfile,
            context_root: self.context.root(),
            source_key: &inputs.source_key,
            bases: &inputs.bases,
            keyed_args: &self.keyed_args,
            platform: self.image.platform.as_str(),
        })
        .with_context(|| format!("image `{}`: cannot key its build cache", self.image.name))?;
        Ok(Some(tag))
    }

    /// The labels that record the inputs on the image.
    pub fn input_labels(&self, source_key: &str, bases: &[Base]) -> BTreeMap<String, String> {
        let bases: Vec<String> = bases.iter().map(|b| format!("{}@{}", b.reference, b.digest)).collect();
        BTreeMap::from([
            (SOURCE_KEY_LABEL.to_string(), source_key.to_string()),
            (BASE_IMAGES_LABEL.to_string(), bases.join(" ")),
        ])
    }
}

/// An image's inputs (`Plan::inputs`).
pub struct Inputs {
    pub source_key: String,
    pub bases: Vec<Base>,
    /// `inputs-<key>`: the ECR tag of an image built from these inputs.
    pub tag: String,
    /// The files and links of the context the source key covers (absolute paths).
    pub sent: Vec<std::path::PathBuf>,
}

/// What `references` resolve to now, as the build would use them: an image the daemon has
/// is its registry digest (or, made locally and never pushed, its image ID); one it lacks
/// is the digest its registry reports.
pub async fn resolve_bases(docker: &Docker, references: &[String]) -> Result<Vec<Base>> {
    let mut bases = vec![];
    for reference in references {
        let digest = match docker.inspect_image(reference).await {
            Ok(inspect) => {
                let repository = reference.split_once('@').map_or(reference.as_str(), |(r, _)| r);
                let repository = match repository.rsplit_once(':') {
                    Some((name, tag)) if !tag.contains('/') => name,
                    _ => repository,
                };
                let from_registry = inspect.repo_digests.iter().flatten().find_map(|d| {
                    let (name, digest) = d.split_once('@')?;
                    (name == repository || repository.ends_with(&format!("/{name}")) || name.ends_with(&format!("/{repository}")))
                        .then(|| digest.to_string())
                });
                match from_registry.or(inspect.id) {
                    Some(digest) => digest,
                    None => bail!("the Docker daemon reported base image {reference} without an id"),
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => docker
                .inspect_registry_image(reference, None)
                .await
                .with_context(|| format!("base image {reference} is not in the Docker daemon and its registry did not say what it is; pull it (`docker pull {reference}`) or check the network"))?
                .descriptor
                .digest
                .with_context(|| format!("the registry of {reference} reported no digest"))?,
            Err(err) => return Err(err).with_context(|| format!("cannot inspect base image {reference}")),
        };
        bases.push(Base { reference: reference.clone(), digest });
    }
    Ok(bases)
}

/// The bases a `BASE_IMAGES_LABEL` records.
pub fn recorded_bases(label: &str) -> Vec<Base> {
    label
        .split_whitespace()
        .filter_map(|entry| {
            let (reference, digest) = entry.rsplit_once('@')?;
            Some(Base { reference: reference.to_string(), digest: digest.to_string() })
        })
        .collect()
}

/// The inputs key: the source key and every base image's digest.
pub fn inputs_key(source_key: &str, bases: &[Base]) -> String {
    if bases.is_empty() {
        // Nothing to add: images on `scratch` keep the key they always had.
        return source_key.to_string();
    }
    let mut hasher = Sha256::new();
    hasher.update(source_key.as_bytes());
    for base in bases {
        hasher.update([0]);
        hasher.update(base.reference.as_bytes());
        hasher.update([0]);
        hasher.update(base.digest.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// The ECR tag that records an inputs key.
pub fn inputs_tag(key: &str) -> String {
    format!("{INPUTS_TAG_PREFIX}{key}")
}

fn source_key(
    context: &BuildContext,
    context_key: &str,
    build_args: &BTreeMap<String, String>,
    image: &Image,
) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &str| {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    field("context", context_key);
    field("dockerfile", context.dockerfile_name());
    for (key, value) in build_args {
        field(&format!("arg:{key}"), value);
    }
    field("target", image.target.as_deref().unwrap_or(""));
    field("platform", image.platform.as_str());
    Ok(format!("{:x}", hasher.finalize()))
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

pub fn rfc3339(secs: u64) -> String {
    use aws_sdk_ecr::primitives::{DateTime, DateTimeFormat};
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    DateTime::from_secs(secs).fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_round_trip_through_the_label_and_change_the_key() {
        let bases = vec![
            Base { reference: "xtask-local/rust:host".into(), digest: "sha256:aa".into() },
            Base { reference: "debian@sha256:bb".into(), digest: "sha256:bb".into() },
        ];
        let label = bases.iter().map(|b| format!("{}@{}", b.reference, b.digest)).collect::<Vec<_>>().join(" ");
        assert_eq!(recorded_bases(&label), bases);
        assert_eq!(inputs_key("k", &[]), "k");
        let moved = vec![Base { digest: "sha256:cc".into(), ..bases[0].clone() }, bases[1].clone()];
        assert_ne!(inputs_key("k", &bases), inputs_key("k", &moved));
        assert_ne!(inputs_key("k", &bases), inputs_key("j", &bases));
    }

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_435_199), "2026-11-23T11:59:59Z");
    }
}
