//! `cargo xtask check` failing for the right reason, each check named.

use serde_json::{Value, json};

use crate::support::{Fixture, Run, docker_or_skip, local_ecr, local_stack, runtime, unique};

/// A fixture pushed to a repository with the given settings; returns it and the repository.
fn pushed(immutable: bool) -> (Fixture, String) {
    local_stack();
    let repository = unique("it/check");
    let repo = Fixture::with_repository(&repository);
    // The lifecycle policy the settings resolve to, as the registry stack sets it.
    let config: Value = serde_json::from_str(&repo.xtask(&["config"]).ok()).unwrap();
    let policy = config["lifecyclePolicy"].to_string();
    runtime().block_on(async {
        let ecr = local_ecr().await;
        crate::support::create_repository(&ecr, &repository, immutable).await;
        let scanning = aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(true).build();
        ecr.put_image_scanning_configuration()
            .repository_name(&repository)
            .image_scanning_configuration(scanning)
            .send()
            .await
            .unwrap();
        ecr.put_lifecycle_policy().repository_name(&repository).lifecycle_policy_text(policy).send().await.unwrap();
    });
    repo.xtask(&["push"]).ok();
    (repo, repository)
}

fn check(repo: &Fixture, extra: &[&str]) -> (Value, Run) {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let run = repo.xtask(&args);
    let json = serde_json::from_str(run.stdout().trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", run.stdout(), run.stderr()));
    // A verdict, never a failure to run: 0 deployable, 1 not.
    let expected = if run.success() { 0 } else { 1 };
    assert_eq!(run.output.status.code(), Some(expected), "{}", run.stderr());
    (json, run)
}

#[test]
fn an_unpushed_commit_is_not_deployable_and_exits_1() {
    if !docker_or_skip("an_unpushed_commit_is_not_deployable_and_exits_1") {
        return;
    }
    let (repo, repository) = pushed(true);
    repo.append("svc/data.txt", "two\n");
    let commit = repo.commit("not pushed");
    let (json, run) = check(&repo, &["--scan-timeout", "5"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let (ok, detail) = verdict(&json, "image svc");
    assert!(!ok);
    assert_eq!(detail, format!("{repository}:{commit} is not in ECR; push it with `cargo xtask push`"));
}

/// Adds `tag` to the image `repository:existing` in ECR (BatchGetImage + PutImage).
fn tag_in_ecr(repository: &str, existing: &str, tag: &str) {
    runtime().block_on(async {
        let ecr = local_ecr().await;
        let manifest = xtask_release::clients::ecr::manifest(&ecr, repository, existing).await.unwrap();
        xtask_release::clients::ecr::put_tag(&ecr, repository, &manifest, tag).await.unwrap();
    });
}

/// The named check's (ok, detail).
fn verdict<'a>(json: &'a Value, name: &str) -> (bool, &'a str) {
    let check = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check named {name}: {json}"));
    (check["ok"].as_bool().unwrap(), check["detail"].as_str().unwrap())
}

/// Makes the emulated ECR report `result` for the next scan lookup of the image `repository:tag`.
fn set_scan_result(repository: &str, tag: &str, status: &str, counts: Value) {
    // By digest: moto matches a result against the image's digest or its latest tag only.
    let digest = runtime()
        .block_on(async { crate::support::ecr_digest(&local_ecr().await, repository, tag).await })
        .expect("the image is in ECR");
    let body = json!({
        "region": "us-east-1",
        "results": [{
            "registryId": "123456789012",
            "repositoryName": repository,
            "imageId": { "imageDigest": digest },
            "imageScanStatus": { "status": status, "description": "set by the test" },
            "imageScanFindings": { "findings": [], "findingSeverityCounts": counts },
        }],
    });
    runtime().block_on(async {
        let url =
            format!("{}/moto-api/static/ecr/scan-finding-results", crate::support::local_ports().await.moto_url());
        let response = xtask_release::clients::http::Client::new()
            .send(
                hyper::Method::POST,
                &url,
                &[("content-type", "application/json")],
                serde_json::to_vec(&body).unwrap().into(),
            )
            .await
            .unwrap();
        assert!(response.status.is_success(), "{}", response.status);
    });
}

#[test]
fn a_sound_pushed_commit_passes_every_image_check() {
    if !docker_or_skip("a_sound_pushed_commit_passes_every_image_check") {
        return;
    }
    let (repo, repository) = pushed(true);
    let (json, run) = check(&repo, &["--scan-timeout", "20"]);
    assert_eq!(json["commit"], repo.head().as_str());
    for name in ["tree", "image svc", "revision svc", "provenance svc", "scan svc", &format!("repository {repository}")]
    {
        let (ok, detail) = verdict(&json, name);
        assert!(ok, "{name}: {detail}\n{}", run.stderr());
    }
    assert!(!verdict(&json, &format!("repository {repository}")).1.contains("not the settings'"));
    // The fixture has no infra/: synth fails, so the whole check fails, and says so.
    assert!(!verdict(&json, "synth").0);
    assert_eq!(json["ok"], false);
    assert!(!run.success());
    assert!(run.stderr().contains("not deployable: 1 of 7 checks failed (synth)"), "{}", run.stderr());
    crate::support::assert_output("check_of_a_sound_pushed_commit", &run.stderr());
}

#[test]
fn a_critical_finding_fails_the_scan_check() {
    if !docker_or_skip("a_critical_finding_fails_the_scan_check") {
        return;
    }
    let (repo, repository) = pushed(true);
    set_scan_result(&repository, &repo.head(), "COMPLETE", json!({ "CRITICAL": 2, "LOW": 3 }));
    let (json, run) = check(&repo, &[]);
    let (ok, detail) = verdict(&json, "scan svc");
    assert!(!ok, "{detail}");
    assert!(detail.contains("2 CRITICAL at or above CRITICAL"), "{detail}");
    assert!(!run.success());

    // A lower threshold: LOW findings count too.
    let (json, _) = check(&repo, &["--severity", "LOW"]);
    let (_, detail) = verdict(&json, "scan svc");
    assert!(detail.contains("2 CRITICAL, 3 LOW at or above LOW"), "{detail}");
}

#[test]
fn a_scan_that_never_completes_is_not_clean() {
    if !docker_or_skip("a_scan_that_never_completes_is_not_clean") {
        return;
    }
    let (repo, repository) = pushed(true);
    set_scan_result(&repository, &repo.head(), "IN_PROGRESS", json!({}));
    let (json, _) = check(&repo, &["--scan-timeout", "3"]);
    let (ok, detail) = verdict(&json, "scan svc");
    assert!(!ok);
    assert!(detail.contains("did not complete within 3s"), "{detail}");
    assert!(detail.contains("not a clean result"), "{detail}");
}

#[test]
fn a_mutable_repository_fails_the_repository_check() {
    if !docker_or_skip("a_mutable_repository_fails_the_repository_check") {
        return;
    }
    let (repo, repository) = pushed(false);
    let (json, run) = check(&repo, &[]);
    let (ok, detail) = verdict(&json, &format!("repository {repository}"));
    assert!(!ok);
    assert!(detail.contains("tags are mutable"), "{detail}");
    assert!(!detail.contains("scan on push is off"), "only the mutability is wrong: {detail}");
    assert!(!run.success());
}

#[test]
fn a_wrong_revision_label_fails_the_revision_check() {
    if !docker_or_skip("a_wrong_revision_label_fails_the_revision_check") {
        return;
    }
    // Another history's image, tagged in ECR with this commit's tag.
    let (other, repository) = pushed(true);
    let repo = Fixture::with_repository(&repository);
    repo.write("svc/data.txt", "another history\n");
    let commit = repo.commit("unrelated");
    tag_in_ecr(&repository, &other.head(), &commit);
    let (json, run) = check(&repo, &[]);
    let (ok, detail) = verdict(&json, "revision svc");
    assert!(!ok, "{detail}");
    assert!(detail.contains(&format!("revision label is {}", other.head())), "{detail}");
    assert!(detail.contains("neither this commit nor one of its ancestors"), "{detail}");
    assert!(!run.success());
}

#[test]
fn a_missing_image_fails_the_image_check() {
    if !docker_or_skip("a_missing_image_fails_the_image_check") {
        return;
    }
    let (repo, _) = pushed(true);
    repo.write("svc/data.txt", "never pushed\n");
    repo.commit("unpushed");
    let (json, _) = check(&repo, &[]);
    let (ok, detail) = verdict(&json, "image svc");
    assert!(!ok);
    assert!(detail.contains("is not in ECR; push it with `cargo xtask push`"), "{detail}");
}

#[test]
fn a_shallow_clone_says_the_history_is_missing() {
    if !docker_or_skip("a_shallow_clone_says_the_history_is_missing") {
        return;
    }
    let (repo, _) = pushed(true);
    let built_from = repo.head();
    // A commit that changes none of the image's inputs: its tag is added to the first image.
    repo.write("README.md", "docs only\n");
    repo.commit("docs");
    repo.xtask(&["push"]).ok();

    let sh = &repo.sh;
    let clone = sh.create_temp_dir().unwrap();
    let (source, target) = (format!("file://{}", repo.path().display()), clone.path().join("ws"));
    xshell::cmd!(sh, "git clone -q --depth 1 {source} {target}").run().unwrap();
    let run = crate::support::xtask(&target, &["check", "--json", "--scan-timeout", "5"]);
    let json: Value = serde_json::from_str(run.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stderr()));
    let (ok, detail) = verdict(&json, "revision svc");
    assert!(!ok, "{detail}");
    assert!(detail.contains(&format!("this clone is shallow and lacks commit {built_from}")), "{detail}");
    assert!(detail.contains("git fetch --unshallow"), "{detail}");
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
}

#[test]
fn inputs_that_cannot_be_recomputed_fail_the_revision_check() {
    if !docker_or_skip("inputs_that_cannot_be_recomputed_fail_the_revision_check") {
        return;
    }
    let (repo, repository) = pushed(true);
    let built_from = repo.head();
    // A descendant whose image inputs cannot be read (its Dockerfile is gone), tagged in ECR
    // with the ancestor's image: the recorded inputs key must not be trusted blindly.
    repo.write(".dockerignore", "");
    std::fs::remove_file(repo.path().join("svc/Dockerfile")).unwrap();
    let commit = repo.commit("no Dockerfile");
    tag_in_ecr(&repository, &built_from, &commit);
    let (json, run) = check(&repo, &["--scan-timeout", "5"]);
    let (ok, detail) = verdict(&json, "revision svc");
    assert!(!ok, "{detail}");
    assert!(detail.contains("cannot recompute the image's inputs key"), "{detail}");
    assert_eq!(run.output.status.code(), Some(1));
}

#[test]
fn a_lifecycle_policy_other_than_the_settings_is_a_warning() {
    if !docker_or_skip("a_lifecycle_policy_other_than_the_settings_is_a_warning") {
        return;
    }
    let (repo, repository) = pushed(true);
    // The policy before retention rules: it would expire deployed images among the rest.
    let policy = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}"#;
    runtime().block_on(async {
        let ecr = local_ecr().await;
        ecr.put_lifecycle_policy().repository_name(&repository).lifecycle_policy_text(policy).send().await.unwrap();
    });
    let (json, _) = check(&repo, &["--scan-timeout", "20"]);
    let name = format!("repository {repository}");
    let (ok, detail) = verdict(&json, &name);
    assert!(ok, "a warning, not a failure: {detail}");
    assert!(detail.contains("the lifecycle policy is not the settings'"), "{detail}");
    assert!(detail.contains("cargo xtask bootstrap --stage local"), "{detail}");
    let warned = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == name.as_str()).unwrap();
    assert_eq!(warned["warning"], true);
}
