//! What `gc` deletes: the images the lifecycle policy expires (evaluated here with ECR's
//! semantics, see `retention`), never one a stage runs or can roll back to, and untagged
//! manifests that no remaining index references.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use anyhow::Result;

use crate::{
    clients::ecr,
    domain::{
        inventory::Inventory,
        retention::{self, Policy, Settings},
    },
    stage::StageContext,
};

/// An untagged manifest younger than this is left alone: an index's platform manifests are
/// pushed before the index that references them.
pub const UNTAGGED_GRACE_MILLIS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Doomed {
    pub digest: String,
    pub tags: Vec<String>,
    pub reason: String,
    /// For a referrer (the signed provenance of an image): that image. It is deleted only
    /// once its image is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// What gc would delete from one repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepositoryPlan {
    pub repository: String,
    /// How many images the repository holds.
    #[serde(skip)]
    pub images: usize,
    pub delete: Vec<Doomed>,
}

impl RepositoryPlan {
    /// How many images (not their signed provenance) the plan deletes.
    pub fn images_doomed(&self) -> usize {
        self.delete.iter().filter(|d| d.subject.is_none()).count()
    }
}

/// What the lifecycle policy (with `keep` images of main instead of the settings' number)
/// expires now in each configured repository of the stage, with the reasons.
pub async fn list(ctx: &StageContext<'_>, keep: Option<u32>) -> Result<Vec<RepositoryPlan>> {
    let mut settings = Settings::of(&ctx.ws.config);
    if let Some(keep) = keep {
        settings.keep_main = keep;
    }
    let policy = retention::policy(&settings);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let mut plans = vec![];
    for image in &ctx.ws.config.images {
        let inventory = Inventory::read(&ctx.ecr, &image.repository).await?;
        let delete = plan(&inventory, &policy, settings.rollback_window, now);
        let images = inventory.images.iter().filter(|i| !inventory.subjects.contains_key(&i.digest)).count();
        plans.push(RepositoryPlan { repository: image.repository.clone(), images, delete });
    }
    Ok(plans)
}

/// What [`delete`] did with each image of a plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Deleted now.
    pub deleted: Vec<String>,
    /// Already gone (another gc, a lifecycle rule): counted as done.
    pub gone: Vec<String>,
    /// Left alone, with the reason: their tags changed since the listing.
    pub skipped: Vec<Doomed>,
}

/// Deletes what `plan` lists, each image only as it was listed: its tags are read again
/// right before, and one whose tags changed since (a retag, a deploy's tag) is skipped; it
/// is deleted by removing exactly the listed tags (see [`ecr::delete_by_tags`]), so a tag
/// added after that read still keeps it. An image ECR no longer has counts as done.
pub async fn delete(ctx: &StageContext<'_>, plan: &RepositoryPlan) -> Result<Applied> {
    let mut applied = Applied::default();
    let (referrers, images): (Vec<&Doomed>, Vec<&Doomed>) = plan.delete.iter().partition(|d| d.subject.is_some());
    for doomed in images {
        let Some(now) = ecr::image_by_digest(&ctx.ecr, &plan.repository, &doomed.digest).await? else {
            applied.gone.push(doomed.digest.clone());
            continue;
        };
        let mut tags: Vec<String> = now.image_tags().to_vec();
        tags.sort();
        let mut listed = doomed.tags.clone();
        listed.sort();
        if tags != listed {
            let added: Vec<&String> = tags.iter().filter(|t| !listed.contains(t)).collect();
            let reason = if added.is_empty() {
                "its tags changed since the listing; left for the next gc".to_string()
            } else {
                let added: Vec<&str> = added.iter().map(|t| t.as_str()).collect();
                format!("tagged {} since the listing; left for the next gc", added.join(", "))
            };
            applied.skipped.push(Doomed { digest: doomed.digest.clone(), tags, reason, subject: None });
            continue;
        }
        if ecr::delete_by_tags(&ctx.ecr, &plan.repository, &doomed.digest, &doomed.tags).await? {
            applied.deleted.push(doomed.digest.clone());
        } else {
            applied.gone.push(doomed.digest.clone());
        }
    }
    // The provenance of an image goes only once the image is gone: never that of an image
    // kept because it gained a tag since the listing.
    for doomed in referrers {
        let subject = doomed.subject.as_deref().unwrap_or_default();
        let image_gone = applied.deleted.iter().chain(&applied.gone).any(|d| d == subject)
            || ecr::image_by_digest(&ctx.ecr, &plan.repository, subject).await?.is_none();
        if !image_gone {
            let reason = format!("its image {subject} stays; left with it");
            applied.skipped.push(Doomed { reason, ..doomed.clone() });
            continue;
        }
        if ecr::delete_by_tags(&ctx.ecr, &plan.repository, &doomed.digest, &[]).await? {
            applied.deleted.push(doomed.digest.clone());
        } else {
            applied.gone.push(doomed.digest.clone());
        }
    }
    Ok(applied)
}

