//! AWS KMS: ECDSA P-256 signatures by a key that never leaves KMS (build provenance), and
//! the key's public half to verify them with.

use anyhow::{Context, Result, bail};
use aws_sdk_kms::{
    Client,
    primitives::Blob,
    types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec},
};
use sha2::{Digest, Sha256};

use crate::clients::aws::SdkResultExt;

/// The largest message KMS signs as `RAW`; a longer one is sent as its SHA-256 (`DIGEST`),
/// which gives the same ECDSA_SHA_256 signature.
const RAW_LIMIT: usize = 4096;

/// The ASN.1 DER ECDSA signature (ECDSA_SHA_256) of `message` by the key `key_id` (an id,
/// ARN or alias).
pub async fn sign(client: &Client, key_id: &str, message: &[u8]) -> Result<Vec<u8>> {
    let (message_type, message) = if message.len() <= RAW_LIMIT {
        (MessageType::Raw, message.to_vec())
    } else {
        (MessageType::Digest, Sha256::digest(message).to_vec())
    };
    let out = client
        .sign()
        .key_id(key_id)
        .message(Blob::new(message))
        .message_type(message_type)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .sdk_context(|| format!("cannot sign with KMS key {key_id}"))?;
    let signature = out.signature().with_context(|| format!("KMS returned no signature for key {key_id}"))?;
    Ok(signature.as_ref().to_vec())
}

/// The SubjectPublicKeyInfo DER of the key `key_id`, after checking that it is a key
/// [`sign`] can use.
pub async fn public_key(client: &Client, key_id: &str) -> Result<Vec<u8>> {
    let out = client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .sdk_context(|| format!("cannot read the public key of KMS key {key_id}"))?;
    // `CustomerMasterKeySpec` is the older name of the same field, and some
    // implementations of the KMS API answer with it alone.
    #[allow(deprecated)]
    let spec = out.key_spec().map(KeySpec::as_str).or(out.customer_master_key_spec().map(|s| s.as_str()));
    let usage = out.key_usage();
    let signs = out.signing_algorithms().contains(&SigningAlgorithmSpec::EcdsaSha256);
    if spec != Some(KeySpec::EccNistP256.as_str()) || usage != Some(&KeyUsageType::SignVerify) || !signs {
        bail!(
            "KMS key {key_id} is a {} key for {}; provenance needs an ECC_NIST_P256 key for SIGN_VERIFY \
             (aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY)",
            spec.unwrap_or("(unnamed spec)"),
            usage.map_or("(unnamed usage)", KeyUsageType::as_str),
        );
    }
    let der = out.public_key().with_context(|| format!("KMS returned no public key for key {key_id}"))?;
    Ok(der.as_ref().to_vec())
}
