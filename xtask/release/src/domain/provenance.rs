//! Signed build provenance of a pushed image, in the shapes `cosign verify-attestation
//! --type slsaprovenance1 --key KEY` reads offline:
//!
//! - an in-toto Statement v1 about the image's manifest digest, with a SLSA provenance v1
//!   predicate (what was built, from which commit, by whom, when);
//! - a DSSE envelope holding the statement, signed over its PAE (pre-authentication
//!   encoding) with an ECDSA P-256 SHA-256 key (a KMS key: the signing happens elsewhere;
//!   this module makes the bytes to sign and checks signatures);
//! - a Sigstore bundle v0.3 holding the envelope and naming the key (no certificate, no
//!   transparency log entry), stored as a blob in the image's repository;
//! - the OCI referrer manifest pointing at the bundle, whose `subject` is the image.
//!
//! cosign 3.1.1 finds the referrer through the registry's referrers API, or through the
//! `sha256-<hex>` fallback tag where the registry has none (`clients::registry_api`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clients::registry_api::Descriptor;

/// `_type` of the statements written here.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `_type` cosign 3.1.1 itself writes for `cosign attest`; read as well.
pub const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";
/// SLSA provenance v1: what `--type slsaprovenance1` asks for.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What the predicate's parameters mean: a Docker build of one image of the workspace's
/// settings (`externalParameters` and `internalParameters` below).
pub const BUILD_TYPE: &str = "urn:xtask-release:docker-build:v1";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// A Sigstore bundle, v0.3: the bundle's own `mediaType`, the referrer manifest's
/// `artifactType` and the media type of its one layer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The same version spelled as the Sigstore spec also allows.
const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The empty descriptor's media type (the referrer manifest's config).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content: two bytes.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// What a build was, in plain values. The caller has already left out of `build_args`
/// the commit argument (it is `commit`) and anything secret: every value here is published
/// in the registry beside the image, readable by whoever can pull it.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// `sha256:<hex>` of the pushed image's manifest (or index).
    pub image_digest: String,
    /// The image's repository, e.g. `hello/app`.
    pub image_repository: String,
    /// The commit the image was built from (40 hex digits).
    pub commit: String,
    /// Where the commit can be fetched from, e.g. `https://git.example.com/hello.git`.
    pub repository_url: String,
    /// The key of the image's inputs (`domain::image`).
    pub inputs_key: String,
    /// The Dockerfile's path in the repository.
    pub dockerfile: String,
    /// The Dockerfile stage built, if any.
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    /// `os/arch` of each platform built.
    pub platforms: Vec<String>,
    /// Who built it: the caller identity's ARN.
    pub builder_id: String,
    /// The CI run's URL, when a CI job built it.
    pub run_url: Option<String>,
    /// The commit whose build made the image, when this commit reuses it (same inputs key).
    pub reused_from: Option<String>,
    /// RFC 3339, UTC.
    pub started_on: String,
    pub finished_on: String,
}

/// An in-toto statement; `P` is its predicate (`serde_json::Value` for one read back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement<P = Predicate> {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    /// Algorithm (`sha256`) to lowercase hex.
    pub digest: BTreeMap<String, String>,
}

/// The SLSA provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predicate {
    pub build_definition: BuildDefinition,
    pub run_details: RunDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    pub build_type: String,
    pub external_parameters: ExternalParameters,
    pub internal_parameters: InternalParameters,
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// What the person or job asked for: these and the source determine the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalParameters {
    pub repository: String,
    pub commit: String,
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub platforms: Vec<String>,
}

/// What the build derived on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    pub inputs_key: String,
    /// The commit whose build made these bytes, when this commit reused that image (its
    /// inputs key being the same): the builder checked that commit's provenance first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    pub uri: String,
    pub digest: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    pub builder: Builder,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Builder {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    pub started_on: String,
    pub finished_on: String,
}

