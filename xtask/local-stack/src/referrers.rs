//! The referrers lists the front door keeps (OCI distribution spec 1.1, "Listing
//! Referrers"), which ECR serves and distribution 2.8 does not: for each subject, the
//! descriptors of the manifests pushed with that `subject`.
//!
//! Where a list lives: in the registry's own storage, as the OCI image index the spec's
//! fallback scheme names, under the tag `sha256-<hex>` of the subject, written by the front
//! straight to the registry behind it. So it goes wherever the registry's data goes: it
//! survives `local down`/`up` and a crash (the registry's storage stays on disk), goes with
//! `local down --purge`, and keeps the referrer manifests it lists from the registry's
//! garbage collection (an index holds what it references). A client that only knows the
//! fallback scheme (a registry without the API) reads the same list there. It is never
//! recorded in the emulated ECR ([`is_list`] tells the sync to skip it): ECR has no such
//! tag, so `images`, `gc` and DescribeImages never see it. It shows in the registry's own
//! tag list (`/v2/<name>/tags/list`), which ECR's would not; and a client that writes that
//! tag itself through the front replaces the list, as on any registry that serves both.
//!
//! The referrer manifests themselves are recorded in the emulated ECR as untagged images
//! (PutImage with `imageDigest` and no `imageTag`, which moto takes), as ECR lists a
//! referrer. moto keeps no `artifactMediaType` for them, and deleting a subject deletes
//! none of its referrers there (ECR deletes them with it).

use std::{collections::HashMap, sync::Arc};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use xtask_release::clients::{
    http,
    registry_api::{Descriptor, digest_of, fallback_tag},
};

/// An OCI image index: what the referrers API answers, and how a list is stored.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest with a `subject`, as its subject's list names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    /// The digest of the subject manifest.
    pub subject: String,
    pub entry: Descriptor,
}

/// The referrer `body` (a manifest of `media_type`) is, if it names a subject: listed with
/// its `artifactType`, else its config's media type, and its annotations.
pub fn referrer_of(body: &[u8], media_type: &str) -> Option<Referrer> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Fields {
        subject: Option<Subject>,
        artifact_type: Option<String>,
        config: Option<Config>,
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, String>,
    }
    #[derive(Deserialize)]
    struct Subject {
        digest: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Config {
        media_type: String,
    }
    let fields: Fields = serde_json::from_slice(body).ok()?;
    let subject = fields.subject?.digest;
    let mut entry = Descriptor::of(media_type, body);
    entry.artifact_type = fields.artifact_type.or(fields.config.map(|c| c.media_type));
    entry.annotations = fields.annotations;
    Some(Referrer { subject, entry })
}

/// Is `tag`, pushed as `media_type`, a list the front keeps (not an image of ECR's)?
pub fn is_list(tag: &str, media_type: &str) -> bool {
    media_type == OCI_INDEX && tag.strip_prefix("sha256-").is_some_and(is_hex_digest)
}

/// Is `digest` one the referrers API can be asked about (`sha256:<64 hex>`)?
pub fn is_subject_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(is_hex_digest)
}

