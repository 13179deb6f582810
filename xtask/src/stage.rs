//! One stage, resolved once: its settings, profile and region, the SDK configuration
//! and ECR client, and, fetched on first use and then kept, the registry's credentials
//! and the Docker connection. Commands resolve it up front and pass it down; nothing
//! below resolves a stage again. Two can live side by side (one per stage).

use anyhow::{Context, Result};
use bollard::Docker;
use tokio::sync::OnceCell;

use crate::{
    config::Stage,
    docker,
    ecr::{self, RegistryAuth},
    target::Target,
    workspace::Workspace,
};

pub struct StageContext<'w> {
    pub ws: &'w Workspace,
    pub stage: &'w Stage,
    pub region: String,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub(crate) target: Target,
    registry: OnceCell<RegistryAuth>,
    docker: OnceCell<Docker>,
}

impl<'w> StageContext<'w> {
    /// Resolves `stage` with `profile` (which overrides the stage's own): fails before any
    /// side effect when the stage cannot be reached (no credentials, no region, the local
    /// stack not running), saying how to fix it.
    pub async fn open(ws: &'w Workspace, stage: &'w Stage, profile: Option<&str>) -> Result<StageContext<'w>> {
        let (sdk, target) = Target::open(ws, stage, profile).await?;
        let region = sdk.region().context("the SDK configuration has no region")?.to_string();
        let (ecr, ecs) = (aws_sdk_ecr::Client::new(&sdk), aws_sdk_ecs::Client::new(&sdk));
        Ok(StageContext { ws, stage, region, ecr, ecs, target, registry: OnceCell::new(), docker: OnceCell::new() })
    }

    /// The registry's endpoint and credentials, asked of ECR once.
    pub async fn registry(&self) -> Result<&RegistryAuth> {
        self.registry.get_or_try_init(|| async { Ok(self.target.registry(ecr::authorization(&self.ecr).await?)) }).await
    }

    /// The Docker daemon, connected once.
    pub async fn docker(&self) -> Result<&Docker> {
        self.docker.get_or_try_init(docker::connect).await
    }

    /// `cargo xtask bootstrap --stage <this>`: how to make what a stage lacks.
    pub fn bootstrap_hint(&self) -> String {
        format!("cargo xtask bootstrap --stage {}", self.stage.name)
    }
}
