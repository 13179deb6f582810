//! `cargo xtask deploy --stage local`, end to end: a fresh clone of this workspace,
//! the real app image, the real cdk CLI deploying into the local stack.

use crate::support::{
    PROD_ACCOUNT, SecretWatch, clone_workspace, docker_or_skip, files_holding, local_ecr_in, local_secrets,
    local_stack, runtime, spawn_xtask, stack_dir, stack_task_images, stack_task_images_in, version_at,
};

const REPOSITORY_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hello/app";

/// The app's image in the service stack's task definitions.
fn service_images() -> Vec<String> {
    app_only(runtime().block_on(stack_task_images("hello-local-service")))
}

fn app_only(images: Vec<String>) -> Vec<String> {
    images.into_iter().filter(|i| i.contains("/hello/app")).collect()
}

/// The names of the checks `check --json` failed.
fn failed_checks(json: &serde_json::Value) -> Vec<&str> {
    let checks = json["checks"].as_array().unwrap();
    checks.iter().filter(|c| c["ok"] == false).map(|c| c["name"].as_str().unwrap()).collect()
}

/// The URL a deploy's output gives for the app (`app: http://127.0.0.1:PORT (curl ...)`).
fn url_in(stderr: &str) -> String {
    url_of("app", stderr)
}

/// The URL a deploy's output gives for `image` (`<image>: http://127.0.0.1:PORT ...`).
fn url_of(image: &str, stderr: &str) -> String {
    let prefix = format!("{image}: http://");
    let found = stderr.lines().find_map(|l| l.strip_prefix(&prefix)?.split_whitespace().next());
    format!("http://{}", found.unwrap_or_else(|| panic!("no URL of {image} in the deploy's output:\n{stderr}")))
}

