//! Build cache in ECR: a runner whose daemon starts empty builds a one-line change to the
//! app with the dependency stage taken from ECR, never compiled again.

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
    let push = |daemon: &SecondDaemon| {
        let run = repo.xtask_env(&["push", "--stage", "local", "--image", "app"], &[("DOCKER_HOST", &daemon.host)]);
        run.ok();
        run.stderr()
    };

    // A first runner builds a change (new inputs) and exports the dependency stage.
    let first = SecondDaemon::start();
    copy_base_images(&first);
    repo.append("app/src/main.rs", &format!("\n// {}\n", unique("first change")));
    repo.commit("a change to the app");
    let log = push(&first);
    assert!(log.contains("app: built and pushed"), "{log}");
    // (Unless a run before this one, on this local stack, exported this very stage already.)
    let cached_before = log.contains("importing cache manifest");
    assert!(cached_before || log.contains("Compiling tokio"), "an empty daemon compiles the dependencies:\n{log}");
    let caches = cache_tags("hello/app");
    assert!(!caches.is_empty(), "the dependency stage is in ECR:\n{log}");
    // Cache images carry cache tags alone: never a commit's, an inputs or a channel tag.
    for (tags, digest) in &caches {
        assert!(tags.iter().all(|t| t.starts_with("buildcache-")), "{digest}: {tags:?}");
    }
    drop(first);

    // A second runner, empty as well: the next one-line change starts from ECR's layers.
    let second = SecondDaemon::start();
    copy_base_images(&second);
    repo.append("app/src/main.rs", &format!("\n// {}\n", unique("second change")));
    let commit = repo.commit("another change to the app");
    let log = push(&second);
    assert!(log.contains("app: built and pushed") && log.contains(&commit), "{log}");
    let deps_step = log.lines().find(|l| l.contains("[deps 4/4] RUN")).unwrap_or_default();
    assert!(deps_step.ends_with("(cached)"), "the dependency stage comes from the cache:\n{log}");
    assert!(log.contains("Compiling app"), "{log}");
    assert!(!log.contains("Compiling tokio"), "no dependency is compiled again:\n{log}");
    // The cache key did not change: nothing new was exported.
    assert!(!log.contains("pushed the build cache"), "{log}");
}
