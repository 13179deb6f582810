//! Image indexes: what BuildKit pushes with attestations (and multi-platform builds): an
//! OCI index whose entries are the image for each platform and attestation manifests with
//! the platform `unknown/unknown`. `check` reads the image through the index and never takes
//! an attestation for it; `push` skips and retags an index like a single manifest
//! (BatchGetImage + PutImage with the index media type, the same digest).

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Fixture, docker_or_skip, local_ecr, local_ports, local_stack, runtime, unique};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The registry's API with the local stack's credentials.
pub struct Registry {
    client: xtask_release::clients::http::Client,
    base: String,
}

impl Registry {
    pub async fn connect() -> Registry {
        let auth = xtask_release::clients::ecr::authorization(&local_ecr().await).await.unwrap();
        let base = format!("http://{}", local_ports().await.registry_host());
        let client = xtask_release::clients::http::Client::new().with_credentials(&base, auth.basic_header()).unwrap();
        Registry { client, base }
    }

    /// Uploads `bytes` as a blob of `repository`; returns its digest.
    async fn blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{:x}", Sha256::digest(bytes));
        let url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let started = self.client.send(Method::POST, &url, &[], Bytes::new()).await.unwrap();
        assert_eq!(started.status.as_u16(), 202, "blob upload not started: {:?}", started.body);
        let location = started.headers.get("location").unwrap().to_str().unwrap().to_string();
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let headers = [("content-type", "application/octet-stream")];
        let done = self.client.send(Method::PUT, &url, &headers, Bytes::copy_from_slice(bytes)).await.unwrap();
        assert_eq!(done.status.as_u16(), 201, "blob upload not finished: {:?}", done.body);
        digest
    }

    /// Puts `manifest` under `reference`; returns its digest and size.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &Value,
    ) -> (String, usize) {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let put =
            self.client.send(Method::PUT, &url, &[("content-type", media_type)], Bytes::from(bytes.clone())).await;
        let put = put.unwrap();
        assert!(put.status.is_success(), "manifest {reference} refused: {} {:?}", put.status, put.body);
        (format!("sha256:{:x}", Sha256::digest(&bytes)), bytes.len())
    }

    /// An attestation manifest for the image `subject`, as BuildKit attaches one.
    pub async fn attestation(&self, repository: &str, subject: &str) -> Value {
        let statement = json!({ "_type": "https://in-toto.io/Statement/v0.1", "subject": [{ "digest": { "sha256": subject.trim_start_matches("sha256:") } }] });
        let statement = serde_json::to_vec(&statement).unwrap();
        let layer = self.blob(repository, &statement).await;
        let config = json!({ "architecture": "unknown", "os": "unknown", "config": {}, "rootfs": { "type": "layers", "diff_ids": [layer] } });
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = self.blob(repository, &config).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.in-toto+json", "digest": layer, "size": statement.len(),
                         "annotations": { "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2" } }],
        });
        // New bytes and a new tag each time, as for `index`.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let mut manifest = manifest;
        manifest["annotations"] = json!({ "org.opencontainers.image.ref.name": format!("xtask-test-{nanos}") });
        let (digest, size) = self.manifest(repository, &format!("attestation-{nanos}"), OCI_MANIFEST, &manifest).await;
        json!({
            "mediaType": OCI_MANIFEST, "digest": digest, "size": size,
            "platform": { "architecture": "unknown", "os": "unknown" },
            "annotations": { "vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": subject },
        })
    }
}

/// An index of `entries`, new bytes each time (the local stack keeps its images across
/// runs, and ECR scans a digest on push only so often).
pub fn index(entries: Vec<Value>) -> Value {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
            "annotations": { "org.opencontainers.image.ref.name": format!("xtask-test-{nanos}") } })
}

/// The tags ECR has for the image `repository:tag`.
async fn tags_of(repository: &str, tag: &str) -> Vec<String> {
    let ecr = local_ecr().await;
    let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_tag(tag).build();
    let images = ecr.describe_images().repository_name(repository).image_ids(id).send().await.unwrap();
    images.image_details()[0].image_tags().to_vec()
}