#[test]
fn deploy_rolls_forward_and_back_and_refuses_unpushed_commits() {
    if !docker_or_skip("deploy_rolls_forward_and_back_and_refuses_unpushed_commits") {
        return;
    }
    local_stack();
    let _turn = crate::rollback::LOCAL_STAGE.lock().unwrap_or_else(|e| e.into_inner());
    let repo = clone_workspace();

    // A fresh clone: the whole chain (bootstrap, push, check presence, cdk deploy).
    let first = repo.head();
    let run = repo.xtask(&["deploy", "--stage", "local"]);
    run.ok();
    assert!(run.stderr().contains("$ cdk deploy hello-local-service"), "{}", run.stderr());
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}:{first}")]);
    // The worker is the stack's second service, deployed at the same commit, and runs too.
    let all = runtime().block_on(stack_task_images("hello-local-service"));
    assert!(all.contains(&REPOSITORY_URI.replace("/hello/app", &format!("/hello/worker:{first}"))), "{all:?}");
    let worker_url = run
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("worker: http://")?.split_whitespace().next().map(|a| format!("http://{a}")));
    let worker_url = worker_url.unwrap_or_else(|| panic!("no worker URL:\n{}", run.stderr()));
    assert_eq!(version_at(&worker_url)["image_tag"], first.as_str());
    // The service runs on this machine, and says which commit it was deployed as.
    let url = url_in(&run.stderr());
    assert_eq!(version_at(&url)["image_tag"], first.as_str());
    // Deployed again, unchanged: nothing is replaced, the same container keeps serving.
    let run = repo.xtask(&["deploy", "--stage", "local"]);
    run.ok();
    assert!(run.stderr().contains("already runs these images; nothing to deploy"), "{}", run.stderr());
    assert_eq!(url_in(&run.stderr()), url);

    // A second commit: deploy moves the service to its tag. No secret (the registry
    // password, the stack's AWS secret key) reaches an argv, an environment, a log or the output.
    repo.append("README.md", "\nA change outside every image's context.\n");
    let second = repo.commit("second");
    let secrets = local_secrets();
    let watch = SecretWatch::start(&secrets);
    let run = repo.xtask(&["deploy", "--stage", "local"]);
    let (leaks, samples) = watch.finish();
    run.ok();
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}:{second}")]);
    assert_eq!(version_at(&url_in(&run.stderr()))["image_tag"], second.as_str());
    assert!(samples > 3 && leaks.is_empty(), "a secret appeared in {leaks:?}");
    assert!(secrets.iter().all(|s| !run.stdout().contains(s.as_str()) && !run.stderr().contains(s.as_str())));
    let home = std::path::PathBuf::from(std::env::var("HOME").unwrap());
    let files = files_holding(&[repo.path().join("target"), stack_dir(), home.join(".docker")], &secrets);
    assert!(files.is_empty(), "a secret was written to {files:?}");

    // Rollback to the first commit, without checking it out: the service answers as it.
    let run = repo.xtask(&["deploy", "--stage", "local", "--rev", &first, "--json"]);
    let report: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    // What the deploy itself says (cdk's own lines, which come and go with its versions, aside).
    let stderr = run.stderr();
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| ["app: ", "worker: ", "deployed ", "local stack: ", "refusing"].iter().any(|p| l.starts_with(p)))
        .collect();
    crate::support::assert_output("deploy_of_an_earlier_commit", &ours.join("\n"));
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}:{first}")]);
    assert_eq!(
        (report["commit"].as_str(), report["images"][0]["state"].as_str()),
        (Some(first.as_str()), Some("running"))
    );
    let url = report["images"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(version_at(&url)["image_tag"], first.as_str());
    let status = repo.xtask(&["local", "status"]).ok();
    assert!(status.lines().any(|l| l.starts_with("service") && l.contains(&url) && l.contains("running")), "{status}");

    // Each deploy tagged what it deployed: the repository's lifecycle policy keeps those
    // images first, `untag` refuses them and `gc` never lists them.
    let (policy, deployed) = runtime().block_on(async {
        let ecr = crate::support::local_ecr().await;
        let policy = ecr.get_lifecycle_policy().repository_name("hello/app").send().await.unwrap();
        let mut deployed = vec![];
        for rev in [&first, &second] {
            let detail = xtask_release::clients::ecr::image_by_tag(&ecr, "hello/app", rev).await.unwrap().unwrap();
            deployed.push((detail.image_digest().unwrap().to_string(), detail.image_tags().to_vec()));
        }
        (policy.lifecycle_policy_text().unwrap().to_string(), deployed)
    });
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["rules"][0]["selection"]["tagPrefixList"], serde_json::json!(["deployed-dev."]), "{policy}");
    for (digest, tags) in &deployed {
        assert!(tags.iter().any(|t| t.starts_with("deployed-local.")), "{digest}: {tags:?}");
    }
    let run = repo.xtask(&["untag", &format!("app:{first}")]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(err.contains("stage local runs it"), "{err}");
    let gc: serde_json::Value = serde_json::from_str(repo.xtask(&["gc", "--keep", "1", "--json"]).ok().trim()).unwrap();
    let listed = gc["repositories"][0]["delete"].to_string();
    assert!(deployed.iter().all(|(digest, _)| !listed.contains(digest.as_str())), "{listed}");

    // A commit whose image was never pushed: refused before cdk runs.
    repo.append("README.md", "\nNever pushed.\n");
    let third = repo.commit("third");
    let run = repo.xtask(&["deploy", "--stage", "local", "--rev", &third]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "a refused deploy is a verdict: {err}");
    assert!(err.contains(&format!("hello/app:{third} is not in ECR")), "{err}");
    assert!(err.contains("cargo xtask push --stage local"), "{err}");
    assert!(!err.contains("$ cdk"), "cdk must not run:\n{err}");
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}:{first}")], "the service is untouched");

    // check: passes on a pushed commit, names the failed check on the unpushed one.
    let out = repo.xtask(&["check", "--stage", "local", "--rev", &second, "--json", "--scan-timeout", "20"]);
    let json: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(json["ok"], true, "{}", out.stderr());
    let names: Vec<&str> = json["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    let per_image = |name: &str, repository: &str| {
        ["image", "revision", "provenance", "base", "scan"]
            .map(|check| format!("{check} {name}"))
            .into_iter()
            .chain([format!("repository {repository}")])
    };
    let expected: Vec<String> = std::iter::once("tree".to_string())
        .chain(per_image("app", "hello/app"))
        .chain(per_image("worker", "hello/worker"))
        .chain(["synth".to_string()])
        .collect();
    assert_eq!(names, expected);
    assert!(out.success());

    let out = repo.xtask(&["check", "--stage", "local", "--rev", &third, "--json"]);
    assert!(!out.success());
    let json: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    let failed = failed_checks(&json);
    assert_eq!(failed, ["image app", "image worker"], "{}", out.stderr());

    // An image under a commit's tag that no trusted push signed (copied by hand, as a person
    // with push access could): refused before cdk runs.
    repo.append("README.md", "\nCopied by hand.\n");
    let by_hand = repo.commit("copied by hand");
    for image in ["hello/app", "hello/worker"] {
        crate::provenance::copy_by_hand(&format!("{image}:{first}"), &format!("{image}:{by_hand}"));
    }
    let run = repo.xtask(&["deploy", "--stage", "local", "--rev", &by_hand]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "a refused deploy is a verdict: {err}");
    assert!(err.contains("refusing to deploy: hello/app@sha256:") && err.contains("no signed provenance"), "{err}");
    assert!(!err.contains("$ cdk"), "cdk must not run:\n{err}");

    // Two deploys of the stage at once: the second waits for the first; both succeed.
    let logs = repo.sh.create_temp_dir().unwrap();
    let mut deploys: Vec<_> = [&second, &first]
        .iter()
        .enumerate()
        .map(|(i, rev)| {
            let log = logs.path().join(format!("deploy-{i}.log"));
            let deploy = spawn_xtask(&repo.path(), &["deploy", "--stage", "local", "--rev", rev], &[], &log);
            // The first holds the stage's lock before the second starts.
            if i == 0 {
                let lock = crate::support::target_dir(&repo.path()).join("xtask/deploy-local.lock");
                let limit = std::time::Duration::from_secs(120);
                crate::support::wait_until("the first deploy to hold the lock", limit, || {
                    crate::support::lock_held(&lock)
                });
            }
            deploy
        })
        .collect();
    let codes: Vec<_> = deploys.iter_mut().map(|d| d.wait().unwrap().code()).collect();
    let logs: Vec<String> =
        (0..2).map(|i| std::fs::read_to_string(logs.path().join(format!("deploy-{i}.log"))).unwrap()).collect();
    assert_eq!(codes, [Some(0), Some(0)], "{logs:?}");
    assert!(logs[1].contains("waiting for another deploy, gc or untag of stage `local`"), "{}", logs[1]);
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}:{first}")], "the later deploy is the one that stands");

    // Pinned: the single manifest's digest, then an index's (in this test: the deploys of
    // one stack must not interleave with another test's).
    repo.xtask(&["deploy", "--stage", "local", "--rev", &first, "--pin-digest"]).ok();
    let digest = runtime().block_on(async {
        crate::support::ecr_digest(&crate::support::local_ecr().await, "hello/app", &first).await.unwrap()
    });
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}@{digest}")]);

    // The next commit's tag names an index (the image for linux/amd64 and an attestation
    // manifest, as BuildKit pushes with provenance): the pin is the index's digest, which
    // ECS resolves to the platform's image, never to the attestation.
    repo.append("README.md", "\nA change outside every image's context.\n");
    let fourth = repo.commit("fourth");
    let index_digest = runtime().block_on(async {
        use crate::index::{OCI_INDEX, Registry, index};
        let registry = Registry::connect().await;
        let single = xtask_release::clients::ecr::manifest(&crate::support::local_ecr().await, "hello/app", &first).await.unwrap();
        let image = serde_json::json!({ "mediaType": single.media_type, "digest": single.digest, "size": single.body.len(),
                                        "platform": { "architecture": "amd64", "os": "linux" } });
        let attestation = registry.attestation("hello/app", &single.digest).await;
        let index_digest = registry.manifest("hello/app", &fourth, OCI_INDEX, &index(vec![image, attestation])).await.0;
        // Made by hand, so signed by hand: deploy runs only what a trusted key signed.
        crate::provenance::sign_by_hand("hello", "hello/app", &index_digest, &fourth, "").await;
        index_digest
    });
    let run = repo.xtask(&["deploy", "--stage", "local", "--pin-digest"]);
    run.ok();
    assert!(run.stderr().contains(&format!("hello/app:{fourth}@{index_digest}")), "{}", run.stderr());
    assert_eq!(service_images(), vec![format!("{REPOSITORY_URI}@{index_digest}")]);
    let serving = url_in(&run.stderr());

    // A commit whose container exits at start: CloudFormation succeeds, the deploy does not.
    // It fails with what the container said and the command that rolls back; the version
    // that ran keeps serving.
    repo.append("app/Dockerfile", "\n# A release that cannot start.\nENTRYPOINT [\"/bin/false\"]\n");
    let broken = repo.commit("a broken release");
    let run = repo.xtask(&["deploy", "--stage", "local"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "a failed rollout is a verdict: {err}");
    assert!(err.contains(&format!("deploy of hello-local-service at {broken} failed")), "{err}");
    assert!(err.contains("exited with code 1"), "{err}");
    assert!(err.contains(&format!("roll back with `cargo xtask rollback --stage local --to {fourth}`")), "{err}");
    assert_eq!(version_at(&serving)["image_tag"], fourth.as_str(), "the previous version still serves");
    // Its images were protected before the rollout began and stay so whatever the outcome:
    // the lifecycle rules and gc keep an image with a deployed tag.
    let (tags, digest) = runtime().block_on(async {
        let ecr = crate::support::local_ecr().await;
        let detail = xtask_release::clients::ecr::image_by_tag(&ecr, "hello/app", &broken).await.unwrap().unwrap();
        (detail.image_tags().to_vec(), detail.image_digest().unwrap().to_string())
    });
    assert!(tags.iter().any(|t| t.starts_with("deployed-local.")), "{tags:?}");
    let plan = repo.xtask(&["gc", "--keep", "1", "--json"]).ok();
    assert!(!plan.contains(&digest), "gc never lists an image being deployed: {plan}");
}