/// The images of `inventory` to delete, newest first; `now` in milliseconds since the epoch.
pub fn plan(inventory: &Inventory, policy: &Policy, window: u32, now: i64) -> Vec<Doomed> {
    let images = &inventory.images;
    let expired = retention::evaluate(policy, &inventory.facts());
    let protected = inventory.protected(window);
    let mut doomed: BTreeSet<usize> = BTreeSet::new();
    let mut reasons = vec![String::new(); images.len()];
    for (i, rule) in expired.iter().enumerate() {
        let Some(priority) = rule else { continue };
        if protected.contains(&i) {
            continue;
        }
        let rule = policy.rules.iter().find(|r| r.rule_priority == *priority).expect("the rule evaluated");
        reasons[i] = format!("past lifecycle rule {priority}: {}", rule.description.to_lowercase());
        doomed.insert(i);
    }
    // An index that stays keeps every manifest it references; one that goes takes them along
    // (unless another index that stays references them too).
    let staying_reference = |digest: &str, doomed: &BTreeSet<usize>| {
        inventory.referenced_by.get(digest).is_some_and(|indexes| {
            indexes
                .iter()
                .any(|index| images.iter().position(|i| &i.digest == index).is_none_or(|at| !doomed.contains(&at)))
        })
    };
    loop {
        let keep: Vec<usize> =
            doomed.iter().copied().filter(|&i| staying_reference(&images[i].digest, &doomed)).collect();
        if keep.is_empty() {
            break;
        }
        for i in keep {
            doomed.remove(&i);
        }
    }
    for (i, image) in images.iter().enumerate() {
        if !image.tags.is_empty() || doomed.contains(&i) || staying_reference(&image.digest, &doomed) {
            continue;
        }
        if inventory.subjects.contains_key(&image.digest) {
            continue;
        }
        if let Some(indexes) = inventory.referenced_by.get(&image.digest) {
            reasons[i] = format!("untagged platform manifest of deleted index {}", indexes.join(", "));
        } else if now - image.pushed_at >= UNTAGGED_GRACE_MILLIS {
            reasons[i] = "untagged, referenced by no index, older than a day".to_string();
        } else {
            continue;
        }
        doomed.insert(i);
    }
    // A referrer goes with its image, or, once its image is gone, after the grace period.
    let mut subjects = vec![None; images.len()];
    for (i, image) in images.iter().enumerate() {
        let Some(subject) = inventory.subjects.get(&image.digest) else { continue };
        match images.iter().position(|i| &i.digest == subject) {
            Some(at) if doomed.contains(&at) => {
                reasons[i] = format!("signed provenance of deleted image {subject}");
            }
            None if now - image.pushed_at >= UNTAGGED_GRACE_MILLIS => {
                reasons[i] = format!("signed provenance of image {subject}, which is gone");
            }
            _ => continue,
        }
        subjects[i] = Some(subject.clone());
        doomed.insert(i);
    }
    // The images, newest first, then their provenance (deleted after them).
    let (mut listed, referrers): (Vec<usize>, Vec<usize>) = doomed.into_iter().partition(|&i| subjects[i].is_none());
    listed.extend(referrers);
    listed
        .into_iter()
        .map(|i| Doomed {
            digest: images[i].digest.clone(),
            tags: images[i].tags.clone(),
            reason: reasons[i].clone(),
            subject: subjects[i].clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{domain::inventory::Image, domain::retention::Settings};

    fn image(digest: &str, tags: &[&str], pushed_at: i64) -> Image {
        Image {
            digest: digest.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at,
            size_bytes: None,
            media_type: None,
            scan: None,
        }
    }

    fn policy() -> Policy {
        retention::policy(&Settings { stages: vec!["prod".into()], rollback_window: 2, keep_main: 1, keep_pr: 1 })
    }

    #[test]
    fn never_a_deployed_image_nor_an_index_child_while_the_index_stays() {
        let day = UNTAGGED_GRACE_MILLIS;
        let mut images = vec![
            image("newest", &["e", "main-e"], 10 * day),
            image("index", &["d", "main-d", "deployed-prod.20261201T000000Z"], 9 * day),
            image("child", &[], 9 * day),
            image("old-index", &["c", "main-c"], 8 * day),
            image("old-child", &[], 8 * day),
            image("pr", &["b", "pr-b"], 7 * day),
            image("pr-older", &["a", "pr-a"], 6 * day),
            image("orphan", &[], 5 * day),
            image("fresh-orphan", &[], 11 * day - 1),
        ];
        for index in images.iter_mut().filter(|i| i.digest.ends_with("index")) {
            index.media_type = Some("application/vnd.oci.image.index.v1+json".to_string());
        }
        images.sort_by_key(|i| std::cmp::Reverse(i.pushed_at));
        let referenced_by = BTreeMap::from([
            ("child".to_string(), vec!["index".to_string()]),
            ("old-child".to_string(), vec!["old-index".to_string()]),
        ]);
        let inventory = Inventory { images, referenced_by, subjects: BTreeMap::new() };
        let plan = plan(&inventory, &policy(), 2, 11 * day);
        let digests: Vec<&str> = plan.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, vec!["old-index", "old-child", "pr-older", "orphan"], "{plan:#?}");
        assert!(plan[0].reason.contains("past lifecycle rule 2"), "{}", plan[0].reason);
        assert!(plan[1].reason.contains("deleted index old-index"), "{}", plan[1].reason);
    }

    /// DescribeImages may leave out `imageManifestMediaType`; the index is then known from
    /// its manifest (which may itself leave out `mediaType`, as OCI allows), and its
    /// untagged platform manifests stay with it past the day's grace.
    #[test]
    fn an_index_without_a_media_type_in_describe_images_keeps_its_children() {
        let day = UNTAGGED_GRACE_MILLIS;
        let images = vec![
            image("sha256:index", &["b", "main-b"], 10 * day),
            image("sha256:child", &[], 10 * day),
            image("sha256:orphan", &[], 10 * day),
        ];
        let manifest = |digest: &str, body: serde_json::Value| {
            let body = body.to_string();
            let media_type = ecr::media_type_of(&body).unwrap();
            (digest.to_string(), ecr::Manifest { body, media_type, digest: digest.to_string() })
        };
        let image_body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "digest": "sha256:config" },
            "layers": [],
        });
        let manifests = BTreeMap::from([
            manifest(
                "sha256:index",
                serde_json::json!({ "schemaVersion": 2, "manifests": [{ "digest": "sha256:child" }] }),
            ),
            manifest("sha256:child", image_body.clone()),
            manifest("sha256:orphan", image_body),
        ]);
        let inventory = Inventory::of("it/app", images, &manifests).unwrap();
        let plan = plan(&inventory, &policy(), 2, 20 * day);
        let digests: Vec<&str> = plan.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, vec!["sha256:orphan"], "{plan:#?}");
        let index = &inventory.images[inventory.by_tag("main-b").unwrap()];
        assert_eq!(index.media_type.as_deref(), Some("application/vnd.oci.image.index.v1+json"));
    }

    #[test]
    fn a_referrer_stays_with_its_image_and_goes_with_it() {
        let day = UNTAGGED_GRACE_MILLIS;
        let images = vec![
            image("kept", &["b", "main-b"], 10 * day),
            image("kept-provenance", &[], 10 * day),
            image("expired", &["a", "main-a"], 9 * day),
            image("expired-provenance", &[], 9 * day),
            image("orphan-provenance", &[], 8 * day),
        ];
        let subjects = BTreeMap::from([
            ("kept-provenance".to_string(), "kept".to_string()),
            ("expired-provenance".to_string(), "expired".to_string()),
            ("orphan-provenance".to_string(), "gone".to_string()),
        ]);
        let inventory = Inventory { images, referenced_by: BTreeMap::new(), subjects };
        let plan = plan(&inventory, &policy(), 2, 20 * day);
        let digests: Vec<&str> = plan.iter().map(|d| d.digest.as_str()).collect();
        assert_eq!(digests, vec!["expired", "expired-provenance", "orphan-provenance"], "{plan:#?}");
        assert!(plan[1].reason.contains("signed provenance of deleted image expired"), "{}", plan[1].reason);
        assert_eq!(plan[1].subject.as_deref(), Some("expired"));
        assert!(plan[2].reason.contains("which is gone"), "{}", plan[2].reason);
    }
}
