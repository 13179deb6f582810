//! `cargo xtask promote`: a commit's images go from `local` to `local-prod` (a second
//! emulated account, reached by assuming a role) by digest, never rebuilt; what the
//! target has is not sent again, so an interrupted promotion finishes on a re-run.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    PROD_ACCOUNT, docker_or_skip, ecr_digest, ecr_manifest, local_ecr, local_ecr_in, local_stack, promotion_fixture,
    read_log, runtime, spawn_xtask, stack_dir, unique,
};

fn promoted(stdout: &str) -> Value {
    let report: Value = serde_json::from_str(stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"));
    report["images"][0].clone()
}

#[test]
fn promotion_keeps_the_digest_and_a_rerun_sends_nothing() {
    if !docker_or_skip("promotion_keeps_the_digest_and_a_rerun_sends_nothing") {
        return;
    }
    local_stack();
    let repository = unique("it-promote");
    let repo = promotion_fixture(&repository);
    // New bytes every run: the emulated ECR scans a digest only so often.
    repo.write("svc/data.txt", &unique("promoted"));
    let commit = repo.commit("a commit to promote");

    // The target stage never builds: push refuses it, before anything is built.
    let err = repo.xtask(&["push", "--stage", "local-prod"]).fails();
    assert!(err.contains("never builds its own") && err.contains("cargo xtask promote --to local-prod"), "{err}");
    // Only what the source stage has can be promoted.
    let err = repo.xtask(&["promote", "--to", "local-prod"]).fails();
    assert!(err.contains(&format!("{repository}:{commit} is not in stage `local`'s ECR")), "{err}");

    repo.xtask(&["push", "--stage", "local"]).ok();
    let first = promoted(&repo.xtask(&["promote", "--to", "local-prod", "--json"]).ok());
    assert_eq!(first["action"], "promoted", "{first}");
    assert!(first["blobs_copied"].as_u64().unwrap() >= 2, "config and layer cross: {first}");
    assert!(first["tags"].as_array().unwrap().iter().any(|t| t.as_str().unwrap().starts_with("inputs-")), "{first}");

    // Byte for byte: the manifest each account's ECR returns is the same, digest included.
    runtime().block_on(async {
        let source = ecr_manifest(&local_ecr().await, &repository, &commit).await;
        let target = ecr_manifest(&local_ecr_in(PROD_ACCOUNT).await, &repository, &commit).await;
        assert_eq!(source, target);
        assert_eq!(first["digest"].as_str(), Some(source.2.as_str()));
    });

    // A re-run finds the image there and sends nothing.
    let again = promoted(&repo.xtask(&["promote", "--to", "local-prod", "--json"]).ok());
    assert_eq!(again["action"], "already-there", "{again}");
    assert_eq!(again["blobs_copied"], 0, "{again}");
    crate::support::assert_output(
        "promote_of_a_promoted_commit",
        &repo.xtask(&["promote", "--to", "local-prod"]).stderr(),
    );

    // The next commit's tag names an index (the image and an attestation manifest, as
    // BuildKit pushes with provenance): its platform manifests cross first, by digest, then
    // the index with the same bytes.
    repo.write("README.md", "An index next.\n");
    let next = repo.commit("an index");
    let attestation = runtime().block_on(async {
        use crate::index::{OCI_INDEX, Registry, index};
        let registry = Registry::connect().await;
        let single = xtask_release::clients::ecr::manifest(&local_ecr().await, &repository, &commit).await.unwrap();
        let image = serde_json::json!({ "mediaType": single.media_type, "digest": single.digest, "size": single.body.len(),
                                        "platform": { "architecture": "amd64", "os": "linux" } });
        let attestation = registry.attestation(&repository, &single.digest).await;
        let digest = attestation["digest"].as_str().unwrap().to_string();
        let index_digest = registry.manifest(&repository, &next, OCI_INDEX, &index(vec![image, attestation])).await.0;
        // Made by hand, so signed by hand: only what the stage's key signed is promoted.
        crate::provenance::sign_by_hand("fixture", &repository, &index_digest, &next, "").await;
        digest
    });
    let promoted_index = promoted(&repo.xtask(&["promote", "--to", "local-prod", "--rev", &next, "--json"]).ok());
    assert_eq!(promoted_index["action"], "promoted", "{promoted_index}");
    runtime().block_on(async {
        let source = ecr_manifest(&local_ecr().await, &repository, &next).await;
        let prod_ecr = local_ecr_in(PROD_ACCOUNT).await;
        assert_eq!(source, ecr_manifest(&prod_ecr, &repository, &next).await);
        // The attestation manifest is in the second account's registry, under its digest.
        let auth = xtask_release::clients::ecr::authorization(&prod_ecr).await.unwrap();
        let registry = crate::support::local_ports().await.registry_of(Some(PROD_ACCOUNT)).unwrap().registry_host();
        let url = format!("http://{registry}/v2/{repository}/manifests/{attestation}");
        let accept = [("accept", "application/vnd.oci.image.manifest.v1+json")];
        let got = xtask_release::clients::http::Client::new()
            .with_credentials(&url, auth.basic_header())
            .unwrap()
            .get(&url, &accept)
            .await
            .unwrap();
        assert!(got.status.is_success(), "{url}: {}", got.status);
    });
}

/// The bytes of uploads in progress into `repository` in the second account's registry.
fn uploading(repository: &str) -> u64 {
    let uploads = stack_dir()
        .join(format!("registry-{PROD_ACCOUNT}/data/docker/registry/v2/repositories"))
        .join(repository)
        .join("_uploads");
    let entries = std::fs::read_dir(uploads).into_iter().flatten().flatten();
    entries.filter_map(|e| std::fs::metadata(e.path().join("data")).ok()).map(|m| m.len()).sum()
}

#[test]
fn an_interrupted_promotion_completes_on_rerun() {
    if !docker_or_skip("an_interrupted_promotion_completes_on_rerun") {
        return;
    }
    local_stack();
    let repository = unique("it-promote-kill");
    let repo = promotion_fixture(&repository);
    // A layer big enough to be caught mid-way, of new bytes every run.
    let mut bytes = vec![0u8; 96 << 20];
    let seed = unique("seed");
    for (i, chunk) in bytes.chunks_mut(32).enumerate() {
        use sha2::Digest;
        chunk.copy_from_slice(&sha2::Sha256::digest(format!("{seed}{i}"))[..chunk.len()]);
    }
    std::fs::write(repo.path().join("svc/big.bin"), &bytes).unwrap();
    let commit = repo.commit("a big layer");
    repo.xtask(&["push", "--stage", "local"]).ok();

    // Killed (SIGKILL: no chance to clean up) while the layer streams into the target.
    let log = repo.path().join("promote.log");
    let mut child = spawn_xtask(&repo.path(), &["promote", "--to", "local-prod"], &[], &log);
    let started = Instant::now();
    while uploading(&repository) < 8 << 20 {
        assert!(child.try_wait().unwrap().is_none(), "promotion ended before it was caught mid-blob");
        assert!(started.elapsed() < Duration::from_secs(60), "no upload began:\n{}", read_log(&log));
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let prod =
        || runtime().block_on(async { ecr_digest(&local_ecr_in(PROD_ACCOUNT).await, &repository, &commit).await });
    assert_eq!(prod(), None, "no tag names an image whose layer never arrived whole");

    // The re-run sends what is missing (the layer) and not what arrived (the config).
    let rerun = promoted(&repo.xtask(&["promote", "--to", "local-prod", "--json"]).ok());
    assert_eq!(rerun["action"], "promoted", "{rerun}");
    assert_eq!((rerun["blobs_copied"].as_u64(), rerun["blobs_present"].as_u64()), (Some(1), Some(1)), "{rerun}");
    let source = runtime().block_on(async { ecr_digest(&local_ecr().await, &repository, &commit).await });
    assert_eq!(prod(), source);
}
