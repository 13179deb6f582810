//! Signed build provenance where it is made and where it is trusted.
//!
//! `push` signs a statement for every image it tags with a commit (built, or reused because
//! the commit's inputs match an image whose own provenance it verified first) with the
//! stage's KMS key for the channel, and attaches it to the image as an OCI referrer
//! (`domain::provenance` has the formats). `push` (before reusing), `promote` (before
//! copying), `check` and `deploy` then ask [`find`] for a statement about the image's digest
//! that one of the stage's trusted keys signed: a name proves nothing, a signature does.

use anyhow::{Context, Result, bail};
use aws_sdk_kms::Client as Kms;

use crate::{
    clients::{
        aws::SdkResultExt,
        kms,
        registry_api::{self, RawManifest, Registry},
    },
    domain::{
        config::TrustedKey,
        image::rfc3339,
        provenance::{self, Build},
    },
    stage::StageContext,
};

/// A key whose signatures are trusted, read once.
#[derive(Clone)]
pub struct Key {
    /// How the settings name it: `KMS key alias/…` or `public key keys/….pem`.
    pub name: String,
    /// SubjectPublicKeyInfo DER.
    pub der: Vec<u8>,
}

/// The keys a stage accepts provenance from.
#[derive(Clone)]
pub struct Trust {
    pub keys: Vec<Key>,
}

impl Trust {
    /// The keys `ctx`'s stage trusts (`trusted-keys`, or the main signing key of the stage
    /// that builds what it runs), read from KMS through the stage that owns each key
    /// (`ctx`, or `source`: the `promote-from` stage, opened by the caller) or from the
    /// repository's PEM files.
    pub async fn of(ctx: &StageContext<'_>, source: Option<&StageContext<'_>>) -> Result<Trust> {
        let mut keys = vec![];
        for key in ctx.ws.config.trusted_keys(ctx.stage) {
            keys.push(read(&key, ctx, source).await?);
        }
        if keys.is_empty() {
            bail!(
                "stage `{}` trusts no key; name the keys whose provenance it accepts in `trusted-keys` under [workspace.metadata.xtask.stages.{}]",
                ctx.stage.name,
                ctx.stage.name
            );
        }
        Ok(Trust { keys })
    }

    /// What `check` accepts before a merge: [`Trust::of`], and for a stage that builds its
    /// images, its pull-request key too (a pull request's images are checked where they
    /// are; they never reach a deploy of a stage that does not trust that key).
    pub async fn for_check(ctx: &StageContext<'_>, source: Option<&StageContext<'_>>) -> Result<Trust> {
        let mut trust = Trust::of(ctx, source).await?;
        if let Some(keys) = ctx.ws.config.signing_keys(ctx.stage) {
            let pr = TrustedKey::Kms { key: keys.pr, stage: ctx.stage.name.clone() };
            if !trust.keys.iter().any(|k| k.name == pr.to_string()) {
                trust.keys.push(read(&pr, ctx, source).await?);
            }
        }
        Ok(trust)
    }