impl Statement {
    /// The provenance statement of `build`.
    pub fn of(build: &Build) -> Result<Statement> {
        let hex = sha256_hex(&build.image_digest).context("cannot describe the image's provenance")?;
        Ok(Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: vec![Subject {
                name: build.image_repository.clone(),
                digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
            }],
            predicate_type: PREDICATE_TYPE.to_string(),
            predicate: Predicate {
                build_definition: BuildDefinition {
                    build_type: BUILD_TYPE.to_string(),
                    external_parameters: ExternalParameters {
                        repository: build.repository_url.clone(),
                        commit: build.commit.clone(),
                        dockerfile: build.dockerfile.clone(),
                        target: build.target.clone(),
                        build_args: build.build_args.clone(),
                        platforms: build.platforms.clone(),
                    },
                    internal_parameters: InternalParameters {
                        inputs_key: build.inputs_key.clone(),
                        reused_from: build.reused_from.clone(),
                    },
                    resolved_dependencies: vec![ResourceDescriptor {
                        uri: format!("git+{}", build.repository_url),
                        digest: BTreeMap::from([("gitCommit".to_string(), build.commit.clone())]),
                    }],
                },
                run_details: RunDetails {
                    builder: Builder { id: build.builder_id.clone() },
                    metadata: Metadata {
                        invocation_id: build.run_url.clone(),
                        started_on: build.started_on.clone(),
                        finished_on: build.finished_on.clone(),
                    },
                },
            },
        })
    }
}

impl<P: Serialize> Statement<P> {
    /// The statement's JSON: the DSSE payload, signed as is.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement is plain data and always serializes")
    }
}

/// DSSE's pre-authentication encoding: the bytes a DSSE signature covers,
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload` (lengths in ASCII decimal).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len());
    [head.as_bytes(), payload].concat()
}

/// A Sigstore bundle as cosign writes and reads it (protobuf JSON, camelCase). Fields
/// cosign adds for keyless signing or a transparency log (`certificate`, `tlogEntries`,
/// `timestampVerificationData`) are not written, and ignored when read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub media_type: String,
    #[serde(default)]
    pub verification_material: Option<VerificationMaterial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Present (even empty) for a bundle signed with a key: cosign refuses a bundle
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    /// Which key signed, for people and key lookup; cosign does not check it against
    /// `--key`. Written as cosign does: base64 of the SHA-256 of the key's DER.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Standard base64 of the statement's JSON.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    /// Standard base64 of the ASN.1 DER ECDSA signature over the PAE.
    pub sig: String,
    /// Written empty (so left out): cosign 3.1.1 with `--key` rejects a signature whose
    /// `keyid` is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
}

/// The Sigstore bundle of `payload` (a statement's JSON) signed by `signature` (ASN.1
/// DER, over `pae(PAYLOAD_TYPE, payload)`) with the key whose SubjectPublicKeyInfo DER is
/// `public_key_der`. Returns the blob's bytes.
pub fn bundle(payload: &[u8], signature: &[u8], public_key_der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_string(),
        verification_material: Some(VerificationMaterial {
            public_key: Some(PublicKeyIdentifier { hint: key_hint(public_key_der) }),
        }),
        dsse_envelope: Some(Envelope {
            payload: b64.encode(payload),
            payload_type: PAYLOAD_TYPE.to_string(),
            signatures: vec![Signature { sig: b64.encode(signature), keyid: String::new() }],
        }),
    };
    serde_json::to_vec(&bundle).expect("a bundle is plain data and always serializes")
}

/// cosign's hint for a key: base64 of the SHA-256 of its SubjectPublicKeyInfo DER.
pub fn key_hint(public_key_der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(public_key_der))
}

/// A statement whose signature and subject were checked.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    /// The statement as signed; its predicate as JSON (any SLSA v1 producer's).
    pub statement: Statement<serde_json::Value>,
    /// The signed payload's bytes.
    pub payload: Vec<u8>,
}

impl VerifiedStatement {
    /// The predicate in this module's shape (one made by [`Statement::of`]).
    pub fn provenance(&self) -> Result<Predicate> {
        serde_json::from_value(self.statement.predicate.clone())
            .context("the provenance predicate does not have the shape this tool writes")
    }
}

/// Checks a Sigstore bundle as `cosign verify-attestation --key --type slsaprovenance1
/// --insecure-ignore-tlog=true` does: a DSSE envelope of an in-toto statement, one of its
/// signatures an ECDSA P-256 SHA-256 signature over the PAE by the key whose
/// SubjectPublicKeyInfo DER is `public_key_der`, the predicate SLSA provenance v1, and a
/// subject whose SHA-256 is `expected_subject_digest` (`sha256:<hex>`: the image's).
pub fn verify(bundle_bytes: &[u8], expected_subject_digest: &str, public_key_der: &[u8]) -> Result<VerifiedStatement> {
    let expected = sha256_hex(expected_subject_digest)?;
    let bundle: Bundle = serde_json::from_slice(bundle_bytes).context("the bundle is not a Sigstore bundle's JSON")?;
    ensure!(
        bundle.media_type == BUNDLE_MEDIA_TYPE || bundle.media_type == BUNDLE_MEDIA_TYPE_ALT,
        "the bundle's media type is `{}`, not `{BUNDLE_MEDIA_TYPE}`",
        bundle.media_type
    );
    ensure!(
        bundle.verification_material.is_some_and(|m| m.public_key.is_some()),
        "the bundle's verification material names no public key (cosign verifies it with --key only if it does)"
    );
    let envelope =
        bundle.dsse_envelope.context("the bundle holds no DSSE envelope (is it a signature, not an attestation?)")?;
    ensure!(
        envelope.payload_type == PAYLOAD_TYPE,
        "the envelope's payload type is `{}`, not `{PAYLOAD_TYPE}`",
        envelope.payload_type
    );
    let payload = decode_base64(&envelope.payload).context("the envelope's payload is not base64")?;
    verify_signatures(&envelope.signatures, &pae(&envelope.payload_type, &payload), public_key_der)?;

    let statement: Statement<serde_json::Value> =
        serde_json::from_slice(&payload).context("the signed payload is not an in-toto statement")?;
    ensure!(
        statement.statement_type == STATEMENT_TYPE || statement.statement_type == STATEMENT_TYPE_V01,
        "the signed payload's `_type` is `{}`, not `{STATEMENT_TYPE}`",
        statement.statement_type
    );
    ensure!(
        statement.predicate_type == PREDICATE_TYPE,
        "the statement's predicate type is `{}`, not `{PREDICATE_TYPE}`",
        statement.predicate_type
    );
    let about_image =
        statement.subject.iter().any(|s| s.digest.get("sha256").is_some_and(|d| d.eq_ignore_ascii_case(expected)));
    if !about_image {
        let named: Vec<String> = statement
            .subject
            .iter()
            .map(|s| format!("{}@sha256:{}", s.name, s.digest.get("sha256").map_or("?", String::as_str)))
            .collect();
        bail!("the statement is about {}, not about sha256:{expected}", named.join(", "));
    }
    Ok(VerifiedStatement { statement, payload })
}

