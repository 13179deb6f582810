//! Which images a repository keeps, from one source: the ECR lifecycle policy built from
//! the settings (the CDK app sets it on every repository verbatim), and an evaluator of
//! such a policy with ECR's semantics, which `gc`, `untag` and `images` use.
//!
//! The tags the rules select:
//!
//! - `deployed-<stage>.<UTC timestamp>`: added by `deploy` to each image it deployed; `deploy`
//!   keeps them on the last `rollback-window` images of the stage only (one each, its newest),
//!   so the stage's rule (count = the window) never has more images than it keeps, whatever
//!   order they were pushed in (the rule counts by push time);
//! - `main-<tag>`: added by `push` to images of commits on the main branch;
//! - `pr-<tag>`: added by `push` to images of any other commit (pull requests);
//! - `buildcache-<key>`: the build cache `push` exports (module `build_cache`); only the
//!   newest few serve a build, the cache of the current lock file among them.
//!
//! ECR's evaluation rules (<https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html>,
//! "Lifecycle policy evaluation rules"), which this module relies on and implements:
//! "An image that matches the tagging requirements of a rule cannot be expired by a rule
//! with a lower priority." and "Rules can never mark images that are marked by higher
//! priority rules, but can still identify them as if they haven't been expired." and
//! "With countType = imageCountMoreThan, images are sorted from youngest to oldest based on
//! pushed_at_time and then all images greater than the specified count are expired."
//! So the deployed rules come first, then main's, then pull requests': a deployed image
//! can be expired by no count rule below, and pull-request pushes never count against main.
//!
//! There is no rule for untagged images, and no `tagStatus: any` rule: an image index's
//! per-platform manifests have no tags, and the documentation says nothing of the evaluator
//! sparing manifests an index still references. `gc` deletes untagged manifests that no
//! index references.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::config::Config;

/// Prefix of the tags `deploy` adds: `deployed-<stage>.<timestamp>`.
pub const DEPLOYED_PREFIX: &str = "deployed-";
/// Prefix of the channel tag of an image of a commit on the main branch.
pub const MAIN_PREFIX: &str = "main-";
/// Prefix of the channel tag of an image of any other commit (a pull request's).
pub const PR_PREFIX: &str = "pr-";
/// How many build-cache images a repository keeps.
pub const KEEP_CACHE_IMAGES: u32 = 5;

/// `deployed-<stage>.`: the prefix of one stage's deployed tags. A stage name holds no `.`,
/// so no stage's prefix selects another's tags (`deployed-local.` never matches
/// `deployed-local-prod.…`).
pub fn deployed_prefix(stage: &str) -> String {
    format!("{DEPLOYED_PREFIX}{stage}.")
}

/// `deployed-<stage>.<timestamp>`, the timestamp as `20261201T034501Z` (UTC).
pub fn deployed_tag(stage: &str, timestamp: &str) -> String {
    format!("{}{timestamp}", deployed_prefix(stage))
}

/// Now (UTC) as a deployed tag's timestamp: `20261201T034501Z`.
pub fn timestamp_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    crate::domain::image::rfc3339(secs).replace(['-', ':'], "")
}

/// The stage and timestamp of a `deployed-<stage>.<timestamp>` tag.
pub fn parse_deployed(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix(DEPLOYED_PREFIX)?;
    let (stage, timestamp) = rest.split_at_checked(rest.len().checked_sub(17)?)?;
    let timestamp = timestamp.strip_prefix('.')?;
    let b = timestamp.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let well_formed = b.len() == 16 && digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z';
    (well_formed && !stage.is_empty()).then_some((stage, timestamp))
}

/// An ECR lifecycle policy, as the `LifecyclePolicyText` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub rule_priority: u32,
    pub description: String,
    pub selection: Selection,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// `tagged`, `untagged` or `any`.
    pub tag_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix_list: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_pattern_list: Option<Vec<String>>,
    /// Only `imageCountMoreThan` is built here; the evaluator marks nothing by another.
    pub count_type: String,
    pub count_number: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
}

/// The numbers the policy is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub stages: Vec<String>,
    pub rollback_window: u32,
    pub keep_main: u32,
    pub keep_pr: u32,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        Settings {
            stages: config.stages.keys().cloned().collect(),
            rollback_window: config.rollback_window,
            keep_main: config.keep_images,
            keep_pr: config.keep_pr_images,
        }
    }
}