    /// The names of the keys, for a message.
    pub fn names(&self) -> String {
        self.keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Reads the trusted `key`: a PEM file of the repository, or a KMS key's public half
/// through the stage that owns it (`ctx`, or `source`, opened by the caller).
pub async fn read(key: &TrustedKey, ctx: &StageContext<'_>, source: Option<&StageContext<'_>>) -> Result<Key> {
    let name = key.to_string();
    let der = match key {
        TrustedKey::Pem(path) => {
            let file = ctx.ws.root.join(path);
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the trusted public key {}", file.display()))?;
            provenance::public_key_der(&pem).with_context(|| format!("{} is not a PEM public key", file.display()))?
        }
        TrustedKey::Kms { key, stage } => {
            let owner =
                [Some(ctx), source].into_iter().flatten().find(|c| &c.stage.name == stage).with_context(|| {
                    format!("the trusted {name} belongs to stage `{stage}`, which this command did not open")
                })?;
            kms::public_key(&Kms::new(&owner.access.sdk), key).await.with_context(|| {
                format!("cannot read the trusted {name} of stage `{stage}`; `cargo xtask bootstrap --stage {stage}` makes it")
            })?
        }
    };
    Ok(Key { name, der })
}

/// What a verified statement says of an image.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The trusted key that signed it.
    pub signer: String,
    /// The commit it names.
    pub commit: String,
    pub inputs_key: String,
    /// Who signed it: the caller identity of the push (its ARN).
    pub builder: String,
    /// The referrer manifest that holds it.
    pub referrer: String,
}

/// Why no statement about an image could be trusted.
#[derive(Debug, Clone)]
pub struct Unproven(pub String);

impl std::fmt::Display for Unproven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The statements attached to `repository@digest` that a key of `trust` signed, naming
/// `commit` when given; `Err(Unproven)` says why there is none.
pub async fn find(
    registry: &Registry,
    repository: &str,
    digest: &str,
    commit: Option<&str>,
    trust: &Trust,
) -> Result<std::result::Result<Verified, Unproven>> {
    let referrers = registry.referrers(repository, digest, Some(provenance::BUNDLE_MEDIA_TYPE)).await?;
    if referrers.manifests.is_empty() {
        return Ok(Err(Unproven(format!("{repository}@{digest} has no signed provenance attached"))));
    }
    let mut why = vec![];
    for referrer in &referrers.manifests {
        let bundle = match bundle_of(registry, repository, &referrer.digest).await {
            Ok(bundle) => bundle,
            Err(err) => {
                why.push(format!("{}: {err:#}", short(&referrer.digest)));
                continue;
            }
        };
        for key in &trust.keys {
            let statement = match provenance::verify(&bundle, digest, &key.der) {
                Ok(statement) => statement,
                Err(_) => continue,
            };
            let Ok(predicate) = statement.provenance() else {
                why.push(format!("{}: a statement of another shape", short(&referrer.digest)));
                continue;
            };
            let named = &predicate.build_definition.external_parameters.commit;
            if commit.is_some_and(|c| c != named) {
                why.push(format!("{}: signed by {}, but names commit {named}", short(&referrer.digest), key.name));
                continue;
            }
            return Ok(Ok(Verified {
                signer: key.name.clone(),
                commit: named.clone(),
                inputs_key: predicate.build_definition.internal_parameters.inputs_key,
                builder: predicate.run_details.builder.id,
                referrer: referrer.digest.clone(),
            }));
        }
        if !why.iter().any(|w| w.starts_with(&short(&referrer.digest))) {
            why.push(format!("{}: not signed by a trusted key", short(&referrer.digest)));
        }
    }
    let wanted = commit.map(|c| format!(" naming commit {c}")).unwrap_or_default();
    Ok(Err(Unproven(format!(
        "{repository}@{digest} has no provenance{wanted} signed by {} ({})",
        trust.names(),
        why.join("; ")
    ))))
}

/// What `images` says of an image's provenance: the trusted key that signed it and the
/// commit it names, or why there is none.
pub async fn describe(registry: &Registry, repository: &str, digest: &str, trust: &Trust) -> Result<String> {
    Ok(match find(registry, repository, digest, None, trust).await? {
        Ok(verified) => format!("signed by {} for {}", verified.signer, verified.commit),
        Err(_) => format!("no provenance signed by {}", trust.names()),
    })
}

/// The bundle a referrer manifest holds (its one layer).
async fn bundle_of(registry: &Registry, repository: &str, referrer: &str) -> Result<bytes::Bytes> {
    let manifest = registry.manifest(repository, referrer).await?.context("the referrer manifest is gone")?;
    let references = registry_api::references(&manifest.body)?;
    let (layer, _) = references.blobs.last().context("the referrer manifest has no layer")?;
    registry.blob(repository, layer).await
}

fn short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Signs statements with a stage's KMS key for one channel.
pub struct Signer {
    kms: Kms,
    key: String,
    /// The signing key's public half, as the bundle names it.
    public_key: Vec<u8>,
    /// The caller identity's ARN: who built.
    builder_id: String,
    /// The CI run, when a CI job signs.
    run_url: Option<String>,
}

impl Signer {
    /// The signer with `key` (one of the stage's signing keys) for whoever `ctx`'s
    /// credentials name; fails, saying how to make it, when the key cannot be used.
    pub async fn open(ctx: &StageContext<'_>, key: &str) -> Result<Signer> {
        let identity = aws_sdk_sts::Client::new(&ctx.access.sdk)
            .get_caller_identity()
            .send()
            .await
            .sdk_context(|| "cannot ask STS who is signing the provenance")?;
        let builder_id = identity.arn().context("STS named no caller ARN")?.to_string();
        Signer::new(Kms::new(&ctx.access.sdk), key, builder_id).await.with_context(|| {
            format!(
                "cannot use the signing key {key} of stage `{}`; `cargo xtask bootstrap --stage {}` makes it",
                ctx.stage.name, ctx.stage.name
            )
        })
    }