fn is_hex_digest(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The path, under `/v2/<repository>/`, of the list of `subject`'s referrers.
pub fn list_path(repository: &str, subject: &str) -> String {
    format!("/v2/{repository}/manifests/{}", fallback_tag(subject))
}

/// The entries of a stored list (as they are: fields this code does not know are kept).
pub fn entries(index: &[u8]) -> Result<Vec<Value>> {
    let index: Value = serde_json::from_slice(index).context("a referrers list that is not JSON")?;
    Ok(index.get("manifests").and_then(Value::as_array).cloned().unwrap_or_default())
}

/// The referrers API's answer: an image index of `entries`, of `artifact_type` if given.
pub fn index(entries: Vec<Value>, artifact_type: Option<&str>) -> Bytes {
    let manifests: Vec<Value> = entries
        .into_iter()
        .filter(|e| artifact_type.is_none_or(|t| e.get("artifactType").and_then(Value::as_str) == Some(t)))
        .collect();
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    Bytes::from(index.to_string())
}

/// Writes the lists to the registry behind the front, one writer per subject at a time.
pub struct Lists {
    /// The registry itself, with the credentials its ECR hands out.
    registry: http::Client,
    base: String,
    /// One lock per `repository@subject`.
    subjects: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Lists {
    pub fn new(registry: http::Client, base: String) -> Lists {
        Lists { registry, base, subjects: Mutex::new(HashMap::new()) }
    }

    /// Adds `referrer` to its subject's list in `repository` (no-op when listed). Two
    /// referrers of one subject added at once are both listed.
    pub async fn add(&self, repository: &str, referrer: &Referrer) -> Result<()> {
        let key = format!("{repository}@{}", referrer.subject);
        let lock = self.subjects.lock().await.entry(key).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let url = format!("{}{}", self.base, list_path(repository, &referrer.subject));
        let stored = self.registry.get(&url, &[("accept", OCI_INDEX)]).await?;
        let mut listed = match stored.status {
            StatusCode::NOT_FOUND => vec![],
            status if status.is_success() => entries(&stored.body).with_context(|| format!("GET {url}"))?,
            status => bail!("GET {url}: {status} {}", String::from_utf8_lossy(&stored.body).trim()),
        };
        if listed.iter().any(|e| e.get("digest").and_then(Value::as_str) == Some(referrer.entry.digest.as_str())) {
            return Ok(());
        }
        listed.push(serde_json::to_value(&referrer.entry)?);
        let body = index(listed, None);
        let put = self.registry.send(Method::PUT, &url, &[("content-type", OCI_INDEX)], body.clone()).await?;
        if !put.status.is_success() {
            bail!("PUT {url}: {} {}", put.status, String::from_utf8_lossy(&put.body).trim());
        }
        let digest = put.headers.get("docker-content-digest").and_then(|d| d.to_str().ok()).unwrap_or_default();
        if digest != digest_of(&body) {
            bail!("PUT {url}: the registry stored the list as {digest:?}, not as {}", digest_of(&body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "sha256:f06875c0004a77a7cb552005abdd38c40b26583172a87e232276ad2e8b4be643";
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn manifest(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[]{extra}}}"#
        )
    }

    #[test]
    fn a_manifest_with_a_subject_is_a_referrer_listed_with_its_artifact_type() {
        let subject = format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{SUBJECT}","size":9}}"#);
        let with_type = manifest(&format!(r#"{subject},"artifactType":"application/x.a","annotations":{{"k":"v"}}"#));
        let referrer = referrer_of(with_type.as_bytes(), OCI_MANIFEST).unwrap();
        assert_eq!(referrer.subject, SUBJECT);
        assert_eq!(referrer.entry.digest, digest_of(with_type.as_bytes()));
        assert_eq!(referrer.entry.size, with_type.len() as u64);
        assert_eq!(referrer.entry.media_type, OCI_MANIFEST);
        assert_eq!(referrer.entry.artifact_type.as_deref(), Some("application/x.a"));
        assert_eq!(referrer.entry.annotations.get("k").map(String::as_str), Some("v"));
        // Without `artifactType`, the config's media type stands for it.
        let untyped = manifest(&subject);
        let entry = referrer_of(untyped.as_bytes(), OCI_MANIFEST).unwrap().entry;
        assert_eq!(entry.artifact_type.as_deref(), Some("application/vnd.oci.empty.v1+json"));
        assert!(referrer_of(manifest("").as_bytes(), OCI_MANIFEST).is_none());
        assert!(referrer_of(b"not json", OCI_MANIFEST).is_none());
    }

    #[test]
    fn lists_are_told_from_images_by_tag_and_type() {
        let tag = fallback_tag(SUBJECT);
        assert!(is_list(&tag, OCI_INDEX));
        assert!(!is_list(&tag, OCI_MANIFEST));
        assert!(!is_list("sha256-abc", OCI_INDEX));
        assert!(!is_list("main-0123", OCI_INDEX));
        assert!(is_subject_digest(SUBJECT));
        assert!(!is_subject_digest("sha256:ABC"));
        assert!(!is_subject_digest(&SUBJECT.replace("sha256", "sha512")));
        assert_eq!(list_path("a/b", SUBJECT), format!("/v2/a/b/manifests/{tag}"));
    }

    #[test]
    fn the_answer_is_an_index_filtered_by_artifact_type_keeping_unknown_fields() {
        let stored = r#"{"schemaVersion":2,"manifests":[{"digest":"sha256:1","artifactType":"a","x":1},{"digest":"sha256:2","artifactType":"b"}]}"#;
        let listed = entries(stored.as_bytes()).unwrap();
        let all: Value = serde_json::from_slice(&index(listed.clone(), None)).unwrap();
        assert_eq!(all["mediaType"], OCI_INDEX);
        assert_eq!(all["schemaVersion"], 2);
        assert_eq!(all["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(all["manifests"][0]["x"], 1);
        let only_b: Value = serde_json::from_slice(&index(listed, Some("b"))).unwrap();
        assert_eq!(only_b["manifests"], serde_json::json!([{"digest":"sha256:2","artifactType":"b"}]));
        let none: Value = serde_json::from_slice(&index(vec![], None)).unwrap();
        assert_eq!(none["manifests"], serde_json::json!([]));
    }
}
