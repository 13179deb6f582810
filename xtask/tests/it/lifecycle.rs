//! Tag surgery and retention on the local stack: `retag`, `untag`, `gc` and `images` run as
//! the real binary against ECR repositories of their own, filled with tiny pushed images.

use serde_json::Value;

use crate::support::{Fixture, Run, create_repository, docker_or_skip, local_ecr, local_stack, runtime, unique};

/// A fixture whose immutable ECR repository (and its pull-request one) exists on the local stack.
fn repository() -> (Fixture, String) {
    local_stack();
    let repository = unique("it/life");
    runtime().block_on(async {
        let ecr = local_ecr().await;
        create_repository(&ecr, &repository, true).await;
        create_repository(&ecr, &format!("pr/{repository}"), true).await;
    });
    (Fixture::with_repository(&repository), repository)
}

/// The emulated ECR keeps push times in whole seconds, and the lifecycle rules order images
/// by them: each push of these tests starts in a later second than every one before it
/// (the clock is the event waited for), and says when it ended.
static LAST_PUSH: std::sync::Mutex<u64> = std::sync::Mutex::new(0);

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn in_a_new_second() {
    let last = *LAST_PUSH.lock().unwrap();
    crate::support::wait_until("a second later than the last push", std::time::Duration::from_secs(3), || {
        now_secs() > last
    });
}

fn pushed() {
    *LAST_PUSH.lock().unwrap() = now_secs();
}

/// Commits a change to the image's context and pushes it: new image bytes each time, in a
/// second of its own.
fn push_new(repo: &Fixture, what: &str, extra: &[&str]) -> String {
    in_a_new_second();
    repo.append("svc/data.txt", &format!("{what}\n"));
    let sha = repo.commit(what);
    let mut args = vec!["push"];
    args.extend_from_slice(extra);
    repo.xtask(&args).ok();
    pushed();
    sha
}

/// The digest BatchGetImage reports for `repository:tag`, if the tag is there.
fn manifest_digest(repository: &str, tag: &str) -> Option<String> {
    runtime().block_on(async {
        let ecr = local_ecr().await;
        xtask_release::clients::ecr::image_by_tag(&ecr, repository, tag).await.unwrap()?;
        Some(xtask_release::clients::ecr::manifest(&ecr, repository, tag).await.unwrap().digest)
    })
}

/// Every tag of the image `tag` names.
fn tags_of(repository: &str, tag: &str) -> Vec<String> {
    runtime().block_on(async {
        let ecr = local_ecr().await;
        let detail = xtask_release::clients::ecr::image_by_tag(&ecr, repository, tag).await.unwrap().unwrap();
        detail.image_tags().to_vec()
    })
}

fn refused(run: &Run, expected: &str) -> String {
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "a refusal is a verdict (exit 1): {err}");
    assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
    err
}

/// The images a gc listing deletes, and apart from them, the signed provenance
/// (referrers) that goes with them: `(images, [(referrer, its image)])`.
fn listed_split(entries: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let entries = entries.as_array().unwrap();
    let digest = |d: &Value| d["digest"].as_str().unwrap().to_string();
    let images = entries.iter().filter(|d| d["subject"].is_null()).map(digest).collect();
    let referrers =
        entries.iter().filter(|d| !d["subject"].is_null()).map(|d| (digest(d), d["subject"].as_str().unwrap().into()));
    (images, referrers.collect())
}

fn json(run: &Run) -> Value {
    let out = run.ok();
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {out}"))
}

#[test]
fn retag_adds_a_tag_to_the_same_image_once_and_never_moves_one() {
    if !docker_or_skip("retag_adds_a_tag_to_the_same_image_once_and_never_moves_one") {
        return;
    }
    let (repo, repository) = repository();
    let first = push_new(&repo, "first", &[]);
    // A commit on the main branch gets main's channel tag.
    assert!(tags_of(&repository, &first).contains(&format!("main-{first}")));

    let run = repo.xtask(&["retag", &format!("svc:{first}"), "release-1"]);
    run.ok();
    assert_eq!(manifest_digest(&repository, "release-1"), manifest_digest(&repository, &first));
    let again = repo.xtask(&["retag", &format!("svc:{first}"), "release-1"]);
    assert!(again.ok().is_empty());
    assert!(again.stderr().contains("nothing to do"), "{}", again.stderr());

    // A pull request's push goes to its own repository, counted apart from main's.
    let second = push_new(&repo, "second", &["--channel", "pr"]);
    let tags = tags_of(&format!("pr/{repository}"), &second);
    assert!(tags.contains(&format!("pr-{second}")) && !tags.contains(&format!("main-{second}")), "{tags:?}");
    assert_eq!(manifest_digest(&repository, &second), None, "main's repository holds no pull request's image");

    // The tag names the first image: it never moves.
    let third = push_new(&repo, "third", &[]);
    let run = repo.xtask(&["retag", &format!("svc:{third}"), "release-1"]);
    refused(&run, "already names another image");
    assert_eq!(manifest_digest(&repository, "release-1"), manifest_digest(&repository, &first));

    // Usage errors exit 2.
    let run = repo.xtask(&["retag", "nope:latest", "x"]);
    run.fails();
    assert_eq!(run.output.status.code(), Some(2));
    let run = repo.xtask(&["retag", &format!("svc:{first}"), "-bad"]);
    run.fails();
    assert_eq!(run.output.status.code(), Some(2));
}

