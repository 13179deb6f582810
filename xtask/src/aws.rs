//! One `SdkConfig` per run, from the stage's profile and region; the same
//! profile and region are handed to `cdk` so the SDK and cdk never disagree.

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecr::config::{Credentials, ProvideCredentials, Region};

use crate::config::{LocalPorts, Stage};

/// Where and as whom AWS is called for a stage.
#[derive(Debug, Clone)]
pub struct Target {
    pub profile: Option<String>,
    pub region: String,
    /// `Some` for the local stack: the emulated AWS API.
    pub endpoint: Option<String>,
}

/// The endpoint the local stack's AWS API answers on (`localhost`, not `127.0.0.1`:
/// moto resolves CloudFormation template URLs only on that name).
pub fn local_endpoint(ports: &LocalPorts) -> String {
    format!("http://localhost:{}", ports.moto_port)
}

/// Dummy credentials the emulated API accepts; they grant nothing anywhere else.
pub const LOCAL_ACCESS_KEY: &str = "testing";

/// Loads the SDK configuration for `stage`. `profile` (from `--profile`) overrides the stage's.
pub async fn load(stage: &Stage, profile: Option<&str>, ports: &LocalPorts) -> Result<(SdkConfig, Target)> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if stage.is_local() {
        let region = stage.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = local_endpoint(ports);
        let config = loader
            .region(Region::new(region.clone()))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new(LOCAL_ACCESS_KEY, LOCAL_ACCESS_KEY, None, None, "local-stack"))
            .load()
            .await;
        return Ok((config, Target { profile: None, region, endpoint: Some(endpoint) }));
    }
    // Credentials a CI job put in the environment (keys, or an OIDC web identity) win
    // over the stage's laptop profile; `--profile` always wins.
    let env_credentials = ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"].iter().any(|v| std::env::var_os(v).is_some());
    let stage_profile = if env_credentials { None } else { stage.profile.clone() };
    let profile = profile.map(str::to_owned).or(stage_profile);
    if let Some(profile) = &profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &stage.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let config = loader.load().await;
    let Some(region) = config.region().map(|r| r.to_string()) else {
        bail!(
            "no AWS region for stage `{}`; set `region` under [workspace.metadata.xtask.stages.{}] or AWS_REGION",
            stage.name,
            stage.name
        );
    };
    Ok((config, Target { profile, region, endpoint: None }))
}

/// Fails early, naming the profile, when no credentials can be had.
pub async fn ensure_credentials(config: &SdkConfig, target: &Target) -> Result<()> {
    let provider = config.credentials_provider().context("no AWS credentials provider is configured")?;
    if let Err(err) = provider.provide_credentials().await {
        let who = match &target.profile {
            Some(p) => format!("profile `{p}`"),
            None => "the default credential chain".to_string(),
        };
        let hint = match &target.profile {
            Some(p) => format!(
                "run `aws sso login --profile {p}` if it is an SSO profile, or check ~/.aws/config and ~/.aws/credentials"
            ),
            None => "set AWS_PROFILE or pass --profile, or export AWS credentials".to_string(),
        };
        return Err(anyhow::Error::new(err)).context(format!("no usable AWS credentials from {who}; {hint}"));
    }
    Ok(())
}
