//! Build cache in ECR: a runner whose daemon starts empty builds a one-line change to the
//! app with the dependency stage another runner exported to ECR, never compiled again.

use crate::support::{SecondDaemon, clone_workspace, docker_or_skip, local_ecr, local_stack, runtime, unique};

/// The local stack's stand-in base images, copied from the default daemon into `daemon`
/// (a runner's daemon gets them from a registry; here none can be pulled).
fn copy_base_images(daemon: &SecondDaemon) {
    runtime().block_on(async {
        let from = xtask_release::clients::docker::connect().await.unwrap();
        let path = daemon.host.strip_prefix("unix://").unwrap();
        let to = bollard::Docker::connect_with_unix(path, 300, bollard::API_DEFAULT_VERSION).unwrap();
        xtask_local_stack::base_images::copy(&from, &to).await.unwrap();
    });
}

fn cache_tags(repository: &str) -> Vec<(Vec<String>, String)> {
    runtime().block_on(async {
        let ecr = local_ecr().await;
        let images = ecr.describe_images().repository_name(repository).into_paginator().items().send();
        let images: Vec<_> = images.collect::<Vec<_>>().await.into_iter().map(Result::unwrap).collect();
        images
            .into_iter()
            .filter(|d| d.image_tags().iter().any(|t| t.starts_with("buildcache-")))
            .map(|d| (d.image_tags().to_vec(), d.image_digest().unwrap().to_string()))
            .collect()
    })
}

#[test]
fn an_empty_daemon_builds_a_source_change_on_the_dependencies_from_ecr() {
    if !docker_or_skip("an_empty_daemon_builds_a_source_change_on_the_dependencies_from_ecr") {
        return;
    }
    local_stack();
    let repo = clone_workspace();
    crate::support::bootstrap_local(&repo);
    let push = |host: Option<&str>| {
        let env: Vec<(&str, &str)> = host.map(|host| ("DOCKER_HOST", host)).into_iter().collect();
        let run = repo.xtask_env(&["push", "--stage", "local", "--image", "app"], &env);
        run.ok();
        run.stderr()
    };

    // A first runner builds a change (new inputs) and exports the dependency stage. It is
    // the default daemon: its dependency stage is the one every other test's app build
    // compiles (once per run), so this test adds no compile of its own.
    repo.append("app/src/main.rs", &format!("\n// {}\n", unique("first change")));
    repo.commit("a change to the app");
    let log = push(None);
    assert!(log.contains("app: built and pushed"), "{log}");
    let caches = cache_tags("hello/app");
    assert!(!caches.is_empty(), "the dependency stage is in ECR:\n{log}");
    // Cache images carry cache tags alone: never a commit's, an inputs or a channel tag.
    for (tags, digest) in &caches {
        assert!(tags.iter().all(|t| t.starts_with("buildcache-")), "{digest}: {tags:?}");
    }

    // A second runner, empty: the next one-line change starts from ECR's layers.
    let second = SecondDaemon::start();
    copy_base_images(&second);
    repo.append("app/src/main.rs", &format!("\n// {}\n", unique("second change")));
    let commit = repo.commit("another change to the app");
    let log = push(Some(&second.host));
    assert!(log.contains("app: built and pushed") && log.contains(&commit), "{log}");
    let deps_step = log.lines().find(|l| l.contains("[deps 4/4] RUN")).unwrap_or_default();
    assert!(deps_step.ends_with("(cached)"), "the dependency stage comes from the cache:\n{log}");
    assert!(log.contains("Compiling app"), "{log}");
    assert!(!log.contains("Compiling tokio"), "no dependency is compiled again:\n{log}");
    // The cache key did not change: nothing new was exported.
    assert!(!log.contains("pushed the build cache"), "{log}");
}
