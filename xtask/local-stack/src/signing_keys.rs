//! The KMS keys that sign build provenance, in each emulated account: for every stage the
//! stack serves that builds its images (no `promote-from`), its main and pull-request
//! aliases (`alias/<project>-<stage>-main`, `-pr`) point at an enabled ECC_NIST_P256
//! SIGN_VERIFY key, as the registry stack makes them in AWS.
//!
//! moto's CloudFormation makes every `AWS::KMS::Key` a symmetric ENCRYPT_DECRYPT key
//! whatever the template says (and DescribeKey of one made with a KeyPolicy answers 500),
//! though it does make the `AWS::KMS::Alias`. So after each bootstrap, and whenever a
//! stage with its repositories is opened, [`ensure`] points each alias at a signing key:
//! the one made for that alias before (found by the tag [`TAG`]) when there is one, so a
//! registry stack deployed again never changes the key and earlier signatures keep
//! verifying; a new one otherwise. Never before a bootstrap: the alias is the stack's to
//! create (in AWS, CreateAlias of an existing alias fails, and the stack with it; moto's
//! CloudFormation instead gives the alias a second target, which [`ensure`] removes).
//!
//! moto makes a key's material anew when its recorded CreateKey is replayed: after a
//! `local down`/`up` the alias points at a key of new material (the same tag, a new id),
//! and signatures made before no longer verify.

use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_sdk_kms::{
    Client,
    types::{KeySpec, KeyState, KeyUsageType, Tag},
};
use xtask_release::{
    clients::aws::SdkResultExt,
    domain::config::{Config, Stage},
    stage::StageContext,
};

/// The tag a signing key made here carries: its value is the alias the key was made for.
pub const TAG: &str = "xtask-local-signing-key";

/// The aliases of `stage`'s signing keys that the stack makes: none for a stage with
/// `promote-from` (it signs nothing), and none for a key named by id or ARN (made elsewhere).
pub fn aliases(config: &Config, stage: &Stage) -> Vec<String> {
    let Some(keys) = config.signing_keys(stage) else { return vec![] };
    [keys.main, keys.pr].into_iter().filter(|key| key.starts_with("alias/")).collect()
}

/// [`ensure`] for the stage `ctx` opened on the stack whose directory is `stack_dir`, in
/// the stage's own account, one caller at a time per stack (two callers would each make a
/// key for an alias that has none).
pub async fn ensure_for(ctx: &StageContext<'_>, stack_dir: &Path) -> Result<()> {
    let aliases = aliases(&ctx.ws.config, ctx.stage);
    if aliases.is_empty() {
        return Ok(());
    }
    let kms = Client::new(&ctx.access.sdk);
    // The usual case, every key made already, takes no lock: callers side by side (tests,
    // two checkouts) neither wait nor say they wait.
    if ready(&kms, &aliases).await? {
        return Ok(());
    }
    let lock = stack_dir.join("signing-keys.lock");
    // Short, and no news to the person at the terminal: waited for without a word.
    let _one_at_a_time = xtask_release::support::lock::Lock::acquire_quietly(&lock).await?;
    ensure(&kms, &aliases)
        .await
        .with_context(|| format!("cannot make the signing keys of stage `{}` on the local stack", ctx.stage.name))
}

/// Points each alias of `aliases` at an enabled ECC_NIST_P256 SIGN_VERIFY key: as it is
/// when it does; else at the key made for it before; else at a new one. Idempotent.
pub async fn ensure(kms: &Client, aliases: &[String]) -> Result<()> {
    for alias in aliases {
        ensure_alias(kms, alias).await?;
    }
    Ok(())
}