/// At least one signature must verify (cosign's threshold of one).
fn verify_signatures(signatures: &[Signature], message: &[u8], public_key_der: &[u8]) -> Result<()> {
    ensure!(!signatures.is_empty(), "the envelope has no signatures");
    let key = p256_key(public_key_der)?;
    let mut why = Vec::new();
    for (i, signature) in signatures.iter().enumerate() {
        if !signature.keyid.is_empty() {
            why.push(format!("signature {i} carries keyid `{}`, which cosign rejects with --key", signature.keyid));
            continue;
        }
        let Ok(sig) = decode_base64(&signature.sig) else {
            why.push(format!("signature {i} is not base64"));
            continue;
        };
        match key.verify(message, &sig) {
            Ok(()) => return Ok(()),
            Err(_) => why.push(format!("signature {i} does not verify with the given ECDSA P-256 key")),
        }
    }
    bail!("no signature of the envelope verifies: {}", why.join("; "))
}

/// The DER of a P-256 public key's SubjectPublicKeyInfo (RFC 5480) up to its point: the
/// algorithm (id-ecPublicKey on prime256v1) and the bit string's header.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The verifying key of a P-256 SubjectPublicKeyInfo DER (what KMS's GetPublicKey returns
/// and a PEM `PUBLIC KEY` holds): its uncompressed point, which is what ring takes.
pub fn p256_key(spki_der: &[u8]) -> Result<UnparsedPublicKey<&[u8]>> {
    let point = spki_der
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|point| point.len() == 65 && point[0] == 0x04)
        .context("the public key is not an ECDSA P-256 key (a SubjectPublicKeyInfo of id-ecPublicKey on prime256v1)")?;
    Ok(UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point))
}

/// Standard base64, or the URL-safe alphabet (DSSE allows both), padded or not.
fn decode_base64(text: &str) -> Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .context("invalid base64")
}

