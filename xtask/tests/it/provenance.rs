//! Signed provenance: what `push` attaches verifies with cosign (an independent verifier)
//! and the stage's public key; an image under a commit's tag that no trusted push signed
//! (copied by hand) is refused by `check`, `promote` and `push`; what a pull request signed
//! is never reused by main's push.

use std::path::{Path, PathBuf};

use serde_json::Value;
use xshell::{Shell, cmd};

use crate::support::{
    PROD_ACCOUNT, docker_or_skip, local_ports, local_stack, promotion_fixture, runtime, tool_or_skip, unique,
};

/// The local stack's KMS in `account` (moto's own when `None`).
pub async fn local_kms_in(account: Option<&str>) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&local_ports().await.sdk_config_in("us-east-1", account).await)
}

/// The public half of `alias` in `account`, as cosign's `--key` PEM file in `dir`.
pub fn public_key_pem(dir: &Path, account: Option<&str>, alias: &str) -> PathBuf {
    let der = runtime().block_on(async {
        xtask_release::clients::kms::public_key(&local_kms_in(account).await, alias).await.unwrap()
    });
    let path = dir.join(format!("{}.pem", alias.replace('/', "-")));
    std::fs::write(&path, xtask_release::domain::provenance::public_key_pem(&der)).unwrap();
    path
}

/// The registry host and its credentials in `account`, as `push` gets them.
fn registry_of(account: Option<&str>) -> (String, xtask_release::clients::ecr::RegistryAuth) {
    runtime().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&local_ports().await.sdk_config_in("us-east-1", account).await);
        let auth = xtask_release::clients::ecr::authorization(&ecr).await.unwrap();
        let ports = local_ports().await;
        let host = match account {
            Some(account) => ports.registry_of(Some(account)).unwrap().registry_host(),
            None => ports.registry_host(),
        };
        (host, auth)
    })
}

/// A docker config (cosign and skopeo read it) in `dir` with the credentials of `account`'s registry.
fn docker_config(dir: &Path, account: Option<&str>) -> String {
    let (host, auth) = registry_of(account);
    let config =
        serde_json::json!({ "auths": { &host: { "auth": auth.basic_header().trim_start_matches("Basic ") } } });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    host
}