/// Does each alias of `aliases` point at one signing key already?
async fn ready(kms: &Client, aliases: &[String]) -> Result<bool> {
    for alias in aliases {
        match targets(kms, alias).await?.as_slice() {
            [only] if is_signing_key(kms, only).await? => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

async fn ensure_alias(kms: &Client, alias: &str) -> Result<()> {
    let named = targets(kms, alias).await?;
    if let [only] = named.as_slice()
        && is_signing_key(kms, only).await?
    {
        return Ok(());
    }
    let key = match made_for(kms, alias).await? {
        Some(key) => key,
        None => create(kms, alias).await?,
    };
    if named.is_empty() {
        let created = kms.create_alias().alias_name(alias).target_key_id(&key).send().await;
        match created {
            Ok(_) => return Ok(()),
            // Made meanwhile (by CloudFormation): pointed at the key below.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => {}
            Err(err) => return Err(err).sdk_context(|| format!("cannot create the KMS alias {alias}")),
        }
    }
    // moto's UpdateAlias moves one target at a time; an alias CloudFormation made again
    // over an existing one has two.
    for _ in 0..5 {
        if targets(kms, alias).await? == [key.as_str()] {
            return Ok(());
        }
        kms.update_alias()
            .alias_name(alias)
            .target_key_id(&key)
            .send()
            .await
            .sdk_context(|| format!("cannot point the KMS alias {alias} at key {key}"))?;
    }
    bail!("the KMS alias {alias} still names other keys than {key} after 5 updates; restart the local stack")
}

/// The keys `alias` points at (none when it does not exist; two where moto doubled it).
async fn targets(kms: &Client, alias: &str) -> Result<Vec<String>> {
    let mut pages = kms.list_aliases().into_paginator().send();
    let mut found = vec![];
    while let Some(page) = pages.next().await {
        let page = page.sdk_context(|| "cannot list the KMS aliases".to_string())?;
        let named = page.aliases().iter().filter(|a| a.alias_name() == Some(alias));
        found.extend(named.filter_map(|a| a.target_key_id().map(str::to_string)));
    }
    Ok(found)
}

/// Is `key` an enabled ECC_NIST_P256 SIGN_VERIFY key? Asked with GetPublicKey first, which
/// answers for any key (DescribeKey of a key moto's CloudFormation made can answer 500).
async fn is_signing_key(kms: &Client, key: &str) -> Result<bool> {
    let public = match kms.get_public_key().key_id(key).send().await {
        Ok(out) => out,
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                e.is_unsupported_operation_exception()
                    || e.is_disabled_exception()
                    || e.is_kms_invalid_state_exception()
                    || e.is_not_found_exception()
            }) =>
        {
            return Ok(false);
        }
        Err(err) => return Err(err).sdk_context(|| format!("cannot read the public key of KMS key {key}")),
    };
    // `CustomerMasterKeySpec` is the older name of the field; moto answers with it alone.
    #[allow(deprecated)]
    let spec = public.key_spec().map(KeySpec::as_str).or(public.customer_master_key_spec().map(|s| s.as_str()));
    if spec != Some(KeySpec::EccNistP256.as_str()) || public.key_usage() != Some(&KeyUsageType::SignVerify) {
        return Ok(false);
    }
    let described =
        kms.describe_key().key_id(key).send().await.sdk_context(|| format!("cannot describe KMS key {key}"))?;
    Ok(described.key_metadata().is_some_and(|m| m.enabled() && m.key_state() == Some(&KeyState::Enabled)))
}

/// The signing key made for `alias` before, if one is still enabled (the oldest, if ever two).
async fn made_for(kms: &Client, alias: &str) -> Result<Option<String>> {
    let mut pages = kms.list_keys().into_paginator().send();
    let mut found: Vec<(f64, String)> = vec![];
    while let Some(page) = pages.next().await {
        let page = page.sdk_context(|| "cannot list the KMS keys".to_string())?;
        for key in page.keys().iter().filter_map(|k| k.key_id()) {
            let tags = kms
                .list_resource_tags()
                .key_id(key)
                .send()
                .await
                .sdk_context(|| format!("cannot list the tags of KMS key {key}"))?;
            let ours = tags.tags().iter().any(|t| t.tag_key() == TAG && t.tag_value() == alias);
            if ours && is_signing_key(kms, key).await? {
                let described = kms
                    .describe_key()
                    .key_id(key)
                    .send()
                    .await
                    .sdk_context(|| format!("cannot describe KMS key {key}"))?;
                let created = described.key_metadata().and_then(|m| m.creation_date()).map_or(0.0, |d| d.as_secs_f64());
                found.push((created, key.to_string()));
            }
        }
    }
    found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(found.into_iter().next().map(|(_, key)| key))
}

/// A new ECC_NIST_P256 SIGN_VERIFY key, tagged as made for `alias`.
async fn create(kms: &Client, alias: &str) -> Result<String> {
    let tag = Tag::builder().tag_key(TAG).tag_value(alias).build().context("a KMS tag needs a key and a value")?;
    let out = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description(format!("signs build provenance on the local stack ({alias})"))
        .tags(tag)
        .send()
        .await
        .sdk_context(|| format!("cannot create a signing key for {alias}"))?;
    let key =
        out.key_metadata().map(|m| m.key_id()).with_context(|| format!("KMS made a key for {alias} without an id"))?;
    eprintln!("local stack: made the signing key {key} for {alias}");
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_that_builds_gets_its_two_aliases_and_a_promoted_one_none() {
        let toml = r#"
[workspace]
[workspace.metadata.xtask]
project = "hello"
[[workspace.metadata.xtask.images]]
name = "app"
context = "app"
dockerfile = "app/Dockerfile"
repository = "hello/app"
port = 8080
[workspace.metadata.xtask.stages.local-prod]
local-stack = true
region = "us-east-1"
account = "111111111111"
promote-from = "local"
[workspace.metadata.xtask.stages.other]
local-stack = true
region = "us-east-1"
signing-key = "arn:aws:kms:us-east-1:111111111111:key/1234"
"#;
        let config = Config::parse(Path::new("/w"), toml, &crate::settings::IMPLICIT).unwrap();
        let aliases = |name: &str| aliases(&config, config.stage(name).unwrap());
        assert_eq!(aliases("local"), ["alias/hello-local-main", "alias/hello-local-pr"]);
        assert!(aliases("local-prod").is_empty());
        assert_eq!(aliases("other"), ["alias/hello-other-pr"]);
    }
}