/// The policy every repository gets: per stage, its deployed images (the rollback window);
/// then main's last `keep-images`; then pull requests' last `keep-pr-images`; then the
/// newest build-cache images; last, images
/// with none of these tags (pushed before channel tags existed), counted among all tagged
/// images as before.
pub fn policy(settings: &Settings) -> Policy {
    let rule = |priority: u32, description: String, prefix: Option<String>, count: u32| Rule {
        rule_priority: priority,
        description,
        selection: Selection {
            tag_status: "tagged".to_string(),
            tag_pattern_list: prefix.is_none().then(|| vec!["*".to_string()]),
            tag_prefix_list: prefix.map(|p| vec![p]),
            count_type: "imageCountMoreThan".to_string(),
            count_number: count,
        },
        action: Action { kind: "expire".to_string() },
    };
    let mut rules = vec![];
    for stage in &settings.stages {
        let n = settings.rollback_window;
        rules.push(rule(
            rules.len() as u32 + 1,
            format!("Keep the last {n} images deployed to stage {stage} (its rollback window)"),
            Some(deployed_prefix(stage)),
            n,
        ));
    }
    let (main, pr) = (settings.keep_main, settings.keep_pr);
    let next = rules.len() as u32 + 1;
    rules.push(rule(next, format!("Keep the last {main} images of commits on main"), Some(MAIN_PREFIX.into()), main));
    rules.push(rule(next + 1, format!("Keep the last {pr} pull-request images"), Some(PR_PREFIX.into()), pr));
    let cache = KEEP_CACHE_IMAGES;
    rules.push(rule(
        next + 2,
        format!("Keep the last {cache} build-cache images"),
        Some(crate::domain::build_cache::CACHE_TAG_PREFIX.into()),
        cache,
    ));
    rules.push(rule(
        next + 3,
        format!("Keep the last {main} tagged images; expires only those with none of the tags above"),
        None,
        main,
    ));
    Policy { rules }
}

/// What the evaluator needs of an image.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub tags: &'a [String],
    /// Push time (any unit, the same for all images).
    pub pushed_at: i64,
}

impl Selection {
    /// Does this selection's tag status and tag list match an image with `tags`?
    pub fn matches(&self, tags: &[String]) -> bool {
        match self.tag_status.as_str() {
            "untagged" => tags.is_empty(),
            "any" => true,
            "tagged" if tags.is_empty() => false,
            "tagged" => {
                // Every prefix (pattern) must match one of the image's tags.
                let prefixes = self.tag_prefix_list.iter().flatten();
                let patterns = self.tag_pattern_list.iter().flatten();
                prefixes.clone().all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && patterns.clone().all(|p| tags.iter().any(|t| glob(p, t)))
                    && (prefixes.count() + patterns.count() > 0)
            }
            _ => false,
        }
    }
}

