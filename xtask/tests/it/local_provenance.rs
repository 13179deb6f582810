//! What the local stack provides for signed provenance, as ECR and KMS provide it: the
//! front door's referrers API (OCI distribution spec 1.1) and the signing keys of each
//! emulated account.

use std::collections::BTreeMap;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use xtask_release::{
    clients::{
        ecr,
        http::Client as Http,
        registry_api::{Descriptor, RawManifest, ReferrersFrom, Registry, digest_of},
    },
    domain::provenance::{self, BUNDLE_MEDIA_TYPE, EMPTY_CONFIG, EMPTY_MEDIA_TYPE, OCI_MANIFEST},
};

use crate::support::{
    FIXTURE_CARGO_TOML, Fixture, create_repository, docker_or_skip, local_ecr, local_ports, local_stack, runtime,
    unique, workspace_root, xtask_env,
};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";

/// The registry of the stack whose ports are `ports`, as its ECR hands it out.
async fn registry(ecr: &aws_sdk_ecr::Client, ports: &xtask_local_stack::Ports) -> (Registry, ecr::RegistryAuth) {
    let mut auth = ecr::authorization(ecr).await.unwrap();
    auth.host = ports.registry_host();
    auth.plain_http = true;
    (Registry::new(&auth).unwrap(), auth)
}

/// Pushes a small image (a config, no layers) as `repository:tag`; returns its descriptor.
async fn push_subject(registry: &Registry, repository: &str, tag: &str) -> Descriptor {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "config": { "Labels": { "it": unique("subject") } },
    });
    let config = serde_json::to_vec(&config).unwrap();
    registry.push_blob(repository, config.clone().into()).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": Descriptor::of("application/vnd.oci.image.config.v1+json", &config),
        "layers": [],
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    let raw = RawManifest { body: body.clone().into(), media_type: OCI_MANIFEST.to_string() };
    registry.put_manifest(repository, tag, &raw).await.unwrap();
    Descriptor::of(OCI_MANIFEST, &body)
}

/// A referrer of `subject` of `artifact_type`, its blobs pushed: signed provenance as the
/// release library makes it, or another artifact (with an annotation).
async fn referrer(registry: &Registry, repository: &str, subject: &Descriptor, artifact_type: &str) -> RawManifest {
    registry.push_blob(repository, EMPTY_CONFIG.to_vec().into()).await.unwrap();
    let body = if artifact_type == BUNDLE_MEDIA_TYPE {
        let bundle = format!(r#"{{"mediaType":"{BUNDLE_MEDIA_TYPE}","id":"{}"}}"#, unique("bundle"));
        registry.push_blob(repository, bundle.clone().into_bytes().into()).await.unwrap();
        provenance::referrer_manifest(subject, bundle.as_bytes(), "2026-12-07T14:00:00Z")
    } else {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
            "layers": [Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG)],
            "subject": subject,
            "annotations": { "it": unique("sbom") },
        }))
        .unwrap()
    };
    RawManifest { body: body.into(), media_type: OCI_MANIFEST.to_string() }
}

/// How the referrers API must list `manifest`: its descriptor, artifact type and annotations.
fn listed_as(manifest: &RawManifest) -> Descriptor {
    let json: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    let mut entry = Descriptor::of(OCI_MANIFEST, &manifest.body);
    entry.artifact_type = json["artifactType"].as_str().map(str::to_string);
    entry.annotations = serde_json::from_value(json["annotations"].clone()).unwrap_or_default();
    entry
}