/// `cosign verify-attestation` of `repository@digest` in `account`'s registry with the
/// public key `key`: (success, what it said).
pub fn cosign_verify(account: Option<&str>, repository: &str, digest: &str, key: &Path) -> (bool, String) {
    let sh = Shell::new().unwrap();
    let config = sh.create_temp_dir().unwrap();
    let host = docker_config(config.path(), account);
    let image = format!("{host}/{repository}@{digest}");
    let out = cmd!(
        sh,
        "cosign verify-attestation --key {key} --type slsaprovenance1 --insecure-ignore-tlog=true --allow-http-registry {image}"
    )
    .env("DOCKER_CONFIG", config.path())
    .quiet()
    .ignore_status()
    .output()
    .expect("cosign runs (Debian's cosign package; .ci/run installs it)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Copies `from` to `to` (tags of the local registry) with skopeo, as a person with push
/// access could: the manifest re-encoded as OCI, so another digest, and nothing signed.
pub fn copy_by_hand(from: &str, to: &str) {
    let sh = Shell::new().unwrap();
    let config = sh.create_temp_dir().unwrap();
    let host = docker_config(config.path(), None);
    let auth = config.path().join("config.json");
    let (from, to) = (format!("docker://{host}/{from}"), format!("docker://{host}/{to}"));
    cmd!(
        sh,
        "skopeo copy --quiet --format oci --authfile {auth} --src-tls-verify=false --dest-tls-verify=false {from} {to}"
    )
    .run()
    .unwrap();
}

/// The commits the statements cosign verified name (it prints each DSSE envelope as a JSON line).
fn verified_commits(cosign_output: &str) -> Vec<String> {
    use base64::Engine;
    let envelopes = cosign_output.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok());
    envelopes
        .filter_map(|e| base64::engine::general_purpose::STANDARD.decode(e["payload"].as_str()?).ok())
        .filter_map(|p| serde_json::from_slice::<Value>(&p).ok())
        .filter_map(|s| Some(s["predicate"]["buildDefinition"]["externalParameters"]["commit"].as_str()?.to_string()))
        .collect()
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn cosign_verifies_what_push_signed_and_nothing_unsigned_is_checked_promoted_or_pushed_over() {
    let test = "cosign_verifies_what_push_signed_and_nothing_unsigned_is_checked_promoted_or_pushed_over";
    if !docker_or_skip(test) || !tool_or_skip("cosign", test) || !tool_or_skip("skopeo", test) {
        return;
    }
    local_stack();
    let repository = unique("provenance/svc");
    let repo = promotion_fixture(&repository);
    let first = repo.head();
    let keys = repo.sh.create_temp_dir().unwrap();

    // push signs with the stage's main key and attaches the statement to the image.
    let pushed = json(&repo.xtask(&["push", "--stage", "local", "--json"]).ok());
    let image = &pushed["images"][0];
    let (digest, referrer) = (image["digest"].as_str().unwrap(), image["provenance"].as_str().unwrap());
    assert!(referrer.starts_with("sha256:"), "{pushed}");
    let main_key = public_key_pem(keys.path(), None, "alias/fixture-local-main");
    let (ok, said) = cosign_verify(None, &repository, digest, &main_key);
    assert!(ok, "cosign refused what push signed: {said}");
    assert_eq!(verified_commits(&said), std::slice::from_ref(&first), "the statement names the commit: {said}");
    // The pull-request key did not sign it: cosign refuses it with that key.
    let pr_key = public_key_pem(keys.path(), None, "alias/fixture-local-pr");
    let (ok, said) = cosign_verify(None, &repository, digest, &pr_key);
    assert!(!ok, "cosign accepted another key: {said}");

    // The next commit's tag, written by hand (skopeo re-encodes the image: another digest,
    // no provenance). check fails it, promote and push refuse it.
    repo.append("README.md", "\nA change outside the image's context.\n");
    let second = repo.commit("second");
    copy_by_hand(&format!("{repository}:{first}"), &format!("{repository}:{second}"));
    let out = repo.xtask(&["check", "--stage", "local", "--rev", &second, "--json", "--scan-timeout", "1"]);
    let checks = json(&out.stdout());
    let provenance = checks["checks"].as_array().unwrap().iter().find(|c| c["name"] == "provenance svc").unwrap();
    assert_eq!(provenance["ok"], false, "{checks}");
    assert!(provenance["detail"].as_str().unwrap().contains("no signed provenance"), "{provenance}");
    let run = repo.xtask(&["promote", "--to", "local-prod", "--rev", &second]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(err.contains("refusing to promote") && err.contains("no signed provenance"), "{err}");
    let run = repo.xtask(&["push", "--stage", "local"]);
    let err = run.fails();
    assert_eq!(run.output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{repository}:{second} is in ECR, but")), "{err}");
    assert!(err.contains("--delete-image"), "{err}");

    // The signed commit is promoted with its provenance, same bytes: the target's registry
    // serves it, cosign verifies it there, and local-prod's check trusts it.
    let promoted = json(&repo.xtask(&["promote", "--to", "local-prod", "--rev", &first, "--json"]).ok());
    assert_eq!(promoted["images"][0]["provenance"], referrer, "{promoted}");
    let (ok, said) = cosign_verify(Some(PROD_ACCOUNT), &repository, digest, &main_key);
    assert!(ok, "cosign refused the promoted provenance: {said}");
    let out = repo.xtask(&["check", "--stage", "local-prod", "--rev", &first, "--json", "--scan-timeout", "1"]);
    let checks = json(&out.stdout());
    let provenance = checks["checks"].as_array().unwrap().iter().find(|c| c["name"] == "provenance svc").unwrap();
    assert_eq!(provenance["ok"], true, "{checks}");
    assert!(provenance["detail"].as_str().unwrap().contains("alias/fixture-local-main"), "{provenance}");
}

#[test]
fn main_never_reuses_an_image_only_a_pull_request_signed() {
    if !docker_or_skip("main_never_reuses_an_image_only_a_pull_request_signed") {
        return;
    }
    local_stack();
    let repository = unique("provenance/svc");
    let pr_repository = format!("pr/{repository}");
    let repo = promotion_fixture(&repository);
    let in_ecr = |repository: &str, tag: &str| {
        runtime().block_on(async {
            let ecr = crate::support::local_ecr().await;
            let found = xtask_release::clients::ecr::image_by_tag(&ecr, repository, tag).await.unwrap();
            found.map(|d| (d.image_digest().unwrap().to_string(), d.image_tags().to_vec()))
        })
    };
    // A pull request's work (here a dirty tree: the pull-request channel, signed with the
    // pull-request key) goes to its own repository alone, under main's `inputs-<key>` there:
    // exactly what a throwaway pull request would push to poison main's next build.
    repo.write("svc/data.txt", &format!("{}\n", unique("content")));
    let pr = json(&repo.xtask(&["push", "--stage", "local", "--allow-dirty", "--json"]).ok());
    let image = &pr["images"][0];
    assert_eq!((image["action"].as_str(), image["repository"].as_str()), (Some("built"), Some(pr_repository.as_str())));
    let (pr_tag, pr_digest) = (pr["commit"].as_str().unwrap(), image["digest"].as_str().unwrap());
    let (_, pr_tags) = in_ecr(&pr_repository, pr_tag).unwrap_or_else(|| panic!("{pr_repository}:{pr_tag} is missing"));
    let key = pr_tags.iter().find_map(|t| t.strip_prefix("inputs-")).unwrap_or_else(|| panic!("{pr_tags:?}"));
    assert!(pr_tags.contains(&format!("pr-{pr_tag}")), "{pr_tags:?}");
    assert_eq!(in_ecr(&repository, pr_tag), None, "a pull request's push wrote main's repository");
    assert_eq!(in_ecr(&repository, &format!("inputs-{key}")), None, "a pull request's push wrote main's repository");

    // The same content committed on main: main never looks in the pull-request repository,
    // so it builds its own image, in its own repository, signed with its own key.
    let commit = repo.commit("the same content on main");
    let run = repo.xtask(&["push", "--stage", "local", "--json"]);
    let main = json(&run.ok());
    let image = &main["images"][0];
    assert_eq!((main["commit"].as_str(), image["action"].as_str()), (Some(commit.as_str()), Some("built")));
    assert_eq!(image["repository"], repository.as_str(), "{main}");
    assert_ne!(image["digest"], pr_digest);
    // (The daemon's own push may mount layers it pushed there before, by digest: the same bytes.)
    let read = run.stderr().lines().filter(|l| !l.starts_with("push ")).any(|l| l.contains(&pr_repository));
    assert!(!read, "main's push read the pull-request repository: {}", run.stderr());
    let (digest, tags) = in_ecr(&repository, &format!("inputs-{key}")).expect("main records its own inputs tag");
    assert_eq!((digest.as_str(), tags.contains(&format!("main-{commit}"))), (image["digest"].as_str().unwrap(), true));
    assert!(run.stderr().contains("signed its provenance with alias/fixture-local-main"), "{}", run.stderr());
}

/// Signs `repository@digest` as a push of `commit` on the local stage would (its main
/// key) and attaches it: for tests that make an image by hand and need it pushed over,
/// reused, promoted or deployed as if a push had made it.
pub async fn sign_by_hand(project: &str, repository: &str, digest: &str, commit: &str, inputs_key: &str) {
    use xtask_release::{clients::ecr, domain::provenance::Build, workflows::attest};
    let key = format!("alias/{project}-local-main");
    let signer = attest::Signer::new(local_kms_in(None).await, &key, "a test's hand".to_string()).await.unwrap();
    let ports = local_ports().await;
    let ecr_client = aws_sdk_ecr::Client::new(&ports.sdk_config_in("us-east-1", None).await);
    let auth = ecr::RegistryAuth {
        host: ports.registry_host(),
        plain_http: true,
        ..ecr::authorization(&ecr_client).await.unwrap()
    };
    let registry = xtask_release::clients::registry_api::Registry::new(&auth).unwrap();
    let build = Build {
        image_digest: digest.to_string(),
        image_repository: repository.to_string(),
        commit: commit.to_string(),
        inputs_key: inputs_key.to_string(),
        started_on: attest::now(),
        finished_on: attest::now(),
        ..Default::default()
    };
    signer.attest(&registry, build).await.unwrap();
}