/// For each image, the priority of the rule that expires it, if one does: rules apply by
/// priority; a rule sorts the images its selection matches newest first (by push time) and
/// marks those past its count; an image matched by a higher-priority rule's tag selection
/// is never expired by a lower one (it is still counted by it).
pub fn evaluate(policy: &Policy, images: &[Facts<'_>]) -> Vec<Option<u32>> {
    let mut rules: Vec<&Rule> = policy.rules.iter().collect();
    rules.sort_by_key(|r| r.rule_priority);
    let mut expired = vec![None; images.len()];
    let mut matched_above = vec![false; images.len()];
    for rule in rules {
        let mut selected: Vec<usize> = (0..images.len()).filter(|&i| rule.selection.matches(images[i].tags)).collect();
        selected.sort_by_key(|&i| std::cmp::Reverse(images[i].pushed_at));
        if rule.selection.count_type == "imageCountMoreThan" {
            for &i in selected.iter().skip(rule.selection.count_number as usize) {
                if !matched_above[i] && expired[i].is_none() {
                    expired[i] = Some(rule.rule_priority);
                }
            }
        }
        for i in selected {
            matched_above[i] = true;
        }
    }
    expired
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields one part at least");
    let Some(mut text) = text.strip_prefix(first) else { return false };
    let Some((last, middle)) = rest.split_last() else { return text.is_empty() };
    for part in middle {
        match text.find(part) {
            Some(at) => text = &text[at + part.len()..],
            None => return false,
        }
    }
    text.ends_with(last) && text.len() >= last.len()
}

/// Per stage, the images deployed to it, newest deployment first: (image index, its newest
/// deployed timestamp for that stage). The first runs; the first `window` are the stage's
/// rollback window.
pub fn deployments(images: &[Facts<'_>]) -> BTreeMap<String, Vec<(usize, String)>> {
    let mut stages: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
        for (stage, ts) in image.tags.iter().filter_map(|t| parse_deployed(t)) {
            let entry = newest.entry(stage).or_insert(ts);
            if ts > *entry {
                *entry = ts;
            }
        }
        for (stage, ts) in newest {
            stages.entry(stage.to_string()).or_default().push((i, ts.to_string()));
        }
    }
    for list in stages.values_mut() {
        list.sort_by(|a, b| b.1.cmp(&a.1));
    }
    stages
}

/// The images a stage runs or may roll back to: the newest `window` deployed to each stage.
pub fn protected(images: &[Facts<'_>], window: u32) -> BTreeSet<usize> {
    deployments(images).values().flat_map(|list| list.iter().take(window as usize).map(|(i, _)| *i)).collect()
}

/// The `deployed-<stage>.` tags to remove so that only the newest `keep` images deployed to
/// `stage` (never counting `except`) keep one, their newest. An image whose every tag would
/// go keeps them: removing its last tag would delete it.
pub fn stale_deployed_tags(images: &[Facts<'_>], stage: &str, keep: usize, except: Option<usize>) -> Vec<String> {
    let Some(list) = deployments(images).remove(stage) else { return vec![] };
    let mut stale = vec![];
    let mut kept = 0;
    for (i, newest) in list {
        let in_window = Some(i) == except || {
            kept += 1;
            kept <= keep
        };
        let tags = images[i].tags;
        let doomed: Vec<&String> = tags
            .iter()
            .filter(|t| parse_deployed(t).is_some_and(|(s, ts)| s == stage && !(in_window && ts == newest)))
            .collect();
        if doomed.len() < tags.len() {
            stale.extend(doomed.into_iter().cloned());
        }
    }
    stale
}

/// The `main-<commit>` tags to remove so that the main rule counts main's images by when
/// their commits became main's, not by when they were pushed: only the images of `recent`
/// (main's newest `keep-images` commits, the head among them) keep one, so the rule (count
/// `keep-images`) never has more images than it keeps, and an old image that a revert made
/// main's head again does not expire by its old push time. A tag goes only when `older`
/// says its commit is behind the head (a newer head pushed by another job keeps its tag),
/// and never an image's last tag.
pub fn stale_main_tags(images: &[Facts<'_>], recent: &BTreeSet<&str>, older: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut stale = vec![];
    for image in images {
        let doomed: Vec<&String> = image
            .tags
            .iter()
            .filter(|t| t.strip_prefix(MAIN_PREFIX).is_some_and(|commit| !recent.contains(commit) && older(commit)))
            .collect();
        if doomed.len() < image.tags.len() {
            stale.extend(doomed.into_iter().cloned());
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_counts_by_when_a_commit_became_mains_not_by_push_time() {
        // Three commits pushed in order a, b, c; then d reverts to a's content, so a's
        // image (the oldest push) is retagged for d and is main's head.
        let settings = Settings { stages: vec![], rollback_window: 2, keep_main: 2, keep_pr: 2 };
        let policy = policy(&settings);
        let mut images = vec![tags(&["a", "main-a", "d", "main-d"]), tags(&["b", "main-b"]), tags(&["c", "main-c"])];
        fn facts(images: &[Vec<String>]) -> Vec<Facts<'_>> {
            images.iter().zip([1, 2, 3]).map(|(tags, pushed_at)| Facts { tags, pushed_at }).collect()
        }
        // By push time alone, main's head would expire at once.
        assert_eq!(evaluate(&policy, &facts(&images))[0], Some(1), "the main rule expires the head");

        // Main's newest two commits are d and c: b's and a's own main tags go.
        let recent = BTreeSet::from(["d", "c"]);
        let stale = stale_main_tags(&facts(&images), &recent, &|commit| commit != "e");
        assert_eq!(stale, vec!["main-a".to_string(), "main-b".to_string()]);
        for image in &mut images {
            image.retain(|t| !stale.contains(t));
        }
        let expired = evaluate(&policy, &facts(&images));
        assert_eq!(expired, vec![None, None, None], "the head is kept, and b is left to the catch-all rule");

        // A newer head pushed by another job (not behind this one) keeps its tag, and an
        // image's last tag never goes.
        let others = [tags(&["e", "main-e"]), tags(&["main-f"])];
        let facts: Vec<Facts<'_>> = others.iter().map(|tags| Facts { tags, pushed_at: 4 }).collect();
        assert!(stale_main_tags(&facts, &recent, &|commit| commit != "e").is_empty());
    }

    fn settings() -> Settings {
        Settings { stages: vec!["dev".into(), "prod".into()], rollback_window: 2, keep_main: 3, keep_pr: 2 }
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deployed_tags_round_trip() {
        let tag = deployed_tag("dev-eu", "20261201T034501Z");
        assert_eq!(tag, "deployed-dev-eu.20261201T034501Z");
        assert_eq!(parse_deployed(&tag), Some(("dev-eu", "20261201T034501Z")));
        assert_eq!(parse_deployed("deployed-20261201T034501Z"), None);
        assert_eq!(parse_deployed("deployed-dev-latest"), None);
        // One stage's prefix never selects the tags of a stage whose name extends its own.
        assert!(!deployed_tag("local-prod", "20261201T034501Z").starts_with(&deployed_prefix("local")));
        assert_eq!(parse_deployed("main-abc"), None);
        let now = timestamp_now();
        assert!(parse_deployed(&deployed_tag("x", &now)).is_some(), "{now}");
    }

    #[test]
    fn the_policy_puts_deployed_rules_first_and_a_catch_all_last() {
        let policy = policy(&settings());
        let json = serde_json::to_value(&policy).unwrap();
        let rules = json["rules"].as_array().unwrap();
        let summary: Vec<(u64, String, u64)> = rules
            .iter()
            .map(|r| {
                let s = &r["selection"];
                let list = s.get("tagPrefixList").or(s.get("tagPatternList")).unwrap();
                (
                    r["rulePriority"].as_u64().unwrap(),
                    list[0].as_str().unwrap().to_string(),
                    s["countNumber"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "deployed-dev.".into(), 2),
                (2, "deployed-prod.".into(), 2),
                (3, "main-".into(), 3),
                (4, "pr-".into(), 2),
                (5, "buildcache-".into(), 5),
                (6, "*".into(), 3)
            ]
        );
        assert!(rules.iter().all(|r| r["selection"]["tagStatus"] == "tagged" && r["action"]["type"] == "expire"));
        assert!(rules.iter().all(|r| r["selection"]["countType"] == "imageCountMoreThan"));
        let back: Policy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy);
    }

    #[test]
    fn globs() {
        assert!(glob("*", "x"));
        assert!(glob("pr-*", "pr-1"));
        assert!(!glob("pr-*", "main-1"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcd"));
        assert!(glob("abc", "abc"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn forty_pull_request_pushes_after_a_deploy_expire_neither_the_deployed_image_nor_mains() {
        let policy = policy(&settings());
        // Pushed in this order: 5 main commits (the 4th deployed to prod), then 40 PR images.
        let mut all: Vec<Vec<String>> = vec![];
        for i in 0..5 {
            let mut t = tags(&[&format!("{i:040}"), &format!("main-{i:040}")]);
            if i == 3 {
                t.push("deployed-prod.20261201T034501Z".into());
            }
            all.push(t);
        }
        for i in 0..40 {
            all.push(tags(&[&format!("{:040}", 100 + i), &format!("pr-{:040}", 100 + i)]));
        }
        let facts: Vec<Facts> = all.iter().enumerate().map(|(i, t)| Facts { tags: t, pushed_at: i as i64 }).collect();
        let expired = evaluate(&policy, &facts);
        // main keeps its last 3 (2, 3, 4) and the deployed one (3) anyway; 0 and 1 expire by main's rule.
        assert_eq!(&expired[..5], &[Some(3), Some(3), None, None, None]);
        // Pull requests keep their last 2.
        assert!(expired[5..43].iter().all(|e| *e == Some(4)));
        assert_eq!(&expired[43..], &[None, None]);
    }

    #[test]
    fn build_cache_keeps_its_newest_five_and_never_counts_against_main() {
        let policy = policy(&settings());
        // 3 main images, then 8 cache images pushed after them.
        let mut all: Vec<Vec<String>> =
            (0..3).map(|i| tags(&[&format!("{i:040}"), &format!("main-{i:040}")])).collect();
        all.extend((0..8).map(|i| tags(&[&format!("buildcache-{i:064}")])));
        let facts: Vec<Facts> = all.iter().enumerate().map(|(i, t)| Facts { tags: t, pushed_at: i as i64 }).collect();
        let expired = evaluate(&policy, &facts);
        assert_eq!(
            &expired[..3],
            &[None, None, None],
            "main keeps its 3: its own rule shields them from the catch-all"
        );
        assert_eq!(&expired[3..6], &[Some(5), Some(5), Some(5)]);
        assert!(expired[6..].iter().all(Option::is_none));
    }

    #[test]
    fn a_deployed_image_outlives_mains_count_and_a_main_tag_protects_a_pr_image() {
        let policy = policy(&settings());
        let all = [
            tags(&["a", "main-a", "deployed-dev.20261101T000000Z"]), // oldest main, deployed
            tags(&["b", "pr-b", "main-c"]),                          // a PR image that later got main's tag
            tags(&["d", "main-d"]),
            tags(&["e", "main-e"]),
            tags(&["f", "main-f"]),
            tags(&["g", "pr-g"]),
            tags(&["h", "pr-h"]),
            tags(&["i", "pr-i"]),
            tags(&["legacy"]),
        ];
        let facts: Vec<Facts> = all.iter().enumerate().map(|(i, t)| Facts { tags: t, pushed_at: i as i64 }).collect();
        let expired = evaluate(&policy, &facts);
        assert_eq!(expired[0], None, "deployed");
        assert_eq!(expired[1], Some(3), "4th newest main image: main's rule, not the PR rule's");
        assert_eq!(&expired[2..5], &[None, None, None]);
        assert_eq!(&expired[5..8], &[Some(4), None, None]);
        assert_eq!(expired[8], None, "the newest tagged image");
    }

    #[test]
    fn untagged_manifests_are_never_selected() {
        let policy = policy(&settings());
        let untagged: Vec<String> = vec![];
        let facts: Vec<Facts> = (0..50).map(|i| Facts { tags: &untagged, pushed_at: i }).collect();
        assert!(evaluate(&policy, &facts).iter().all(Option::is_none));
    }

    #[test]
    fn deployed_tags_stay_on_the_window_only_and_one_per_image() {
        let all = [
            tags(&["a", "deployed-dev.20261101T000000Z", "deployed-prod.20261101T000000Z"]),
            tags(&["b", "deployed-dev.20261102T000000Z", "deployed-dev.20261105T000000Z"]),
            tags(&["c", "deployed-dev.20261103T000000Z"]),
            tags(&["deployed-dev.20261001T000000Z"]),
            tags(&["e", "deployed-dev.20261104T000000Z"]),
        ];
        let facts: Vec<Facts> = all.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
        // Before a deploy of `c` with a window of 3: room for 2 others (b, then e).
        let before = stale_deployed_tags(&facts, "dev", 2, Some(2));
        assert_eq!(before, tags(&["deployed-dev.20261102T000000Z", "deployed-dev.20261101T000000Z"]));
        // After: the window of 3 is b, e, c; a leaves it; the tag-less image keeps its only tag.
        let after = stale_deployed_tags(&facts, "dev", 3, None);
        assert_eq!(after, tags(&["deployed-dev.20261102T000000Z", "deployed-dev.20261101T000000Z"]));
        assert!(stale_deployed_tags(&facts, "qa", 1, None).is_empty());
    }

    #[test]
    fn the_rollback_window_is_the_newest_deployments_per_stage() {
        let all = [
            tags(&["a", "deployed-dev.20261101T000000Z", "deployed-prod.20261102T000000Z"]),
            tags(&["b", "deployed-dev.20261103T000000Z"]),
            tags(&["c", "deployed-dev.20261104T000000Z", "deployed-dev.20261001T000000Z"]),
            tags(&["d"]),
        ];
        let facts: Vec<Facts> = all.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
        let d = deployments(&facts);
        assert_eq!(d["dev"].iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!(d["prod"][0], (0, "20261102T000000Z".to_string()));
        assert_eq!(protected(&facts, 2), BTreeSet::from([0, 1, 2]));
        assert_eq!(protected(&facts, 1), BTreeSet::from([0, 2]));
    }
}
