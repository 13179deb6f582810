//! Attaches signed build provenance (made with a KMS key) to an image already in a
//! registry, with the library's pieces alone, so that cosign can be run on the result:
//!
//! ```text
//! cargo run -p xtask-release --example attest -- --registry HOST:PORT --plain-http \
//!     --repository REPO --digest sha256:HEX --public-key-out kms.pub [--kms-key KEY]
//! cosign verify-attestation --key kms.pub --type slsaprovenance1 \
//!     --insecure-ignore-tlog=true --allow-http-registry HOST:PORT/REPO@sha256:HEX
//! ```
//!
//! The SDK is configured from the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! credentials); without `--kms-key` a new ECC_NIST_P256 signing key is created. The
//! statement's build facts are example values unless given.
#![allow(clippy::print_stdout, reason = "the example reports to the person who runs it")]

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use clap::Parser;
use xtask_release::{
    clients::{
        aws::SdkResultExt, ecr::RegistryAuth, kms, registry_api, registry_api::RawManifest, registry_api::Registry,
    },
    domain::{image::rfc3339, provenance},
};

#[derive(Parser)]
struct Args {
    /// `host[:port]` of the registry.
    #[arg(long)]
    registry: String,
    /// Speak plain http (a registry on a loopback address).
    #[arg(long)]
    plain_http: bool,
    #[arg(long, env = "REGISTRY_USERNAME", default_value = "")]
    username: String,
    #[arg(long, env = "REGISTRY_PASSWORD", default_value = "", hide_env_values = true)]
    password: String,
    /// The image's repository in the registry.
    #[arg(long)]
    repository: String,
    /// The image's manifest digest.
    #[arg(long)]
    digest: String,
    /// The KMS key (id, ARN or alias) that signs; a new one is made without it.
    #[arg(long)]
    kms_key: Option<String>,
    /// Where to write the key's public half as PEM (cosign's `--key`).
    #[arg(long)]
    public_key_out: Option<std::path::PathBuf>,
    /// Where to write the Sigstore bundle as well.
    #[arg(long)]
    bundle_out: Option<std::path::PathBuf>,
    #[arg(long, default_value = "0123456789abcdef0123456789abcdef01234567")]
    commit: String,
    #[arg(long, default_value = "https://git.example.com/hello.git")]
    repository_url: String,
    #[arg(long, default_value = "arn:aws:iam::123456789012:user/example")]
    builder_id: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let sdk = xtask_release::clients::aws::defaults().load().await;
    let client = aws_sdk_kms::Client::new(&sdk);
    let key_id = match &args.kms_key {
        Some(key) => key.clone(),
        None => {
            let made = client
                .create_key()
                .key_spec(KeySpec::EccNistP256)
                .key_usage(KeyUsageType::SignVerify)
                .send()
                .await
                .sdk_context(|| "cannot create a KMS signing key")?;
            let id = made.key_metadata().map(|m| m.key_id().to_string()).context("KMS returned no key id")?;
            println!("created KMS key {id}");
            id
        }
    };

    let auth = RegistryAuth {
        username: args.username.clone(),
        password: args.password.clone(),
        host: args.registry.clone(),
        plain_http: args.plain_http,
    };
    let registry = Registry::new(&auth)?;
    let image = registry
        .manifest(&args.repository, &args.digest)
        .await?
        .with_context(|| format!("{}/{}@{} is not in the registry", args.registry, args.repository, args.digest))?;
    let subject = registry_api::Descriptor::of(&image.media_type, &image.body);
    ensure!(subject.digest == args.digest, "the registry served a manifest whose digest is {}", subject.digest);

    let started = rfc3339(now());
    let build = provenance::Build {
        image_digest: args.digest.clone(),
        image_repository: args.repository.clone(),
        commit: args.commit.clone(),
        repository_url: args.repository_url.clone(),
        inputs_key: "example".to_string(),
        dockerfile: "app/Dockerfile".to_string(),
        target: Some("runtime".to_string()),
        build_args: BTreeMap::from([("RUST_IMAGE".to_string(), "rust:1.95".to_string())]),
        platforms: vec!["linux/amd64".to_string()],
        builder_id: args.builder_id.clone(),
        run_url: None,
        reused_from: None,
        started_on: started.clone(),
        finished_on: rfc3339(now()),
    };
    let payload = provenance::Statement::of(&build)?.payload();
    let signature = kms::sign(&client, &key_id, &provenance::pae(provenance::PAYLOAD_TYPE, &payload)).await?;
    let public_key = kms::public_key(&client, &key_id).await?;
    let bundle = provenance::bundle(&payload, &signature, &public_key);
    provenance::verify(&bundle, &args.digest, &public_key).context("the bundle just signed does not verify")?;

    registry.push_blob(&args.repository, provenance::EMPTY_CONFIG.into()).await?;
    registry.push_blob(&args.repository, bundle.clone().into()).await?;
    let manifest = provenance::referrer_manifest(&subject, &bundle, &started);
    let manifest_size = manifest.len();
    let referrer = RawManifest { body: manifest.into(), media_type: provenance::OCI_MANIFEST.to_string() };
    let attached = registry.attach_referrer(&args.repository, &args.digest, &referrer).await?;

    println!("signed with KMS key {key_id}");
    println!("bundle {} ({} bytes)", registry_api::digest_of(&bundle), bundle.len());
    println!("referrer manifest {} ({manifest_size} bytes)", attached.digest);
    match &attached.fallback_tag {
        Some(tag) => println!("listed under the fallback tag {tag} (the registry has no referrers API)"),
        None => println!("listed by the registry's referrers API"),
    }
    if let Some(path) = &args.public_key_out {
        std::fs::write(path, provenance::public_key_pem(&public_key))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("public key written to {}", path.display());
    }
    if let Some(path) = &args.bundle_out {
        std::fs::write(path, &bundle).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
