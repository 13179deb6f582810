//! A repository's images as the retention rules see them: tags, push time, size, scan
//! summary, what each stage runs and ran, and which untagged manifests an index references.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    clients::ecr,
    domain::retention::{self, Facts},
};

#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub digest: String,
    pub tags: Vec<String>,
    /// Milliseconds since the epoch.
    #[serde(skip)]
    pub pushed_at: i64,
    pub size_bytes: Option<i64>,
    pub media_type: Option<String>,
    /// Scan findings by severity, when ECR has a scan summary.
    pub scan: Option<BTreeMap<String, i32>>,
}

pub struct Inventory {
    /// Newest first.
    pub images: Vec<Image>,
    /// Each manifest an index in the repository references, and the indexes that do.
    pub referenced_by: BTreeMap<String, Vec<String>>,
    /// Each referrer (an untagged manifest about an image, such as its signed provenance),
    /// and the image it is about (its `subject`).
    pub subjects: BTreeMap<String, String>,
}

/// Whether a stage runs an image or ran it: `runs` and `ran` in `images` and its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Use {
    Runs,
    Ran,
}

impl std::fmt::Display for Use {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Use::Runs => "runs",
            Use::Ran => "ran",
        })
    }
}

/// A stage's deployment of an image, from its `deployed-<stage>.<time>` tags.
#[derive(Debug, Clone, Serialize)]
pub struct StageUse {
    pub stage: String,
    /// Whether the stage runs it now (its newest deployment) or ran it before.
    pub status: Use,
    /// When it was deployed (the newest deployment of this image to the stage), RFC 3339.
    pub since: String,
    /// Within the stage's rollback window (never expired, never deleted).
    pub in_rollback_window: bool,
}

impl Inventory {
    /// Reads every image of `repository`, and the manifests each index lists.
    pub async fn read(client: &aws_sdk_ecr::Client, repository: &str) -> Result<Inventory> {
        let images: Vec<Image> = ecr::images(client, repository)
            .await?
            .into_iter()
            .filter_map(|d| {
                let scan = d
                    .image_scan_findings_summary()
                    .and_then(|s| s.finding_severity_counts())
                    .map(|counts| counts.iter().map(|(severity, n)| (severity.as_str().to_string(), *n)).collect());
                Some(Image {
                    digest: d.image_digest()?.to_string(),
                    tags: d.image_tags().to_vec(),
                    pushed_at: d.image_pushed_at().map_or(0, |t| t.to_millis().unwrap_or(0)),
                    size_bytes: d.image_size_in_bytes(),
                    media_type: d.image_manifest_media_type().map(str::to_owned),
                    scan,
                })
            })
            .collect();
        // Each manifest the inventory must see: an index's (which manifests it references),
        // that of an image whose media type DescribeImages left out (the API does not
        // promise `imageManifestMediaType`: it may be an index), and an untagged one's (it
        // may be a referrer).
        let mut manifests = BTreeMap::new();
        for image in images.iter().filter(|i| i.media_type.as_deref().is_none_or(ecr::is_index) || i.tags.is_empty()) {
            let manifest = ecr::manifest_by_digest(client, repository, &image.digest).await?;
            manifests.insert(image.digest.clone(), manifest);
        }
        Inventory::of(repository, images, &manifests)
    }

    /// The inventory of `images` (as DescribeImages gives them) with `manifests`, by digest:
    /// those of indexes, of images without a media type, and of untagged images. An image
    /// without a media type takes its manifest's: an index is known as one whether or not
    /// DescribeImages said so, so the manifests it references stay while it stays.
    pub fn of(
        repository: &str,
        mut images: Vec<Image>,
        manifests: &BTreeMap<String, ecr::Manifest>,
    ) -> Result<Inventory> {
        for image in images.iter_mut().filter(|i| i.media_type.is_none()) {
            image.media_type = manifests.get(&image.digest).map(|m| m.media_type.clone());
        }
        images.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then_with(|| a.digest.cmp(&b.digest)));
        let body = |image: &Image, what: &str| -> Result<serde_json::Value> {
            let manifest = manifests
                .get(&image.digest)
                .with_context(|| format!("the {what} {repository}@{} was not read", image.digest))?;
            serde_json::from_str(&manifest.body)
                .with_context(|| format!("the {what} {repository}@{} is not JSON", image.digest))
        };
        let mut referenced_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for index in images.iter().filter(|i| i.media_type.as_deref().is_some_and(ecr::is_index)) {
            for child in body(index, "index")?["manifests"].as_array().into_iter().flatten() {
                if let Some(digest) = child["digest"].as_str() {
                    referenced_by.entry(digest.to_string()).or_default().push(index.digest.clone());
                }
            }
        }
        // A referrer (signed provenance: an untagged manifest whose `subject` is an image)
        // belongs to its subject: it stays while the image stays, and goes with it.
        let mut subjects = BTreeMap::new();
        for untagged in
            images.iter().filter(|i| i.tags.is_empty() && !i.media_type.as_deref().is_some_and(ecr::is_index))
        {
            if let Some(subject) = body(untagged, "manifest")?["subject"]["digest"].as_str() {
                subjects.insert(untagged.digest.clone(), subject.to_string());
            }
        }
        Ok(Inventory { images, referenced_by, subjects })
    }

    pub fn facts(&self) -> Vec<Facts<'_>> {
        self.images.iter().map(|i| Facts { tags: &i.tags, pushed_at: i.pushed_at }).collect()
    }

    /// The image `tag` names.
    pub fn by_tag(&self, tag: &str) -> Option<usize> {
        self.images.iter().position(|i| i.tags.iter().any(|t| t == tag))
    }

    /// Images a stage runs or can roll back to (the newest `window` deployed to each stage).
    pub fn protected(&self, window: u32) -> BTreeSet<usize> {
        retention::protected(&self.facts(), window)
    }

    /// Per image, the stages that run or ran it.
    pub fn stage_uses(&self, window: u32) -> Vec<Vec<StageUse>> {
        let mut uses = vec![vec![]; self.images.len()];
        for (stage, list) in retention::deployments(&self.facts()) {
            for (rank, (i, ts)) in list.iter().enumerate() {
                uses[*i].push(StageUse {
                    stage: stage.clone(),
                    status: if rank == 0 { Use::Runs } else { Use::Ran },
                    since: timestamp_rfc3339(ts),
                    in_rollback_window: rank < window as usize,
                });
            }
        }
        uses
    }
}

/// `20261201T034501Z` as `2026-12-01T03:45:01Z`.
pub fn timestamp_rfc3339(ts: &str) -> String {
    if ts.len() != 16 {
        return ts.to_string();
    }
    format!("{}-{}-{}T{}:{}:{}Z", &ts[0..4], &ts[4..6], &ts[6..8], &ts[9..11], &ts[11..13], &ts[13..15])
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_read_as_rfc3339() {
        assert_eq!(super::timestamp_rfc3339("20261201T034501Z"), "2026-12-01T03:45:01Z");
    }
}
