//! Where the parts of a running stack answer, and the SDK configuration and environment
//! that reach them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_ecr::config::{Credentials, Region};
use serde::{Deserialize, Serialize};

use crate::{
    credentials::{LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, role_arn},
    settings::DEFAULT_ACCOUNT,
};

/// Where the parts of a running stack answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ports {
    pub moto: u16,
    /// Where clients reach the registry: the front that keeps ECR's promises (front.rs).
    pub registry: u16,
    /// The registry itself, behind the front.
    pub registry_backend: u16,
    pub sync: u16,
    /// The registries of further emulated accounts (a stage with `local-stack = true` and
    /// an account of its own), by account id: each has its own registry and sync.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accounts: BTreeMap<String, RegistryPorts>,
}

/// The ports of one account's registry: the front clients use, the registry behind it,
/// and the sync that keeps it and the account's emulated ECR in agreement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegistryPorts {
    pub registry: u16,
    pub registry_backend: u16,
    pub sync: u16,
}

impl RegistryPorts {
    pub fn registry_host(&self) -> String {
        format!("127.0.0.1:{}", self.registry)
    }
    pub fn sync_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sync)
    }
}

/// The account a stage on the stack acts in when it is not moto's own.
pub fn other_account(stage: &xtask_release::domain::config::Stage) -> Option<&str> {
    stage.account.as_deref().filter(|account| *account != DEFAULT_ACCOUNT)
}

impl Ports {
    /// The AWS API (`localhost`, not `127.0.0.1`: moto resolves CloudFormation template
    /// URLs only on that name).
    pub fn moto_url(&self) -> String {
        format!("http://localhost:{}", self.moto)
    }
    pub fn registry_host(&self) -> String {
        format!("127.0.0.1:{}", self.registry)
    }
    pub fn sync_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sync)
    }

    /// The registry of `account` (`None`: moto's own account).
    pub fn registry_of(&self, account: Option<&str>) -> Result<RegistryPorts> {
        match account {
            None => Ok(self.own_registry()),
            Some(account) => self.accounts.get(account).copied().with_context(|| {
                format!("the local stack has no registry for account {account}; start it with `cargo xtask local up`")
            }),
        }
    }

    /// Every account's registry: moto's own (`None`) first, then the others', by account.
    pub fn registries(&self) -> impl Iterator<Item = (Option<&str>, RegistryPorts)> + '_ {
        let others = self.accounts.iter().map(|(account, ports)| (Some(account.as_str()), *ports));
        std::iter::once((None, self.own_registry())).chain(others)
    }

    fn own_registry(&self) -> RegistryPorts {
        RegistryPorts { registry: self.registry, registry_backend: self.registry_backend, sync: self.sync }
    }

    /// The SDK configuration that reaches the emulated AWS API.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        xtask_release::clients::aws::defaults()
            .http_client(xtask_release::clients::aws::plain_http_client())
            .region(Region::new(region.to_string()))
            .endpoint_url(self.moto_url())
            .credentials_provider(Credentials::new(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, None, None, "local-stack"))
            .load()
            .await
    }

    /// The SDK configuration that acts in `account` (`None`: moto's own): for another
    /// account, credentials of a role assumed in it, refreshed as they expire.
    pub async fn sdk_config_in(&self, region: &str, account: Option<&str>) -> SdkConfig {
        let base = self.sdk_config(region).await;
        let Some(account) = account else { return base };
        let role = aws_config::sts::AssumeRoleProvider::builder(role_arn(account))
            .session_name("xtask-local-stack")
            .configure(&base)
            .build()
            .await;
        base.into_builder().credentials_provider(aws_sdk_ecr::config::SharedCredentialsProvider::new(role)).build()
    }

    /// The environment a child process (cdk, a shell) needs to reach the stack's AWS API.
    pub fn env(&self, region: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto_url()),
            ("AWS_REGION", region.to_string()),
            ("AWS_DEFAULT_REGION", region.to_string()),
            ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY.to_string()),
        ]
    }
}
