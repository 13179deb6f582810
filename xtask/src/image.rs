//! One configured image made concrete for a commit and a stage: its build
//! context, build arguments, OCI labels and the key of its inputs.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::{
    config::{Config, Image, Stage},
    context::BuildContext,
    git::ImageTag,
};

/// Prefix of the extra tag that records an image's inputs key in ECR, so an
/// unchanged image is found with one `DescribeImages` call.
pub const INPUTS_TAG_PREFIX: &str = "inputs-";

pub struct Plan<'a> {
    pub image: &'a Image,
    pub tag: ImageTag,
    pub context: BuildContext,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Build arguments that count for the inputs key (all but the commit).
    keyed_args: BTreeMap<String, String>,
}

impl<'a> Plan<'a> {
    pub fn new(config: &Config, stage: &Stage, image: &'a Image, tag: &ImageTag, source: &str) -> Result<Plan<'a>> {
        let context_dir = config.root.join(&image.context);
        let dockerfile = config.root.join(&image.dockerfile);
        let context = BuildContext::new(&context_dir, &dockerfile)
            .with_context(|| format!("image `{}`: cannot read its build context", image.name))?;

        // Stage arguments override the image's own; the commit argument is set last.
        let mut build_args = image.build_args.clone();
        build_args.extend(stage.build_args.clone());
        let keyed_args = build_args.clone();
        build_args.insert(config.commit_arg.clone(), tag.to_string());

        let labels = BTreeMap::from([
            ("org.opencontainers.image.revision".to_string(), tag.commit.clone()),
            ("org.opencontainers.image.source".to_string(), source.to_string()),
            ("org.opencontainers.image.created".to_string(), rfc3339_now()),
            ("org.opencontainers.image.title".to_string(), image.name.clone()),
            ("org.opencontainers.image.version".to_string(), tag.to_string()),
        ]);
        Ok(Plan { image, tag: tag.clone(), context, build_args, labels, keyed_args })
    }

    /// The local name the build gets: `<repository>:<tag>`.
    pub fn local_name(&self) -> String {
        format!("{}:{}", self.image.repository, self.tag)
    }

    /// SHA-256 over everything the image is built from except the commit: the context's
    /// content (after ignore rules, Dockerfile included), the other build arguments, the
    /// target and the platform. It reads the whole context, so it is made only when asked.
    pub fn inputs_key(&self) -> Result<String> {
        inputs_key(&self.context, &self.keyed_args, self.image)
    }
}

/// The ECR tag that records an inputs key.
pub fn inputs_tag(key: &str) -> String {
    format!("{INPUTS_TAG_PREFIX}{key}")
}

fn inputs_key(context: &BuildContext, build_args: &BTreeMap<String, String>, image: &Image) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &str| {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    };
    field("context", &context.digest()?);
    field("dockerfile", context.dockerfile_name());
    for (key, value) in build_args {
        field(&format!("arg:{key}"), value);
    }
    field("target", image.target.as_deref().unwrap_or(""));
    field("platform", &image.platform);
    Ok(format!("{:x}", hasher.finalize()))
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

pub(crate) fn rfc3339(secs: u64) -> String {
    use aws_sdk_ecr::primitives::{DateTime, DateTimeFormat};
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    DateTime::from_secs(secs).fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_435_199), "2026-11-23T11:59:59Z");
    }
}