#[test]
fn the_front_door_serves_the_referrers_api_as_ecr_does() {
    if !docker_or_skip("the_front_door_serves_the_referrers_api_as_ecr_does") {
        return;
    }
    local_stack();
    runtime().block_on(async {
        let ecr = local_ecr().await;
        let ports = local_ports().await;
        let repository = unique("it/referrers");
        create_repository(&ecr, &repository, true).await;
        let (registry, auth) = registry(&ecr, &ports).await;
        let subject = push_subject(&registry, &repository, "subject").await;
        let api = |path: &str| format!("http://{}/v2/{repository}/referrers/{path}", ports.registry_host());
        let http = Http::new().with_credentials(&api(""), auth.basic_header()).unwrap();

        // No referrers yet: an empty index, not a 404 (which would mean "no API").
        let empty = http.get(&api(&subject.digest), &[]).await.unwrap();
        assert_eq!(empty.status, 200, "{}", String::from_utf8_lossy(&empty.body));
        assert_eq!(empty.headers["content-type"], OCI_INDEX);
        let index: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
        assert_eq!((index["schemaVersion"].as_u64(), index["mediaType"].as_str()), (Some(2), Some(OCI_INDEX)));
        assert_eq!(index["manifests"], serde_json::json!([]));
        let found = registry.referrers(&repository, &subject.digest, None).await.unwrap();
        assert_eq!((found.from, found.manifests.len()), (ReferrersFrom::Api, 0));

        // Two referrers attached at once: the front answers `OCI-Subject`, so neither
        // writes the fallback tag, and both are listed.
        let signed = referrer(&registry, &repository, &subject, BUNDLE_MEDIA_TYPE).await;
        let sbom = referrer(&registry, &repository, &subject, SBOM_TYPE).await;
        let (a, b) = tokio::join!(
            registry.attach_referrer(&repository, &subject.digest, &signed),
            registry.attach_referrer(&repository, &subject.digest, &sbom),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.fallback_tag, b.fallback_tag), (None, None));
        assert_eq!((a.digest, b.digest), (digest_of(&signed.body), digest_of(&sbom.body)));
        let found = registry.referrers(&repository, &subject.digest, None).await.unwrap();
        assert_eq!(found.from, ReferrersFrom::Api);
        let by_digest: BTreeMap<String, Descriptor> =
            found.manifests.into_iter().map(|m| (m.digest.clone(), m)).collect();
        let expected: BTreeMap<String, Descriptor> =
            [listed_as(&signed), listed_as(&sbom)].into_iter().map(|m| (m.digest.clone(), m)).collect();
        assert_eq!(by_digest, expected);
        assert_eq!(expected[&digest_of(&signed.body)].artifact_type.as_deref(), Some(BUNDLE_MEDIA_TYPE));
        assert!(!expected[&digest_of(&signed.body)].annotations.is_empty());

        // Pushed again: the answer names the subject (what tells a client the registry
        // lists referrers itself), and the referrer is still listed once.
        let (digest, recorded) = registry.put_manifest_by_digest(&repository, &signed).await.unwrap();
        assert_eq!((digest, recorded), (digest_of(&signed.body), Some(subject.digest.clone())));
        assert_eq!(registry.referrers(&repository, &subject.digest, None).await.unwrap().manifests.len(), 2);

        // The registry filters by artifactType itself, and says so.
        let query = format!("{}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson", subject.digest);
        let filtered = http.get(&api(&query), &[]).await.unwrap();
        assert_eq!(filtered.status, 200);
        assert_eq!(filtered.headers["oci-filters-applied"], "artifactType");
        let index: serde_json::Value = serde_json::from_slice(&filtered.body).unwrap();
        let digests: Vec<&str> =
            index["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap()).collect();
        assert_eq!(digests, [digest_of(&signed.body)]);
        let unfiltered = http.get(&api(&subject.digest), &[]).await.unwrap();
        assert!(unfiltered.headers.get("oci-filters-applied").is_none());
        let sboms = registry.referrers(&repository, &subject.digest, Some(SBOM_TYPE)).await.unwrap();
        assert_eq!(sboms.manifests, [listed_as(&sbom)]);

        // As ECR shows them: each referrer an untagged image; the list is no image at all.
        for manifest in [&signed, &sbom] {
            let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest_of(&manifest.body)).build();
            let described = ecr.describe_images().repository_name(&repository).image_ids(id).send().await.unwrap();
            assert!(described.image_details()[0].image_tags().is_empty(), "{described:?}");
        }
        let images = ecr.describe_images().repository_name(&repository).send().await.unwrap();
        let tags: Vec<&str> = images.image_details().iter().flat_map(|d| d.image_tags()).map(String::as_str).collect();
        assert_eq!(tags, ["subject"]);
        assert_eq!(images.image_details().len(), 3, "the subject and its two referrers");

        // Refusals: an unknown repository as ECR names it; a client without credentials.
        let absent =
            format!("http://{}/v2/it/absent-{}/referrers/{}", ports.registry_host(), unique("r"), subject.digest);
        let unknown = http.get(&absent, &[]).await.unwrap();
        assert_eq!(unknown.status, 404);
        assert!(String::from_utf8_lossy(&unknown.body).contains("NAME_UNKNOWN"));
        let anonymous = Http::new().get(&api(&subject.digest), &[]).await.unwrap();
        assert_eq!(anonymous.status, 401);
    });
}

