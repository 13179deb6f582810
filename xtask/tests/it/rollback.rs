//! `cargo xtask rollback`: the commit a stage ran before, found from the deployed tags and
//! deployed again, on the local stack.

use std::sync::Mutex;

use crate::support::{Fixture, clone_workspace, docker_or_skip, local_ecr, local_stack, runtime, unique, version_at};

/// The shared stack's `local` stage: its deployed tags and services are one history, so the
/// tests that deploy it take turns.
pub static LOCAL_STAGE: Mutex<()> = Mutex::new(());

/// A commit with an app image of its own (a file in the app's build context that the
/// Dockerfile does not copy: the build is all cache hits), so no earlier run's image or
/// deployed tag stands for it.
fn commit_with_own_app_image(repo: &Fixture, subject: &str) -> String {
    let marker = unique(subject);
    repo.write(&format!("app/{marker}.txt"), &marker);
    repo.commit(subject)
}

#[test]
fn rollback_after_two_deploys_runs_the_first_commit_again() {
    if !docker_or_skip("rollback_after_two_deploys_runs_the_first_commit_again") {
        return;
    }
    local_stack();
    let _turn = LOCAL_STAGE.lock().unwrap_or_else(|e| e.into_inner());
    let repo = clone_workspace();
    // The images this test's commits share with every clone's (the worker's) are pushed from
    // the workspace's own commit first: built here, they would carry a commit no other
    // clone has as their revision.
    repo.xtask(&["push", "--stage", "local"]).ok();
    let first = commit_with_own_app_image(&repo, "first");
    repo.xtask(&["deploy", "--stage", "local"]).ok();
    let second = commit_with_own_app_image(&repo, "second");
    repo.xtask(&["deploy", "--stage", "local"]).ok();

    // Without a terminal to ask on, and without --yes: it says what it would do, and refuses.
    let run = repo.xtask(&["rollback", "--stage", "local"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("rolling back to {first} (first)")), "{err}");
    assert!(err.contains("stdin is not a terminal; run `cargo xtask rollback --stage local --yes`"), "{err}");
    assert!(!err.contains("$ cdk"), "nothing deployed:\n{err}");

    let run = repo.xtask(&["rollback", "--stage", "local", "--yes", "--json"]);
    let json: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    let stderr = run.stderr();
    assert_eq!(json["choice"]["runs"], second.as_str());
    assert_eq!(
        (json["choice"]["commit"].as_str(), json["choice"]["previous"].as_bool()),
        (Some(first.as_str()), Some(true))
    );
    assert_eq!(json["deploy"]["commit"], first.as_str());
    // What rollback says (cdk's own lines, which come and go with its versions, aside).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            ["stage ", "rolling back", "app: ", "worker: ", "deployed ", "local stack: "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    crate::support::assert_output("rollback_to_the_commit_before", &ours.join("\n"));
    // The service answers as the first commit: deployed as it, built from it.
    let app = json["deploy"]["images"].as_array().unwrap().iter().find(|i| i["name"] == "app").unwrap();
    let version = version_at(app["url"].as_str().unwrap());
    assert_eq!(
        (version["image_tag"].as_str(), version["commit"].as_str()),
        (Some(first.as_str()), Some(first.as_str()))
    );
    // Proven by digest too: the one the daemon pulled is the one ECR has for the commit.
    let digest = runtime()
        .block_on(async { crate::support::ecr_digest(&local_ecr().await, "hello/app", &first).await.unwrap() });
    assert_eq!(app["running_digest"], digest.as_str());

    // Rolled back, the commit before is the one undone: a second rollback returns to it.
    let run = repo.xtask(&["rollback", "--stage", "local", "--yes", "--json"]);
    let json: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    assert_eq!(
        (json["choice"]["runs"].as_str(), json["deploy"]["commit"].as_str()),
        (Some(first.as_str()), Some(second.as_str()))
    );
}

#[test]
fn rollback_with_nothing_earlier_fails_in_one_line() {
    if !docker_or_skip("rollback_with_nothing_earlier_fails_in_one_line") {
        return;
    }
    local_stack();
    // A repository of its own on the local stage: no deployed tag yet.
    let repository = format!("fixture/{}", unique("rollback"));
    let repo = Fixture::with_repository(&repository);
    let commit = repo.head();
    runtime().block_on(crate::support::create_repository(&runtime().block_on(local_ecr()), &repository, true));

    let run = repo.xtask(&["rollback", "--stage", "local", "--yes"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "nothing to roll back is a verdict: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(),
        [
            "error: nothing to roll back: stage `local` has no deployed images (no `deployed-local.` tag in its repositories); deploy a commit with `cargo xtask deploy --stage local`"
        ],
        "{err}"
    );

    // One deployment, as a deploy tags it: nothing ran before it.
    runtime().block_on(async {
        let ecr = local_ecr().await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 2 },
            "layers": []
        })
        .to_string();
        for tag in [commit.as_str(), "deployed-local.20261207T090001Z"] {
            ecr.put_image().repository_name(&repository).image_manifest(&manifest).image_tag(tag).send().await.unwrap();
        }
    });
    let run = repo.xtask(&["rollback", "--stage", "local", "--yes"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    let expected = format!(
        "error: nothing to roll back to: stage `local` ran no commit before {} within its rollback window; name one with `cargo xtask rollback --stage local --to REV`",
        &commit[..12]
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).collect::<Vec<_>>(), [expected.as_str()], "{err}");
}