/// The hex of a `sha256:<hex>` digest.
fn sha256_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(hex),
        _ => bail!("`{digest}` is not a sha256 digest (`sha256:` and 64 hex digits)"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReferrerManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    artifact_type: &'a str,
    config: Descriptor,
    layers: [Descriptor; 1],
    subject: &'a Descriptor,
    annotations: BTreeMap<String, String>,
}

/// The referrer manifest that attaches `bundle` (a blob of the same repository) to the
/// image `subject` describes, as cosign lays it out (its `BUNDLE_SPEC`): artifact type
/// and one layer of the bundle's media type, the empty config ([`EMPTY_CONFIG`], a blob
/// too), and the annotations cosign uses to tell attestations apart in an index.
/// `created` is RFC 3339. Returns the manifest's bytes (media type [`OCI_MANIFEST`]).
pub fn referrer_manifest(subject: &Descriptor, bundle: &[u8], created: &str) -> Vec<u8> {
    let mut layer = Descriptor::of(BUNDLE_MEDIA_TYPE, bundle);
    let title = format!("{}.sigstore.json", layer.digest.replace(':', "-"));
    layer.annotations.insert("org.opencontainers.image.title".to_string(), title);
    let manifest = ReferrerManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        artifact_type: BUNDLE_MEDIA_TYPE,
        config: Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG),
        layers: [layer],
        subject,
        annotations: BTreeMap::from([
            ("dev.sigstore.bundle.content".to_string(), "dsse-envelope".to_string()),
            ("dev.sigstore.bundle.predicateType".to_string(), PREDICATE_TYPE.to_string()),
            ("org.opencontainers.image.created".to_string(), created.to_string()),
        ]),
    };
    serde_json::to_vec(&manifest).expect("a manifest is plain data and always serializes")
}

/// A SubjectPublicKeyInfo DER key as PEM (`-----BEGIN PUBLIC KEY-----`): cosign's `--key`.
pub fn public_key_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// The DER inside a `-----BEGIN PUBLIC KEY-----` PEM (cosign's `cosign.pub`).
pub fn public_key_der(pem: &str) -> Result<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
        .context("not a PEM public key (`-----BEGIN PUBLIC KEY-----` ... `-----END PUBLIC KEY-----`)")?;
    let joined: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(joined).context("the PEM public key's body is not base64")
}