#[test]
fn untag_gc_and_images_spare_what_a_stage_runs() {
    if !docker_or_skip("untag_gc_and_images_spare_what_a_stage_runs") {
        return;
    }
    let (repo, repository) = repository();
    let oldest = push_new(&repo, "oldest", &[]);
    let old = push_new(&repo, "old", &[]);
    let deployed = push_new(&repo, "deployed", &[]);
    let newest = push_new(&repo, "newest", &[]);
    let oldest_digest = manifest_digest(&repository, &oldest).unwrap();
    let old_digest = manifest_digest(&repository, &old).unwrap();
    let deployed_digest = manifest_digest(&repository, &deployed).unwrap();
    // As `deploy` records a deployment to the local stage.
    let deployed_tag = "deployed-local.20261201T034501Z";
    repo.xtask(&["retag", &format!("svc:{deployed}"), deployed_tag]).ok();

    // A deployed image keeps every tag; its deployed tag cannot be removed by hand.
    refused(&repo.xtask(&["untag", &format!("svc:{deployed}")]), "is deployed (stage local runs it");
    refused(&repo.xtask(&["untag", &format!("svc:{deployed_tag}")]), "records a deployment");
    assert!(manifest_digest(&repository, &deployed).is_some());

    // gc with main's count at 1: the older images go, the deployed one stays.
    let plan = json(&repo.xtask(&["gc", "--keep", "1", "--json"]));
    let (listed, provenance) = listed_split(&plan["repositories"][0]["delete"]);
    assert_eq!(listed, vec![old_digest.clone(), oldest_digest.clone()], "{plan}");
    // Each image's signed provenance goes with it, and only theirs.
    let subjects: Vec<&str> = provenance.iter().map(|(_, subject)| subject.as_str()).collect();
    assert_eq!(subjects, vec![old_digest.as_str(), oldest_digest.as_str()], "{plan}");
    assert_eq!(plan["applied"], false);
    assert!(manifest_digest(&repository, &old).is_some(), "gc without --apply deletes nothing");

    crate::support::assert_output("gc_with_a_deployed_image", &repo.xtask(&["gc", "--keep", "1"]).stderr());
    // images: newest first, the deployed one marked as what the local stage runs.
    crate::support::assert_output("images_with_a_deployed_image", &repo.xtask(&["images"]).ok());
    let list = json(&repo.xtask(&["images", "--json"]));
    let images = list["repositories"][0]["images"].as_array().unwrap();
    let commits: Vec<&str> = images.iter().map(|i| i["commit"].as_str().unwrap()).collect();
    assert_eq!(commits, vec![newest.as_str(), deployed.as_str(), old.as_str(), oldest.as_str()], "{list}");
    assert_eq!(images[1]["digest"], deployed_digest.as_str());
    assert_eq!(images[1]["stages"][0]["stage"], "local");
    assert_eq!(images[1]["stages"][0]["status"], "runs");
    assert_eq!(images[1]["stages"][0]["since"], "2026-12-01T03:45:01Z");
    assert_eq!(images[1]["subject"], "deployed");
    assert!(images[0]["stages"].as_array().unwrap().is_empty());

    // untag: the old image loses its other tags, then its last one only with --delete-image.
    for tag in tags_of(&repository, &old).into_iter().filter(|t| t != &old) {
        repo.xtask(&["untag", &format!("svc:{tag}")]).ok();
    }
    assert_eq!(tags_of(&repository, &old), vec![old.clone()]);
    refused(&repo.xtask(&["untag", &format!("svc:{old}")]), "it is the last tag of");
    assert!(manifest_digest(&repository, &old).is_some(), "a refused untag leaves the image");
    repo.xtask(&["untag", &format!("svc:{old}"), "--delete-image"]).ok();
    assert!(manifest_digest(&repository, &old).is_none(), "the image went with its last tag");

    // gc --apply deletes exactly what it lists: the oldest image, never the deployed one.
    let applied = json(&repo.xtask(&["gc", "--keep", "1", "--apply", "--json"]));
    let deleted = &applied["repositories"][0]["delete"];
    let (images, provenance) = listed_split(deleted);
    assert_eq!(images, vec![oldest_digest.clone()], "{applied}");
    assert_eq!(provenance.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(), [oldest_digest.as_str()]);
    let results = &applied["results"][0];
    let done: Vec<&str> =
        ["deleted", "gone"].iter().flat_map(|k| results[k].as_array().unwrap()).filter_map(Value::as_str).collect();
    assert!(done.contains(&oldest_digest.as_str()) && done.contains(&provenance[0].0.as_str()), "{applied}");
    assert!(deleted[0]["reason"].as_str().unwrap().contains("commits on main"), "{applied}");
    assert!(manifest_digest(&repository, &oldest).is_none(), "gc --apply deleted it");
    assert!(manifest_digest(&repository, &deployed).is_some());
    assert!(manifest_digest(&repository, &newest).is_some());
}

