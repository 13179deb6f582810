//! The `deployed-<stage>.<UTC time>` tags: what `deploy` adds to each image it deployed, so
//! the lifecycle policy's rule for the stage keeps it (see `retention`). The tags stay on the
//! last `rollback-window` images deployed to the stage only: the rule, whose count is the
//! window, then never has more images than it keeps, whatever order they were pushed in.
//! Read back, the tags are the stage's history: what it runs, and what it ran before
//! (`rollback`'s choice).

use anyhow::{Context, Result};

use crate::{
    clients::ecr::{self, Tagged},
    domain::{
        channel::Channel,
        retention::{self, Facts},
    },
    stage::StageContext,
};

/// Adds `deployed-<stage>.<now>` to the image `tag` names in each configured image's
/// repository of `channel` (where the deploy takes the images from). Before, the images
/// that leave the rollback window lose the stage's deployed tags; after, each image keeps
/// only its newest one.
pub async fn record(ctx: &StageContext<'_>, tag: &str, channel: Channel) -> Result<()> {
    let config = &ctx.ws.config;
    let stage = &ctx.stage.name;
    let window = config.rollback_window as usize;
    for image in &config.images {
        let repository = &channel.repository(image);
        let manifest = ecr::manifest(&ctx.ecr, repository, tag).await?;
        // First make room (the window less this image), then tag: an interruption between
        // the two leaves fewer deployed images than the rule keeps, never more.
        prune(&ctx.ecr, repository, stage, window.saturating_sub(1), Some(&manifest.digest)).await?;
        // Another deploy of the stage in the same second took this second's tag: the next one.
        let mut attempts = 0;
        let deployed = loop {
            let deployed = retention::deployed_tag(stage, &retention::timestamp_now());
            match ecr::put_tag(&ctx.ecr, repository, &manifest, &deployed).await? {
                Tagged::Added | Tagged::AlreadyThere => break deployed,
                Tagged::Taken(_) if attempts < 3 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
                }
                taken => {
                    taken.require(repository, &deployed, &manifest.digest)?;
                }
            }
        };
        eprintln!("{}: tagged {repository}@{} as {deployed}", image.name, manifest.digest);
        prune(&ctx.ecr, repository, stage, window, None).await?;
    }
    Ok(())
}

/// Removes the stage's deployed tags that `retention::stale_deployed_tags` names.
async fn prune(
    client: &aws_sdk_ecr::Client,
    repository: &str,
    stage: &str,
    keep: usize,
    except: Option<&str>,
) -> Result<()> {
    let details = ecr::images(client, repository).await?;
    let tags: Vec<Vec<String>> = details.iter().map(|d| d.image_tags().to_vec()).collect();
    let facts: Vec<Facts> = tags.iter().map(|t| Facts { tags: t, pushed_at: 0 }).collect();
    let except = except.and_then(|digest| details.iter().position(|d| d.image_digest() == Some(digest)));
    let stale = retention::stale_deployed_tags(&facts, stage, keep, except);
    if stale.is_empty() {
        return Ok(());
    }
    ecr::delete_tags(client, repository, &stale)
        .await
        .with_context(|| format!("cannot drop the deployed tags of stage `{stage}` that are no longer needed"))?;
    eprintln!("{repository}: dropped {}", stale.join(", "));
    Ok(())
}

/// One image's deployment to a stage, as its tags record it: when (its newest
/// `deployed-<stage>.` timestamp) and the commits whose tags the image carries (several
/// when commits share an image: their inputs were the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The configured image it is of.
    pub image: String,
    /// `20261201T034501Z`.
    pub at: String,
    pub commits: Vec<String>,
}

/// Every image of the stage's repositories (main's and, for a stage that builds its images,
/// the pull-request ones) that carries a deployed tag of the stage, newest first: what the
/// stage ran, as far back as its rollback window.
pub async fn history(ctx: &StageContext<'_>) -> Result<Vec<Deployed>> {
    let stage = &ctx.stage.name;
    let mut history = vec![];
    for image in &ctx.ws.config.images {
        let mut repositories = vec![Channel::Main.repository(image)];
        if ctx.stage.promote_from.is_none() {
            repositories.push(Channel::Pr.repository(image));
        }
        for repository in &repositories {
            // A stage bootstrapped before the pull-request repositories existed has none.
            if *repository != image.repository && !ecr::repository_exists(&ctx.ecr, repository).await? {
                continue;
            }
            for detail in ecr::images(&ctx.ecr, repository).await? {
                let tags = detail.image_tags();
                let newest = tags
                    .iter()
                    .filter_map(|t| retention::parse_deployed(t))
                    .filter(|(s, _)| s == stage)
                    .map(|(_, ts)| ts)
                    .max();
                if let Some(at) = newest {
                    let commits = tags.iter().filter(|t| is_commit(t)).cloned().collect();
                    history.push(Deployed { image: image.name.clone(), at: at.to_string(), commits });
                }
            }
        }
    }
    history.sort_by(|a, b| b.at.cmp(&a.at));
    Ok(history)
}

