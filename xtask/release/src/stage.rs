//! One stage, opened once: its settings, region, SDK clients and, fetched on first use and
//! then kept, the registry's credentials and the Docker connection. Commands open it up
//! front and pass it down; nothing below opens a stage again. Two can live side by side
//! (one per stage: promotion reads one and writes the other).
//!
//! How a stage is reached is plain data, [`Access`]: the SDK configuration (its endpoint
//! and credentials provider), the registry's endpoint, cdk's environment and flags, the
//! network builds run on. [`Access::aws`] makes the one of a stage in an AWS account; a
//! caller that serves a stage some other way fills the fields itself. The workflows never
//! ask which kind of stage they work on.

use std::{collections::BTreeMap, future::Future, time::Duration};

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use bollard::Docker;
use tokio::sync::OnceCell;

use crate::{
    clients::{
        aws,
        cdk::CdkEnv,
        docker,
        ecr::{self, RegistryAuth},
    },
    domain::{config::Stage, workspace::Workspace},
    support::progress::Task,
};

/// How a stage is reached.
pub struct Access {
    /// The SDK configuration: region, credentials provider, and the endpoint when it is not AWS's.
    pub sdk: SdkConfig,
    /// Where images are pushed and pulled: `None` for the endpoint ECR hands out with its
    /// credentials, or another registry that holds the same repositories.
    pub registry: Option<RegistryEndpoint>,
    /// cdk's profile, environment and flags.
    pub cdk: CdkEnv,
    /// The network a build's `RUN` steps get (`None`: the engine's own).
    pub build_network: Option<String>,
    /// May images of a dirty work tree (`<sha>-dirty-<hash>`) be pushed to and deployed here?
    pub accepts_dirty_images: bool,
    /// Build arguments every build for the stage gets over the image's and the stage's own:
    /// base images the engine reaches in place of those a Dockerfile names (none in AWS).
    pub build_args: BTreeMap<String, String>,
}

/// A registry endpoint other than ECR's own.
#[derive(Debug, Clone)]
pub struct RegistryEndpoint {
    /// `host[:port]`, without scheme.
    pub host: String,
    /// Spoken over plain http; credentials then go to a loopback address only ([`RegistryAuth::base_url`]).
    pub plain_http: bool,
}

impl Access {
    /// A stage in an AWS account, reached with `profile` (`--profile`, which overrides the
    /// stage's own) or the default credential chain; fails, saying how to fix it, when no
    /// credentials or no region can be had.
    pub async fn aws(stage: &Stage, profile: Option<&str>) -> Result<Access> {
        let (sdk, profile) = aws::load(stage, profile).await?;
        aws::ensure_credentials(&sdk, profile.as_deref()).await?;
        Ok(Access {
            sdk,
            registry: None,
            cdk: CdkEnv { profile, ..CdkEnv::default() },
            build_network: None,
            accepts_dirty_images: false,
            build_args: BTreeMap::new(),
        })
    }
}

pub struct StageContext<'w> {
    pub ws: &'w Workspace,
    pub stage: &'w Stage,
    pub region: String,
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub access: Access,
    /// The registry's endpoint and credentials, and the registry's host as ECR names it.
    registry: OnceCell<(RegistryAuth, String)>,
    docker: OnceCell<Docker>,
}

impl<'w> StageContext<'w> {
    /// Opens `stage` through `access`.
    pub fn open(ws: &'w Workspace, stage: &'w Stage, access: Access) -> Result<StageContext<'w>> {
        let region = access.sdk.region().context("the SDK configuration has no region")?.to_string();
        let (ecr, ecs) = (aws_sdk_ecr::Client::new(&access.sdk), aws_sdk_ecs::Client::new(&access.sdk));
        Ok(StageContext { ws, stage, region, ecr, ecs, access, registry: OnceCell::new(), docker: OnceCell::new() })
    }

    /// The registry's endpoint and credentials, asked of ECR once.
    pub async fn registry(&self) -> Result<&RegistryAuth> {
        Ok(&self.registry_and_host().await?.0)
    }

    /// `<registry>/<repository>`, as ECR names a repository (its `repositoryUri`): the
    /// registry ECR's credentials are for, whatever endpoint the stage reaches it through.
    pub async fn repository_uri(&self, repository: &str) -> Result<String> {
        Ok(format!("{}/{repository}", self.registry_and_host().await?.1))
    }

    async fn registry_and_host(&self) -> Result<&(RegistryAuth, String)> {
        self.registry
            .get_or_try_init(|| async {
                let mut auth = ecr::authorization(&self.ecr).await?;
                let host = auth.host.clone();
                if let Some(endpoint) = &self.access.registry {
                    auth.host = endpoint.host.clone();
                    auth.plain_http = endpoint.plain_http;
                }
                Ok((auth, host))
            })
            .await
    }

    /// The build arguments of the stage as it is reached: its own, then its access's.
    pub fn build_args(&self) -> BTreeMap<String, String> {
        let mut args = self.stage.build_args.clone();
        args.extend(self.access.build_args.clone());
        args
    }

    /// The same context with `docker` as its daemon: one its opener connected to already.
    pub fn with_docker(self, docker: Docker) -> StageContext<'w> {
        let _ = self.docker.set(docker);
        self
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

/// One ECS service a deploy rolls out, as the service stack's outputs name it.
pub struct Service<'a> {
    /// The image it runs (its container has the image's name).
    pub image: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
    /// The path its health check asks.
    pub health_path: &'a str,
    /// `<service stack>/<image>`: one service of one stack, across deploys.
    pub key: String,
}

/// How a rollout ended.
pub enum Rolled {
    /// It completed: the task definition that runs, where the service answers when the
    /// observer knows, and the image digests the service's container runs as whoever ran it
    /// resolved them (none when it cannot say).
    Completed { task_definition: String, url: Option<String>, digests: Vec<String> },
    /// It failed or did not complete in time: the reasons, in the words of who ran it.
    Failed(Vec<String>),
}

/// Where a deploy learns how each service's rollout went: ECS's deployment state
/// (`EcsRollouts`, of the rollout workflow) in AWS. The one point of `deploy` where a
/// stage served some other way answers itself.
pub trait Rollouts {
    /// Waits, at most `timeout`, until `service`'s rollout has ended; `task` shows progress.
    fn wait<'a>(
        &'a self,
        ctx: &'a StageContext<'_>,
        service: &'a Service<'a>,
        timeout: Duration,
        task: &'a Task,
    ) -> impl Future<Output = Result<Rolled>> + 'a;
}