#[test]
fn the_referrers_lists_survive_a_restart_of_the_stack() {
    if !docker_or_skip("the_referrers_lists_survive_a_restart_of_the_stack") {
        return;
    }
    local_stack(); // the base images
    let repo = Fixture::new();
    let dir = repo.sh.create_temp_dir().unwrap();
    let own = dir.path().join("stack");
    let env = [("XTASK_LOCAL_STACK", own.to_str().unwrap())];
    let xtask_here = |args: &[&str]| xtask_env(&repo.path(), args, &env);
    xtask_here(&["local", "up"]).ok();
    let connect = || async {
        let ports = xtask_local_stack::running(&own).await.unwrap();
        let ecr = aws_sdk_ecr::Client::new(&ports.sdk_config("us-east-1").await);
        let (registry, _) = registry(&ecr, &ports).await;
        (ecr, registry)
    };
    let repository = unique("it/kept-referrers");
    let (subject, signed) = runtime().block_on(async {
        let (ecr, registry) = connect().await;
        create_repository(&ecr, &repository, true).await;
        let subject = push_subject(&registry, &repository, "subject").await;
        let signed = referrer(&registry, &repository, &subject, BUNDLE_MEDIA_TYPE).await;
        registry.attach_referrer(&repository, &subject.digest, &signed).await.unwrap();
        (subject, signed)
    });

    xtask_here(&["local", "down"]).ok();
    xtask_here(&["local", "up"]).ok();
    runtime().block_on(async {
        let (ecr, registry) = connect().await;
        let found = registry.referrers(&repository, &subject.digest, None).await.unwrap();
        assert_eq!((found.from, found.manifests), (ReferrersFrom::Api, vec![listed_as(&signed)]));
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest_of(&signed.body)).build();
        let described = ecr.describe_images().repository_name(&repository).image_ids(id).send().await.unwrap();
        assert!(described.image_details()[0].image_tags().is_empty(), "{described:?}");
    });
    xtask_here(&["local", "down", "--purge"]).ok();
}

/// The key `alias` names, checked to be one that signs provenance (ECC_NIST_P256, SIGN_VERIFY).
async fn signing_key(kms: &aws_sdk_kms::Client, alias: &str) -> String {
    let public = kms.get_public_key().key_id(alias).send().await.unwrap();
    #[allow(deprecated)]
    let spec = public.key_spec().cloned().or(public.customer_master_key_spec().map(|s| KeySpec::from(s.as_str())));
    assert_eq!((spec, public.key_usage()), (Some(KeySpec::EccNistP256), Some(&KeyUsageType::SignVerify)), "{alias}");
    public.key_id().unwrap().to_string()
}

/// The keys `alias` names in ListAliases (moto can give an alias two).
async fn alias_targets(kms: &aws_sdk_kms::Client, alias: &str) -> Vec<String> {
    let aliases = kms.list_aliases().send().await.unwrap();
    aliases
        .aliases()
        .iter()
        .filter(|a| a.alias_name() == Some(alias))
        .filter_map(|a| a.target_key_id())
        .map(str::to_string)
        .collect()
}

