//! A stage's traffic-shifting strategy on the local stack: the new version runs beside the
//! one serving through the rollout's time (a minute to the second), and one that fails then
//! is rolled back while the previous one keeps serving.

use std::process::Child;

use bollard::query_parameters::ListContainersOptions;

use crate::support::{clone_workspace, docker_or_skip, local_stack, read_log, runtime, spawn_xtask, stack_dir, unique};

/// The `image_tag` each running container of the local stage's app (on the tests' stack)
/// answers `/version` with.
fn serving() -> Vec<String> {
    runtime().block_on(async {
        let docker = bollard::Docker::connect_with_defaults().unwrap();
        let labels = vec![
            format!("xtask.local-stack={}", stack_dir().display()),
            "xtask.service=hello-local-service/app".to_string(),
        ];
        let filters = [("label".to_string(), labels)].into();
        let listed = docker
            .list_containers(Some(ListContainersOptions { filters: Some(filters), ..Default::default() }))
            .await
            .unwrap();
        let client = xtask_release::clients::http::Client::new();
        let mut tags = vec![];
        for container in listed {
            let Some(url) = container.labels.unwrap_or_default().get("xtask.url").cloned() else { continue };
            if let Ok(answer) = client.get(&format!("{url}/version"), &[]).await
                && answer.status.is_success()
                && let Ok(version) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            {
                tags.push(version["image_tag"].as_str().unwrap_or_default().to_string());
            }
        }
        tags.sort();
        tags
    })
}

/// Waits for `child` (a deploy) to end, noting every set of versions seen serving meanwhile.
fn follow(mut child: Child) -> (std::process::ExitStatus, Vec<Vec<String>>) {
    let mut seen: Vec<Vec<String>> = vec![];
    loop {
        let now = serving();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (status, seen);
        }
    }
}

#[test]
fn a_blue_green_stage_bakes_beside_the_serving_version_and_rolls_back_one_that_fails_then() {
    if !docker_or_skip("a_blue_green_stage_bakes_beside_the_serving_version_and_rolls_back_one_that_fails_then") {
        return;
    }
    local_stack();
    let _turn = crate::rollback::LOCAL_STAGE.lock().unwrap_or_else(|e| e.into_inner());
    let repo = clone_workspace();
    // What every clone shares is pushed from the workspace's own commit first (as rollback's test says).
    repo.xtask(&["push", "--stage", "local"]).ok();
    let marker = unique("rolling");
    repo.write(&format!("app/{marker}.txt"), &marker);
    let rolling = repo.commit("a rolling deploy");
    let started = std::time::Instant::now();
    repo.xtask(&["deploy", "--stage", "local"]).ok();
    eprintln!("rolling deploy: {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(serving(), vec![rolling.clone()]);

    // Blue-green with a 4-minute bake: 4 s here, with both versions serving.
    let stage = "[workspace.metadata.xtask.stages.local]\n";
    let manifest = std::fs::read_to_string(repo.path().join("Cargo.toml")).unwrap();
    let manifest = manifest.replacen(stage, &format!("{stage}strategy = \"blue-green\"\nbake-minutes = 4\n"), 1);
    repo.write("Cargo.toml", &manifest);
    let blue_green = repo.commit("the local stage deploys blue-green");
    // Outside the clone: a log in the work tree would make it dirty.
    let log = std::env::temp_dir().join(format!("{}.log", unique("strategy-deploy")));
    let started = std::time::Instant::now();
    let (status, seen) = follow(spawn_xtask(&repo.path(), &["deploy", "--stage", "local"], &[], &log));
    eprintln!("blue-green deploy (4 s bake): {:.1}s", started.elapsed().as_secs_f64());
    assert!(status.success(), "{}", read_log(&log));
    assert!(read_log(&log).contains("runs beside the previous one for 4s once healthy"), "{}", read_log(&log));
    let mut both = vec![rolling.clone(), blue_green.clone()];
    both.sort();
    assert!(seen.contains(&both), "both versions served during the bake: {seen:?}");
    assert_eq!(seen.last(), Some(&vec![blue_green.clone()]), "then the new one alone: {seen:?}");

    // A release that answers, then exits within the bake (now 20 s): rolled back, the
    // previous version serving throughout, and the deploy fails naming the rollback.
    let manifest = std::fs::read_to_string(repo.path().join("Cargo.toml")).unwrap();
    repo.write("Cargo.toml", &manifest.replacen("bake-minutes = 4\n", "bake-minutes = 20\n", 1));
    repo.append(
        "app/Dockerfile",
        "\n# A release that stops after 6 s.\nENTRYPOINT [\"timeout\", \"6\", \"/usr/local/bin/app\"]\n",
    );
    let failing = repo.commit("a release that stops during the bake");
    let (status, seen) = follow(spawn_xtask(&repo.path(), &["deploy", "--stage", "local"], &[], &log));
    let err = read_log(&log);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("during the 20s bake, and was rolled back"), "{err}");
    assert!(err.contains(&format!("deploy of hello-local-service at {failing} failed")), "{err}");
    assert!(err.contains(&format!("cargo xtask rollback --stage local --to {blue_green}")), "{err}");
    assert!(
        seen.iter().all(|versions| versions.contains(&blue_green)),
        "the previous version served throughout: {seen:?}"
    );
    let mut both = vec![blue_green.clone(), failing.clone()];
    both.sort();
    assert!(seen.contains(&both), "the failing release answered before it stopped: {seen:?}");
    assert_eq!(serving(), vec![blue_green]);
    let _ = std::fs::remove_file(&log);
}