fn json_of(run: &crate::support::Run) -> Value {
    serde_json::from_str(run.stdout().trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", run.stdout(), run.stderr()))
}

fn verdict(json: &Value, name: &str) -> (bool, String) {
    let check = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    (check["ok"].as_bool().unwrap(), check["detail"].as_str().unwrap().to_string())
}

#[test]
fn an_image_index_is_checked_skipped_and_retagged_like_a_manifest() {
    if !docker_or_skip("an_image_index_is_checked_skipped_and_retagged_like_a_manifest") {
        return;
    }
    local_stack();
    // A mutable repository, so that the test can put an index under the tags `push` made.
    let repository = unique("it/index");
    runtime().block_on(async { crate::support::create_repository(&local_ecr().await, &repository, false).await });
    let repo = Fixture::with_repository(&repository);
    repo.xtask(&["push"]).ok();
    let first = repo.head();

    // The pushed image becomes the linux/amd64 entry of an index with an attestation, under
    // the commit's tag and its inputs tag.
    let index_digest = runtime().block_on(async {
        let registry = Registry::connect().await;
        let single = xtask_release::clients::ecr::manifest(&local_ecr().await, &repository, &first).await.unwrap();
        let image = json!({ "mediaType": single.media_type, "digest": single.digest, "size": single.body.len(),
                            "platform": { "architecture": "amd64", "os": "linux" } });
        let attestation = registry.attestation(&repository, &single.digest).await;
        // The attestation first: an entry's position must not make it the image.
        let index = index(vec![attestation, image]);
        let mut digest = String::new();
        let tags = tags_of(&repository, &first).await;
        for tag in &tags {
            digest = registry.manifest(&repository, tag, OCI_INDEX, &index).await.0;
        }
        // Made by hand, so signed by hand, for the commit and the inputs its tags name.
        let inputs_key = tags.iter().find_map(|t| t.strip_prefix("inputs-")).unwrap();
        crate::provenance::sign_by_hand("fixture", &repository, &digest, &first, inputs_key).await;
        digest
    });
    let in_ecr =
        runtime().block_on(async { crate::support::ecr_digest(&local_ecr().await, &repository, &first).await });
    assert_eq!(in_ecr.as_deref(), Some(index_digest.as_str()));

    // check: the image and its revision are read through the index, for the platform configured.
    let run = repo.xtask(&["check", "--json", "--scan-timeout", "5"]);
    let json = json_of(&run);
    let (ok, detail) = verdict(&json, "image svc");
    assert!(ok && detail.ends_with(&index_digest), "{detail}");
    let (ok, detail) = verdict(&json, "revision svc");
    assert!(ok && detail == format!("built from {first}, linux/amd64"), "{detail}\n{}", run.stderr());

    // push: the commit's tag names the index, so nothing is done.
    let run = repo.xtask(&["push", "--json"]);
    let json = json_of(&run);
    assert_eq!(json["images"][0]["action"], "skipped", "{}", run.stderr());
    assert_eq!(json["images"][0]["digest"], index_digest.as_str());

    // push of a commit with the same inputs: the index is retagged (same digest, index type).
    repo.write("README.md", "outside the build context\n");
    let second = repo.commit("docs only");
    let run = repo.xtask(&["push", "--json"]);
    let json = json_of(&run);
    assert_eq!(json["images"][0]["action"], "retagged", "{}", run.stderr());
    assert_eq!(json["images"][0]["digest"], index_digest.as_str());
    let manifest = runtime().block_on(async {
        xtask_release::clients::ecr::manifest(&local_ecr().await, &repository, &second).await.unwrap()
    });
    assert_eq!((manifest.media_type.as_str(), manifest.digest.as_str()), (OCI_INDEX, index_digest.as_str()));
    let run = repo.xtask(&["check", "--json", "--scan-timeout", "5"]);
    let (ok, detail) = verdict(&json_of(&run), "revision svc");
    assert!(ok && detail.contains("linux/amd64"), "{detail}\n{}", run.stderr());

    // An index without the configured platform (an attestation only) is no image to run.
    repo.write("NOTES.md", "outside again\n");
    let third = repo.commit("docs again");
    repo.xtask(&["push"]).ok();
    runtime().block_on(async {
        let registry = Registry::connect().await;
        let attestation = registry.attestation(&repository, &index_digest).await;
        registry.manifest(&repository, &third, OCI_INDEX, &index(vec![attestation])).await;
    });
    let run = repo.xtask(&["check", "--json", "--scan-timeout", "5"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
    let (ok, detail) = verdict(&json_of(&run), "revision svc");
    assert!(!ok && detail.contains("no entry for linux/amd64"), "{detail}");
}