/// `text` as a form value (application/x-www-form-urlencoded).
fn form_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn signing_keys_are_made_once_and_kept_when_cloudformation_makes_their_alias_again() {
    if !docker_or_skip("signing_keys_are_made_once_and_kept_when_cloudformation_makes_their_alias_again") {
        return;
    }
    local_stack();
    runtime().block_on(async {
        use aws_sdk_ecr::config::ProvideCredentials;
        // A fresh emulated account, reached as the tool reaches one (a role assumed there).
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let account = format!("2{:011}", nanos % 100_000_000_000);
        let sdk = local_ports().await.sdk_config_in("us-east-1", Some(&account)).await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = sdk.credentials_provider().unwrap().provide_credentials().await.unwrap().access_key_id().to_string();
        let ws = xtask_release::domain::workspace::Workspace::at(
            &workspace_root(),
            &xtask_local_stack::settings::IMPLICIT,
        )
        .unwrap();
        let aliases = xtask_local_stack::signing_keys::aliases(&ws.config, ws.config.stage("local").unwrap());
        assert_eq!(aliases, ["alias/hello-local-main", "alias/hello-local-pr"]);
        let main = aliases[0].as_str();

        xtask_local_stack::signing_keys::ensure(&kms, &aliases).await.unwrap();
        let key_id = signing_key(&kms, main).await;
        assert_ne!(key_id, signing_key(&kms, &aliases[1]).await, "main and pr sign with keys of their own");
        xtask_local_stack::signing_keys::ensure(&kms, &aliases).await.unwrap();
        assert_eq!(signing_key(&kms, main).await, key_id, "made once");

        // The registry stack as moto's CloudFormation makes it: a symmetric key, and the alias
        // on it (next to the existing one).
        let template = serde_json::json!({ "Resources": {
            "Key": { "Type": "AWS::KMS::Key", "Properties": {
                "KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY",
                "KeyPolicy": { "Version": "2012-10-17", "Statement": [
                    { "Effect": "Allow", "Principal": { "AWS": "*" }, "Action": "kms:*", "Resource": "*" }] } } },
            "Alias": { "Type": "AWS::KMS::Alias", "Properties": { "AliasName": main, "TargetKeyId": { "Ref": "Key" } } },
        } });
        let body = form_value(&template.to_string());
        let stack = unique("it-signing-keys");
        let cloudformation = |action: &'static str| {
            let (key, stack, body) = (key.clone(), stack.clone(), body.clone());
            async move {
                let mut params = vec![("Action", action), ("StackName", stack.as_str())];
                if action == "CreateStack" {
                    params.push(("TemplateBody", body.as_str()));
                }
                crate::support::moto_query_as(&key, "cloudformation", &params).await;
            }
        };
        cloudformation("CreateStack").await;
        let targets = alias_targets(&kms, main).await;
        assert!(targets.iter().any(|t| *t != key_id), "the stack's alias names its own key: {targets:?}");
        xtask_local_stack::signing_keys::ensure(&kms, &aliases).await.unwrap();
        assert_eq!(alias_targets(&kms, main).await, [key_id.as_str()]);

        // The stack replaced: deleted (the alias with it), then made again.
        cloudformation("DeleteStack").await;
        cloudformation("CreateStack").await;
        let targets = alias_targets(&kms, main).await;
        assert!(!targets.contains(&key_id), "the new stack's alias names its own key: {targets:?}");
        xtask_local_stack::signing_keys::ensure(&kms, &aliases).await.unwrap();
        assert_eq!(alias_targets(&kms, main).await, [key_id.as_str()]);
        assert_eq!(signing_key(&kms, main).await, key_id, "the same key signs after the stack was replaced");
    });
}

#[test]
fn a_local_stage_gets_its_signing_keys_once_its_repositories_exist() {
    if !docker_or_skip("a_local_stage_gets_its_signing_keys_once_its_repositories_exist") {
        return;
    }
    local_stack();
    let project = unique("keys");
    let repository = unique("it/keys");
    let settings = FIXTURE_CARGO_TOML
        .replace("project = \"fixture\"", &format!("project = \"{project}\""))
        .replace("\"fixture/svc\"", &format!("\"{repository}\""));
    let fixture = Fixture::with_settings(&settings);
    let (main, pr) = (format!("alias/{project}-local-main"), format!("alias/{project}-local-pr"));
    let kms =
        runtime().block_on(async { aws_sdk_kms::Client::new(&local_ports().await.sdk_config("us-east-1").await) });

    // Before its repositories exist (before a bootstrap would make the aliases): no key.
    fixture.xtask(&["images", "--stage", "local"]);
    runtime().block_on(async { assert!(alias_targets(&kms, &main).await.is_empty()) });

    runtime().block_on(async { create_repository(&local_ecr().await, &repository, true).await });
    fixture.xtask(&["images", "--stage", "local"]).ok();
    runtime().block_on(async {
        let key_id = signing_key(&kms, &main).await;
        signing_key(&kms, &pr).await;
        fixture.xtask(&["images", "--stage", "local"]).ok();
        assert_eq!(signing_key(&kms, &main).await, key_id);
    });
}
