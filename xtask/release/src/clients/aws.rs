//! The AWS SDK: one `SdkConfig` per stage from its profile and region (the same
//! profile and region are handed to `cdk`, so the SDK and cdk never disagree), and
//! SDK errors reduced to one readable line.

use std::{error::Error as StdError, time::Duration};

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecr::{
    config::{ProvideCredentials, Region},
    error::{ProvideErrorMetadata, SdkError},
};

use crate::domain::config::Stage;

/// Loads the SDK configuration of an AWS stage: `profile` (from `--profile`) overrides the
/// stage's, and credentials a CI job put in the environment (keys, or an OIDC web identity)
/// win over the stage's laptop profile. Returns the config and the profile in force.
pub async fn load(stage: &Stage, profile: Option<&str>) -> Result<(SdkConfig, Option<String>)> {
    let env_credentials =
        ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"].iter().any(|v| std::env::var_os(v).is_some());
    let stage_profile = if env_credentials { None } else { stage.profile.clone() };
    let profile = profile.map(str::to_owned).or(stage_profile);
    let mut loader = defaults();
    if let Some(profile) = &profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &stage.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let config = loader.timeout_config(timeouts()).load().await;
    if config.region().is_none() {
        bail!(
            "no AWS region for stage `{0}`; set `region` under [workspace.metadata.xtask.stages.{0}] or AWS_REGION",
            stage.name
        );
    }
    Ok((config, profile))
}

/// The SDK's defaults with this crate's HTTP client: every `SdkConfig` starts here.
pub fn defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// The SDK's own HTTP client (hyper, rustls, the system's root certificates, read when the
/// first connection is made) on ring, the crypto the other TLS clients of the crate use.
fn https_client() -> aws_sdk_ecr::config::SharedHttpClient {
    use aws_smithy_http_client::{
        Builder,
        tls::{Provider, rustls_provider::CryptoMode},
    };
    Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// An HTTP client for an endpoint spoken to over plain http (`endpoint_url` of `http://…`):
/// no TLS, so no root certificates are read.
pub fn plain_http_client() -> aws_sdk_ecr::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

/// How long one call to an AWS API may take, its retries included: a call that hangs
/// (a half-open connection, an endpoint that accepts and never answers) fails instead.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one attempt of a call may take before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The SDK's time limits: per call and per attempt (the connect timeout stays the SDK's).
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .operation_timeout(OPERATION_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// Fails early, naming the profile and how to log in, when no credentials can be had.
pub async fn ensure_credentials(config: &SdkConfig, profile: Option<&str>) -> Result<()> {
    let provider = config.credentials_provider().context("no AWS credentials provider is configured")?;
    let Err(err) = provider.provide_credentials().await else { return Ok(()) };
    let (who, hint) = match profile {
        Some(p) => (
            format!("profile `{p}`"),
            format!(
                "run `aws sso login --profile {p}` if it is an SSO profile, or check ~/.aws/config and ~/.aws/credentials"
            ),
        ),
        None => (
            "the default credential chain".to_string(),
            "set AWS_PROFILE or pass --profile, or export AWS credentials".to_string(),
        ),
    };
    Err(anyhow::anyhow!("{}", innermost(&err))).context(format!("no usable AWS credentials from {who}; {hint}"))
}

/// `.sdk_context(...)` on an SDK call's result: the error as one line (the service's code
/// and message, or why the endpoint could not be reached), under the caller's context.
pub trait SdkResultExt<T> {
    fn sdk_context<C: std::fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E, R> SdkResultExt<T> for std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    fn sdk_context<C: std::fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|err| anyhow::anyhow!("{}", explain(&err)).context(context()))
    }
}

/// An SDK error as one line a person can act on.
pub fn explain<E: ProvideErrorMetadata + StdError + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or("no message"))
        }
        SdkError::DispatchFailure(failure) => {
            let cause = innermost(err);
            let why = if failure.is_timeout() {
                "the connection timed out".to_string()
            } else if cause.contains("dns error") || cause.contains("failed to lookup address") {
                "DNS lookup failed (offline?)".to_string()
            } else if cause.contains("Connection refused") {
                "connection refused".to_string()
            } else {
                cause
            };
            format!("cannot reach the AWS API: {why}")
        }
        SdkError::TimeoutError(_) => "the AWS API did not answer in time".to_string(),
        SdkError::ResponseError(_) => format!("the AWS API sent a response that could not be read: {}", innermost(err)),
        _ => innermost(err),
    }
}

/// The deepest cause's message: where the SDK's wrappers end and the real reason starts.
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_and_attempt_has_a_time_limit() {
        let stage = Stage { name: "s".to_string(), region: Some("eu-west-1".to_string()), ..Stage::default() };
        let (config, _) = load(&stage, None).await.unwrap();
        let timeouts = config.timeout_config().expect("a timeout config");
        assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    }
}