#[test]
fn deploy_refuses_dirty_trees_for_non_local_stages() {
    let repo = clone_workspace();
    repo.append("README.md", "\ndirty\n");
    let err = repo.xtask(&["deploy", "--stage", "dev", "--allow-dirty"]).fails();
    assert!(err.contains("--allow-dirty images are never deployed to stage `dev`"), "{err}");
    let err = repo.xtask(&["deploy", "--stage", "dev"]).fails();
    assert!(err.contains("modified: README.md"), "{err}");
}

/// The prod path on the local stack: `local-prod` (a second emulated account) runs only
/// images promoted from `local`, by digest.
#[test]
fn prod_deploys_only_what_was_promoted() {
    if !docker_or_skip("prod_deploys_only_what_was_promoted") {
        return;
    }
    local_stack();
    let repo = clone_workspace();
    // A commit and an image of its own (the stack outlives a test run; the other deploy
    // test's commits must not reuse it): a file in the app's context that the Dockerfile
    // does not copy, so the build is all cache hits.
    let marker = crate::support::unique("promotion");
    repo.write(&format!("app/{marker}.txt"), &marker);
    let first = repo.commit("first");

    // Not promoted yet: refused before cdk deploys the service (the chain bootstraps the stage first).
    let run = repo.xtask(&["deploy", "--stage", "local-prod", "--rev", &first]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cargo xtask promote --to local-prod --rev {first}")), "{err}");
    assert!(!err.contains("$ cdk deploy hello-local-prod-service"), "{err}");

    // `local` as CI leaves it: bootstrapped (unless an earlier run did), the commit pushed.
    crate::support::bootstrap_local(&repo);
    repo.xtask(&["push", "--stage", "local"]).ok();
    repo.xtask(&["promote", "--to", "local-prod"]).ok();
    repo.xtask(&["deploy", "--stage", "local-prod"]).ok();
    let images = app_only(runtime().block_on(stack_task_images_in(PROD_ACCOUNT, "hello-local-prod-service")));
    assert_eq!(images, vec![format!("{PROD_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/hello/app:{first}")]);

    // An image under the next commit's tag in prod that is not the one `local` has (built
    // for prod, not promoted): check fails on it and deploy refuses it.
    repo.append("README.md", "\nA change outside every image's context.\n");
    let second = repo.commit("second");
    repo.xtask(&["push", "--stage", "local"]).ok();
    // The worker goes the proper way; only the app is out of line.
    repo.xtask(&["promote", "--to", "local-prod", "--image", "worker"]).ok();
    runtime().block_on(async {
        let prod = local_ecr_in(PROD_ACCOUNT).await;
        let manifest = xtask_release::clients::ecr::manifest(&prod, "hello/app", &first).await.unwrap();
        let mut other: serde_json::Value = serde_json::from_str(&manifest.body).unwrap();
        other["annotations"] = serde_json::json!({ "built-for": "prod" });
        let body = serde_json::to_string(&other).unwrap();
        use sha2::Digest;
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(body.as_bytes()));
        prod.put_image()
            .repository_name("hello/app")
            .image_manifest(body)
            .image_manifest_media_type(manifest.media_type)
            .image_digest(digest)
            .image_tag(&second)
            .send()
            .await
            .unwrap();
    });
    let out = repo.xtask(&["check", "--stage", "local-prod", "--json", "--scan-timeout", "20"]);
    let json: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    let failed = failed_checks(&json);
    // (The stand-in image is no real build: its revision and scan checks fail too.)
    assert!(failed.contains(&"promoted app"), "{}", out.stderr());
    let run = repo.xtask(&["deploy", "--stage", "local-prod"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(err.contains("it was built, not promoted"), "{err}");
    let images = app_only(runtime().block_on(stack_task_images_in(PROD_ACCOUNT, "hello-local-prod-service")));
    assert_eq!(images, vec![format!("{PROD_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/hello/app:{first}")], "untouched");
}