/// The commit the stage runs: the one every image's newest deployment carries (a deploy
/// deploys a commit's images together); of several (images the commits share), the newest by
/// `is_newer`.
pub fn current(history: &[Deployed], is_newer: impl Fn(&str, &str) -> bool) -> Option<String> {
    let mut newest_of_each = vec![];
    for image in history.iter().map(|d| d.image.as_str()) {
        if !newest_of_each.iter().any(|d: &&Deployed| d.image == image) {
            newest_of_each.extend(history.iter().find(|d| d.image == image));
        }
    }
    let first = newest_of_each.first()?;
    let common: Vec<String> =
        first.commits.iter().filter(|c| newest_of_each.iter().all(|d| d.commits.contains(c))).cloned().collect();
    newest(&common, is_newer)
}

/// The deployment the stage ran before `current`: the newest one whose image does not carry
/// `current`; its commit (of several, the newest by `is_newer`) and when it ran.
pub fn previous(
    history: &[Deployed],
    current: &str,
    is_newer: impl Fn(&str, &str) -> bool,
) -> Option<(String, String)> {
    let before = history.iter().find(|d| !d.commits.is_empty() && !d.commits.iter().any(|c| c == current))?;
    Some((newest(&before.commits, is_newer)?, before.at.clone()))
}

/// When `commit` last ran on the stage: the newest deployment of an image that carries it
/// alone, else of any image that carries it.
pub fn last_ran(history: &[Deployed], commit: &str) -> Option<String> {
    let carries = |d: &&Deployed| d.commits.iter().any(|c| c == commit);
    let alone = history.iter().filter(carries).find(|d| d.commits.len() == 1);
    alone.or_else(|| history.iter().find(carries)).map(|d| d.at.clone())
}

/// The commit of `commits` newer than all the others by `is_newer` (`a` newer than `b`),
/// else the first.
fn newest(commits: &[String], is_newer: impl Fn(&str, &str) -> bool) -> Option<String> {
    let newest = commits.iter().find(|c| commits.iter().all(|other| other == *c || is_newer(c, other)));
    newest.or(commits.first()).cloned()
}

/// A commit tag: 40 lowercase hex digits.
fn is_commit(tag: &str) -> bool {
    tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn deployed(image: &str, at: &str, commits: &[&str]) -> Deployed {
        Deployed { image: image.into(), at: at.into(), commits: commits.iter().map(|c| c.to_string()).collect() }
    }

    /// Commits in history order: a later letter is newer.
    fn by_letter(a: &str, b: &str) -> bool {
        a > b
    }

    #[test]
    fn the_commit_before_is_the_newest_deployment_without_the_current_one() {
        // A, then B (the worker unchanged: one image carries both), newest first.
        let history = [
            deployed("worker", "20261207T100002Z", &[A, B]),
            deployed("app", "20261207T100001Z", &[B]),
            deployed("app", "20261207T090001Z", &[A]),
        ];
        assert_eq!(current(&history, by_letter).as_deref(), Some(B));
        assert_eq!(previous(&history, B, by_letter), Some((A.to_string(), "20261207T090001Z".to_string())));
        assert_eq!(last_ran(&history, A).as_deref(), Some("20261207T090001Z"));
    }

    #[test]
    fn after_a_rollback_the_commit_rolled_back_to_runs_and_the_one_before_is_the_undone_one() {
        // A, B, then back to A: the shared worker image's newest tag is the rollback's.
        let history = [
            deployed("worker", "20261207T110002Z", &[A, B]),
            deployed("app", "20261207T110001Z", &[A]),
            deployed("app", "20261207T100001Z", &[B]),
        ];
        // The shared image alone would say B (the newer commit); the app's says A.
        assert_eq!(current(&history, by_letter).as_deref(), Some(A));
        assert_eq!(previous(&history, A, by_letter).map(|p| p.0).as_deref(), Some(B));
    }

    #[test]
    fn nothing_before_the_only_deployment() {
        let history = [deployed("app", "20261207T100001Z", &[A]), deployed("worker", "20261207T100002Z", &[A])];
        assert_eq!(current(&history, by_letter).as_deref(), Some(A));
        assert_eq!(previous(&history, A, by_letter), None);
        assert_eq!(current(&[], by_letter), None);
        // An image both commits share is no deployment of another commit.
        let shared = [deployed("app", "20261207T100001Z", &[A, B])];
        assert_eq!(previous(&shared, B, by_letter), None);
    }

    #[test]
    fn of_several_commits_on_the_image_before_the_newest_is_taken() {
        let history = [deployed("app", "20261207T100001Z", &[C]), deployed("app", "20261207T090001Z", &[A, B])];
        assert_eq!(previous(&history, C, by_letter).map(|p| p.0).as_deref(), Some(B));
        assert_eq!(last_ran(&history, C).as_deref(), Some("20261207T100001Z"));
        assert_eq!(last_ran(&history, "dddddddddddddddddddddddddddddddddddddddd"), None);
    }
}