    /// A signer with the KMS key `key` for the builder `builder_id` (a caller ARN), once
    /// the key has signed a probe for this caller: a push that cannot sign fails before it
    /// pushes anything. The probe is no DSSE encoding, so it can never pass for a statement.
    pub async fn new(kms: Kms, key: &str, builder_id: String) -> Result<Signer> {
        let public_key = kms::public_key(&kms, key).await?;
        let probe = b"xtask: may this caller sign provenance with this key?";
        let signature = kms::sign(&kms, key, probe).await?;
        provenance::p256_key(&public_key)?
            .verify(probe, &signature)
            .map_err(|_| anyhow::anyhow!("KMS key {key} signed a probe that its own public key does not verify"))?;
        Ok(Signer { kms, key: key.to_string(), public_key, builder_id, run_url: run_url() })
    }

    /// The signing key, as the settings name it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The signing key's public half (SubjectPublicKeyInfo DER).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Signs the provenance of `build` (its builder and run filled in here) and attaches it
    /// to the image in `registry`; returns the referrer's digest.
    pub async fn attest(&self, registry: &Registry, mut build: Build) -> Result<String> {
        build.builder_id = self.builder_id.clone();
        build.run_url = self.run_url.clone();
        let (repository, digest) = (build.image_repository.clone(), build.image_digest.clone());
        let subject = registry
            .manifest(&repository, &digest)
            .await?
            .with_context(|| format!("{repository}@{digest} is not in the registry"))?;
        let subject = registry_api::Descriptor::of(&subject.media_type, &subject.body);
        let payload = provenance::Statement::of(&build)?.payload();
        let signature = kms::sign(&self.kms, &self.key, &provenance::pae(provenance::PAYLOAD_TYPE, &payload)).await?;
        let bundle = provenance::bundle(&payload, &signature, &self.public_key);
        provenance::verify(&bundle, &digest, &self.public_key)
            .with_context(|| format!("KMS key {} signed a statement that does not verify", self.key))?;
        registry.push_blob(&repository, provenance::EMPTY_CONFIG.into()).await?;
        registry.push_blob(&repository, bundle.clone().into()).await?;
        let manifest = provenance::referrer_manifest(&subject, &bundle, &build.finished_on);
        let referrer = RawManifest { body: manifest.into(), media_type: provenance::OCI_MANIFEST.to_string() };
        let attached = registry
            .attach_referrer(&repository, &digest, &referrer)
            .await
            .with_context(|| format!("cannot attach the signed provenance to {repository}@{digest}"))?;
        Ok(attached.digest)
    }
}

/// Copies the referrer `referrer` of an image (its manifest and blobs, same bytes) from
/// `source` to `target`, where the image already is.
pub async fn copy(source: &Registry, target: &Registry, repository: &str, subject: &str, referrer: &str) -> Result<()> {
    let manifest = source
        .manifest(repository, referrer)
        .await?
        .with_context(|| format!("the provenance {referrer} of {repository}@{subject} is gone from the source"))?;
    for (blob, size) in registry_api::references(&manifest.body)?.blobs {
        if !target.has_blob(repository, &blob).await? {
            target.copy_blob(source, repository, &blob, size).await?;
        }
    }
    target.attach_referrer(repository, subject, &manifest).await?;
    Ok(())
}

/// The URL of the CI run that signs, under GitHub Actions.
fn run_url() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Some(format!("{}/{}/actions/runs/{}", var("GITHUB_SERVER_URL")?, var("GITHUB_REPOSITORY")?, var("GITHUB_RUN_ID")?))
}

/// Now, RFC 3339 UTC.
pub fn now() -> String {
    rfc3339(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}
