//! `cargo xtask plan`: push's decision per image, changing nothing, and the CI matrix of
//! images to build.

use serde_json::Value;

use crate::support::{Fixture, create_repository, docker_or_skip, ecr_digest, local_ecr, local_stack, runtime, unique};

fn plan(repo: &Fixture) -> Value {
    let out = repo.xtask(&["plan", "--stage", "local", "--no-diff", "--json"]).ok();
    serde_json::from_str(out.trim()).unwrap_or_else(|err| panic!("{err}: {out}"))
}

#[test]
fn plan_says_skip_retag_or_build_and_changes_nothing() {
    if !docker_or_skip("plan_says_skip_retag_or_build_and_changes_nothing") {
        return;
    }
    local_stack();
    let repository = unique("it-plan");
    runtime().block_on(async { create_repository(&local_ecr().await, &repository, true).await });
    let repo = Fixture::with_repository(&repository);
    repo.write("svc/data.txt", &unique("plan"));
    let first = repo.commit("an image of its own");

    // Nothing in ECR yet: a build, with nothing earlier to compare with; nothing is pushed.
    let json = plan(&repo);
    assert_eq!(json["images"][0]["action"], "build", "{json}");
    assert_eq!(json["build"], serde_json::json!(["svc"]), "{json}");
    assert_eq!(runtime().block_on(async { ecr_digest(&local_ecr().await, &repository, &first).await }), None);

    repo.xtask(&["push", "--stage", "local"]).ok();
    assert_eq!(plan(&repo)["images"][0]["action"], "skip");

    // A commit that changes only infrastructure code: the image is reused (retag), no build.
    repo.write("infra/lib/extra.ts", "export const extra = 1;\n");
    let second = repo.commit("infra only");
    let json = plan(&repo);
    assert_eq!((json["commit"].as_str(), json["images"][0]["action"].as_str()), (Some(second.as_str()), Some("retag")));
    assert_eq!(json["images"][0]["from"], serde_json::json!([first]), "{json}");
    assert_eq!(json["build"], serde_json::json!([]), "{json}");
    assert_eq!(runtime().block_on(async { ecr_digest(&local_ecr().await, &repository, &second).await }), None);

    // A change in the image's context: a build, naming the file and the commit compared with.
    repo.xtask(&["push", "--stage", "local"]).ok();
    repo.write("svc/data.txt", &unique("changed"));
    repo.commit("a context change");
    let json = plan(&repo);
    assert_eq!(json["images"][0]["action"], "build", "{json}");
    let human = repo.xtask(&["plan", "--stage", "local", "--no-diff"]);
    crate::support::assert_output("plan_of_a_context_change", &format!("{}{}", human.ok(), human.stderr()));
    let changed = json["images"][0]["changed"].to_string();
    assert!(changed.contains(&format!("context file svc/data.txt (since {})", &second[..12])), "{changed}");
    assert_eq!(json["build"], serde_json::json!(["svc"]), "{json}");
}

/// The workspace's own images: each is built from its own directory alone, so changes to
/// xtask, the infrastructure, the docs, the root lock file or the other service keep its
/// inputs (a retag, never a build), while a change to its sources builds it alone.
#[test]
fn the_workspace_images_keep_their_inputs_outside_their_own_sources() {
    if !docker_or_skip("the_workspace_images_keep_their_inputs_outside_their_own_sources") {
        return;
    }
    local_stack();
    let repo = crate::support::clone_workspace();
    crate::support::bootstrap_local(&repo);
    repo.xtask(&["push", "--stage", "local"]).ok();

    repo.append("xtask/src/main.rs", "\n// A change to the release tool.\n");
    repo.append("infra/lib/app.ts", "\n// A change to the infrastructure.\n");
    repo.append("README.md", "\nA change to the docs.\n");
    repo.append("Cargo.lock", "\n# A change to the root workspace's lock file.\n");
    repo.append(".github/workflows/release.yml", "\n# A change to the workflow.\n");
    repo.append("app/tests/process.rs", "\n// A change to the app's tests, which the image does not hold.\n");
    repo.commit("everything but the images' sources");
    let json = plan(&repo);
    let actions: Vec<(&str, &str)> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("app", "retag"), ("worker", "retag")], "{json}");
    assert_eq!(json["build"], serde_json::json!([]), "{json}");

    repo.append("app/worker/src/main.rs", "\n// A change to the worker alone.\n");
    repo.commit("the worker's sources");
    let json = plan(&repo);
    assert_eq!(json["images"][0]["action"], "retag", "{json}");
    assert_eq!(json["images"][1]["action"], "build", "{json}");
    assert_eq!(json["build"], serde_json::json!(["worker"]), "{json}");
}