#[cfg(test)]
mod tests {
    use crate::clients::registry_api::digest_of;
    use ring::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
    };

    use super::*;

    const IMAGE: &str = "sha256:f06875c0004a77a7cb552005abdd38c40b26583172a87e232276ad2e8b4be643";

    fn build() -> Build {
        Build {
            image_digest: IMAGE.to_string(),
            image_repository: "hello/app".to_string(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_string(),
            repository_url: "https://git.example.com/hello.git".to_string(),
            inputs_key: "4f2a".to_string(),
            dockerfile: "app/Dockerfile".to_string(),
            target: Some("runtime".to_string()),
            build_args: BTreeMap::from([("RUST_IMAGE".to_string(), "rust:1.95".to_string())]),
            platforms: vec!["linux/amd64".to_string()],
            builder_id: "arn:aws:iam::123456789012:role/ci".to_string(),
            run_url: Some("https://ci.example.com/hello/runs/7".to_string()),
            reused_from: None,
            started_on: "2026-12-02T10:00:00Z".to_string(),
            finished_on: "2026-12-02T10:05:00Z".to_string(),
        }
    }

    /// A P-256 key made here, standing in for the KMS key: `(key pair, SPKI DER)`.
    fn key() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let der = [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
        (pair, der)
    }

    fn signed(statement: &Statement, pair: &EcdsaKeyPair, der: &[u8]) -> Vec<u8> {
        let payload = statement.payload();
        let signature = pair.sign(&SystemRandom::new(), &pae(PAYLOAD_TYPE, &payload)).unwrap();
        bundle(&payload, signature.as_ref(), der)
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provenance").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(pae("a/b", b"{}"), b"DSSEv1 3 a/b 2 {}");
        assert_eq!(pae(PAYLOAD_TYPE, b""), b"DSSEv1 28 application/vnd.in-toto+json 0 ");
    }

    #[test]
    fn statement_has_the_in_toto_and_slsa_shape() {
        let json: serde_json::Value = serde_json::from_slice(&Statement::of(&build()).unwrap().payload()).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["predicateType"], PREDICATE_TYPE);
        assert_eq!(json["subject"][0]["name"], "hello/app");
        assert_eq!(json["subject"][0]["digest"]["sha256"], &IMAGE[7..]);
        let definition = &json["predicate"]["buildDefinition"];
        assert_eq!(definition["buildType"], BUILD_TYPE);
        assert_eq!(definition["externalParameters"]["target"], "runtime");
        assert_eq!(definition["externalParameters"]["buildArgs"]["RUST_IMAGE"], "rust:1.95");
        assert_eq!(definition["internalParameters"]["inputsKey"], "4f2a");
        assert_eq!(definition["resolvedDependencies"][0]["uri"], "git+https://git.example.com/hello.git");
        assert_eq!(definition["resolvedDependencies"][0]["digest"]["gitCommit"], build().commit);
        let run = &json["predicate"]["runDetails"];
        assert_eq!(run["builder"]["id"], "arn:aws:iam::123456789012:role/ci");
        assert_eq!(run["metadata"]["invocationId"], "https://ci.example.com/hello/runs/7");
        assert_eq!(run["metadata"]["startedOn"], "2026-12-02T10:00:00Z");

        let local = Build { target: None, run_url: None, ..build() };
        let json: serde_json::Value = serde_json::from_slice(&Statement::of(&local).unwrap().payload()).unwrap();
        assert!(json["predicate"]["buildDefinition"]["externalParameters"].get("target").is_none());
        assert!(json["predicate"]["runDetails"]["metadata"].get("invocationId").is_none());

        let bad = Build { image_digest: "sha256:abc".to_string(), ..build() };
        let err = Statement::of(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("`sha256:abc` is not a sha256 digest"), "{err:#}");
    }

    #[test]
    fn round_trips_through_a_signed_bundle() {
        let (pair, der) = key();
        let statement = Statement::of(&build()).unwrap();
        let bytes = signed(&statement, &pair, &der);

        let verified = verify(&bytes, IMAGE, &der).unwrap();
        assert_eq!(verified.payload, statement.payload());
        assert_eq!(verified.provenance().unwrap(), statement.predicate);
        assert_eq!(verified.statement.subject, statement.subject);

        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(json["verificationMaterial"]["publicKey"]["hint"], key_hint(&der));
        assert_eq!(json["dsseEnvelope"]["payloadType"], PAYLOAD_TYPE);
        assert!(json["dsseEnvelope"]["signatures"][0].get("keyid").is_none());
        assert!(json["verificationMaterial"].get("tlogEntries").is_none());
    }

    #[test]
    fn with_a_flipped_payload_byte_fails() {
        let (pair, der) = key();
        let bytes = signed(&Statement::of(&build()).unwrap(), &pair, &der);
        let mut bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
        let envelope = bundle.dsse_envelope.as_mut().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut payload = b64.decode(&envelope.payload).unwrap();
        let at = payload.len() / 2;
        payload[at] ^= 0x01;
        envelope.payload = b64.encode(payload);
        let err = verify(&serde_json::to_vec(&bundle).unwrap(), IMAGE, &der).unwrap_err();
        assert!(format!("{err:#}").contains("no signature of the envelope verifies"), "{err:#}");
    }

    #[test]
    fn for_another_image_or_by_another_key_fails() {
        let (pair, der) = key();
        let bytes = signed(&Statement::of(&build()).unwrap(), &pair, &der);
        let other = format!("sha256:{}", "0".repeat(64));
        let err = verify(&bytes, &other, &der).unwrap_err();
        assert!(format!("{err:#}").contains(&format!("not about {other}")), "{err:#}");

        let (_, stranger) = key();
        let err = verify(&bytes, IMAGE, &stranger).unwrap_err();
        assert!(format!("{err:#}").contains("does not verify"), "{err:#}");
    }

    #[test]
    fn signature_with_a_keyid_is_refused_as_cosign_does() {
        let (pair, der) = key();
        let bytes = signed(&Statement::of(&build()).unwrap(), &pair, &der);
        let mut bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
        bundle.dsse_envelope.as_mut().unwrap().signatures[0].keyid = "arn:aws:kms:eu-west-1:1:key/k".to_string();
        let err = verify(&serde_json::to_vec(&bundle).unwrap(), IMAGE, &der).unwrap_err();
        assert!(format!("{err:#}").contains("carries keyid"), "{err:#}");
    }

    #[test]
    fn without_a_public_key_in_the_material_is_refused() {
        let (pair, der) = key();
        let bytes = signed(&Statement::of(&build()).unwrap(), &pair, &der);
        let mut bundle: Bundle = serde_json::from_slice(&bytes).unwrap();
        bundle.verification_material = Some(VerificationMaterial { public_key: None });
        let err = verify(&serde_json::to_vec(&bundle).unwrap(), IMAGE, &der).unwrap_err();
        assert!(format!("{err:#}").contains("names no public key"), "{err:#}");
    }

    /// Made by `cosign attest --key cosign.key --type slsaprovenance1` (cosign 3.1.1): a
    /// `Statement/v0.1` with cosign's own field order and padding.
    #[test]
    fn made_by_cosign_verifies() {
        let der = public_key_der(&String::from_utf8(fixture("cosign-attest.pub")).unwrap()).unwrap();
        let image = "sha256:9baff304bdbb95624d3264cbbb2b62b4ca230088e9db105cc4493d7d9c57135a";
        let verified = verify(&fixture("cosign-attest.sigstore.json"), image, &der).unwrap();
        assert_eq!(verified.statement.statement_type, STATEMENT_TYPE_V01);
        assert_eq!(verified.statement.predicate["runDetails"]["builder"]["id"], "https://example.com/builder");
        assert_eq!(key_hint(&der), "oVvK8ACNseEwcjqIgrd+gN8JtpTFv0MKDVcczYFVXo4=");
        assert!(verify(&fixture("cosign-attest.sigstore.json"), IMAGE, &der).is_err());
    }

    /// Made without cosign, signed through the KMS API (ECDSA_SHA_256, RAW), and accepted by
    /// `cosign verify-attestation --key kms.pub`.
    #[test]
    fn signed_by_kms_and_accepted_by_cosign_verifies() {
        let der = public_key_der(&String::from_utf8(fixture("kms.pub")).unwrap()).unwrap();
        let verified = verify(&fixture("kms.sigstore.json"), IMAGE, &der).unwrap();
        assert_eq!(verified.statement.statement_type, STATEMENT_TYPE);
        assert_eq!(public_key_pem(&der).as_bytes(), fixture("kms.pub"));
    }

    #[test]
    fn a_key_other_than_p256_is_refused_by_name() {
        let (pair, der) = key();
        let bundle = signed(&Statement::of(&build()).unwrap(), &pair, &der);
        // The same point, its curve's OID changed in the last byte: not prime256v1.
        let mut other = der.clone();
        other[22] ^= 0x01;
        let err = verify(&bundle, IMAGE, &other).unwrap_err().to_string();
        assert!(err.contains("not an ECDSA P-256 key"), "{err}");
        assert!(verify(&bundle, IMAGE, &der[..der.len() - 1]).is_err());
    }

    #[test]
    fn referrer_manifest_has_cosigns_layout() {
        let subject = Descriptor::of(OCI_MANIFEST, b"{\"schemaVersion\":2}");
        let bundle = b"{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\"}";
        let bytes = referrer_manifest(&subject, bundle, "2026-12-02T10:05:00Z");
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], OCI_MANIFEST);
        assert_eq!(json["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(json["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(json["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(json["config"]["size"], 2);
        assert_eq!(json["layers"][0]["mediaType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(json["layers"][0]["digest"], digest_of(bundle));
        assert_eq!(json["layers"][0]["size"], bundle.len());
        let title = format!("{}.sigstore.json", digest_of(bundle).replace(':', "-"));
        assert_eq!(json["layers"][0]["annotations"]["org.opencontainers.image.title"], title);
        assert_eq!(json["subject"]["digest"], subject.digest);
        assert_eq!(json["subject"]["mediaType"], OCI_MANIFEST);
        assert_eq!(json["annotations"]["dev.sigstore.bundle.content"], "dsse-envelope");
        assert_eq!(json["annotations"]["dev.sigstore.bundle.predicateType"], PREDICATE_TYPE);
        assert_eq!(json["annotations"]["org.opencontainers.image.created"], "2026-12-02T10:05:00Z");
    }

    #[test]
    fn public_keys_go_between_pem_and_der() {
        let (_, der) = key();
        assert_eq!(public_key_der(&public_key_pem(&der)).unwrap(), der);
        assert!(public_key_der("not a key").is_err());
    }
}