#[test]
fn gc_deletes_nothing_that_gained_a_tag_since_its_listing() {
    if !docker_or_skip("gc_deletes_nothing_that_gained_a_tag_since_its_listing") {
        return;
    }
    let (repo, repository) = repository();
    let oldest = push_new(&repo, "oldest", &[]);
    let old = push_new(&repo, "old", &[]);
    let older = push_new(&repo, "older", &[]);
    push_new(&repo, "newest", &[]);
    let digests: Vec<String> =
        [&oldest, &old, &older].iter().map(|c| manifest_digest(&repository, c).unwrap()).collect();

    // The listing a reviewer saw: the three older images go.
    let listed = repo.xtask(&["gc", "--keep", "1", "--json"]).ok();
    let plan = repo.path().join("target/gc-plan.json");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    std::fs::write(&plan, &listed).unwrap();
    for digest in &digests {
        assert!(listed.contains(digest.as_str()), "{listed}");
    }
    // Between the listing and the delete: a retag onto one image, a deploy's tag onto
    // another, and the third deleted by someone else.
    repo.xtask(&["retag", &format!("svc:{old}"), "release-1"]).ok();
    repo.xtask(&["retag", &format!("svc:{older}"), "deployed-local.20261202T000000Z"]).ok();
    for tag in tags_of(&repository, &oldest) {
        repo.xtask(&["untag", &format!("svc:{tag}"), "--delete-image"]).ok();
    }
    assert!(manifest_digest(&repository, &oldest).is_none());

    let run = repo.xtask(&["gc", "--apply", "--plan", plan.to_str().unwrap(), "--json"]);
    let applied = json(&run);
    let results = &applied["results"][0];
    // Of the signed provenance listed with the images, only the gone image's goes.
    let (_, provenance) = listed_split(&applied["repositories"][0]["delete"]);
    let provenance_of = |digest: &str| provenance.iter().find(|(_, s)| s == digest).unwrap().0.clone();
    assert_eq!(results["deleted"], serde_json::json!([provenance_of(&digests[0])]), "{applied}");
    assert_eq!(results["gone"], serde_json::json!([digests[0]]), "an image already gone counts as done: {applied}");
    let (skipped, skipped_provenance) = listed_split(&results["skipped"]);
    assert_eq!(skipped, vec![digests[2].clone(), digests[1].clone()], "newest first, as listed: {applied}");
    let kept: Vec<&str> = skipped_provenance.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(kept, vec![digests[2].as_str(), digests[1].as_str()], "their provenance stays with them: {applied}");
    assert!(run.stderr().contains("tagged release-1 since the listing"), "{}", run.stderr());
    assert!(manifest_digest(&repository, &old).is_some(), "the retagged image stays");
    assert!(manifest_digest(&repository, &older).is_some(), "the image being deployed stays");

    // A plan of another stage is refused before anything is deleted.
    std::fs::write(&plan, listed.replace("\"stage\":\"local\"", "\"stage\":\"dev\"")).unwrap();
    let err = repo.xtask(&["gc", "--apply", "--plan", plan.to_str().unwrap()]).fails();
    assert!(err.contains("is for stage `dev`, not `local`"), "{err}");
    assert!(manifest_digest(&repository, &old).is_some());
}

#[test]
fn gc_spares_what_an_index_that_stays_references() {
    if !docker_or_skip("gc_spares_what_an_index_that_stays_references") {
        return;
    }
    let (repo, repository) = repository();
    let child = push_new(&repo, "child", &[]);
    let child_digest = manifest_digest(&repository, &child).unwrap();
    // An index of the child, counted under main's rule, pushed after it.
    in_a_new_second();
    let index_digest = runtime().block_on(async {
        use crate::index::{OCI_INDEX, Registry, index};
        let single = xtask_release::clients::ecr::manifest(&local_ecr().await, &repository, &child).await.unwrap();
        let entry = serde_json::json!({ "mediaType": single.media_type, "digest": single.digest, "size": single.body.len(),
                                        "platform": { "architecture": "amd64", "os": "linux" } });
        Registry::connect().await.manifest(&repository, "main-index", OCI_INDEX, &index(vec![entry])).await.0
    });
    pushed();
    push_new(&repo, "newer", &[]);
    push_new(&repo, "newest", &[]);
    let listed = |keep: &str| -> Vec<String> {
        let plan = json(&repo.xtask(&["gc", "--keep", keep, "--json"]));
        listed_split(&plan["repositories"][0]["delete"]).0
    };
    // main keeps 3 (newest, newer, the index): the child is past the count but the index keeps it.
    assert_eq!(listed("3"), Vec::<String>::new());
    // main keeps 2: the index goes, and the child with it.
    assert_eq!(listed("2"), vec![index_digest, child_digest]);
}
