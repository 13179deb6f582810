//! A stage this machine's local stack serves (`local`, and any with `local-stack = true`),
//! opened as the release library opens any stage: with plain data ([`Access`]). What the
//! local stack makes up for is said here, once:
//!
//! - the AWS API is moto at the stack's endpoint, with its credentials;
//! - images are pushed to the stack's registry over plain http on loopback;
//! - cdk gets the endpoint and a profile whose `credential_process` hands out the
//!   credentials, deploys without change sets (moto cannot delete them) and never asks;
//! - builds run their steps on the host's network (the stack's daemons have no bridge);
//! - images of a dirty work tree are accepted;
//! - where the Docker daemon cannot pull the official base images the Dockerfiles name,
//!   builds get the stand-ins instead, as build arguments ([`crate::base_images`]);
//! - a stage with an account of its own acts in it through a role assumed there, and
//!   pushes to that account's registry;
//! - its signing keys are made by the stack ([`crate::signing_keys`]), since moto's
//!   CloudFormation makes no signing key.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use xtask_release::{
    clients::cdk::CdkEnv,
    domain::{
        config::{Config, Stage},
        workspace::Workspace,
    },
    stage::{Access, RegistryEndpoint, StageContext},
};

use crate::{ports::Ports, stack::Stack};

/// cdk's flags on the local stack: its CloudFormation (moto) cannot delete change sets, so
/// a deploy through one can hang; stacks are deployed directly, with the bootstrap version
/// parameter given explicitly (moto cannot reuse a previous value).
pub const LOCAL_CDK_DEPLOY_ARGS: [&str; 3] =
    ["--method=direct", "--parameters", "BootstrapVersion=/cdk-bootstrap/hnb659fds/version"];

pub use crate::settings::serves;

/// The network a build's `RUN` steps get for `stage`: on the local stack the host's, the
/// only one its daemons have (they run without a bridge) and the one that reaches the
/// package registries; elsewhere the engine's own.
pub fn build_network(stage: &Stage) -> Option<String> {
    serves(stage).then(|| "host".to_string())
}

/// Checks the flags that choose a stage, before anything is started or called.
pub fn check_flags(stage: &Stage, profile: Option<&str>) -> Result<()> {
    if serves(stage) && profile.is_some() {
        bail!("--profile does not apply to the local stage, which uses the local stack's dummy credentials");
    }
    Ok(())
}

/// A stage the local stack serves, opened: the release library's context, and the stack.
pub struct LocalStage<'w> {
    pub ctx: StageContext<'w>,
    pub stack: Stack,
    pub ports: Ports,
}

/// Opens `stage` on the running local stack; fails, saying how to start it, when it is not
/// running or does not serve the stage's account yet.
///
/// A stage whose repositories exist can be pushed to, so it gets its signing keys here
/// (made once, then checked). One without is bootstrapped before anything is pushed, and
/// the bootstrap makes them after its stack has made their aliases (never before).
pub async fn open<'w>(ws: &'w Workspace, stage: &'w Stage) -> Result<LocalStage<'w>> {
    let stack = Stack::new(ws);
    let ports = stack.attach().await?;
    // Connected once: for the build arguments, then as the context's daemon.
    let docker = xtask_release::clients::docker::connect().await.ok();
    let build_args = crate::base_images::substitutes(&ws.config, stage, docker.as_ref()).await?;
    let access = access(&stack, &ports, stage, build_args).await?;
    let mut ctx = StageContext::open(ws, stage, access)?;
    if let Some(docker) = docker {
        ctx = ctx.with_docker(docker);
    }
    let local = LocalStage { ctx, stack, ports };
    if !crate::signing_keys::aliases(&ws.config, stage).is_empty() && repositories_exist(&local).await? {
        crate::signing_keys::ensure_for(&local.ctx, local.stack.dir()).await?;
    }
    Ok(local)
}

/// Are the stage's ECR repositories there?
pub async fn repositories_exist(local: &LocalStage<'_>) -> Result<bool> {
    for image in &local.ctx.ws.config.images {
        if !xtask_release::clients::ecr::repository_exists(&local.ctx.ecr, &image.repository).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The build arguments `stage`'s builds get from the Docker daemon `DOCKER_HOST` names: the
/// stand-ins of the base images it can neither find nor pull ([`crate::base_images`]); all
/// of them when no daemon answers (the command then fails where it needs one, saying so).
pub async fn build_args(config: &Config, stage: &Stage) -> Result<BTreeMap<String, String>> {
    let docker = xtask_release::clients::docker::connect().await.ok();
    crate::base_images::substitutes(config, stage, docker.as_ref()).await
}

/// How `stage` is reached on the stack running at `ports`, its builds given `build_args`.
async fn access(stack: &Stack, ports: &Ports, stage: &Stage, build_args: BTreeMap<String, String>) -> Result<Access> {
    let region = stage.region.as_deref().unwrap_or_default();
    let account = crate::ports::other_account(stage);
    // The stack serves the account's registry once `local up` ran with this stage.
    let registry = ports.registry_of(account)?;
    let accounts: Vec<&str> = ports.accounts.keys().map(String::as_str).collect();
    let aws_config = crate::credentials::write_aws_config(stack.dir(), &accounts)?;
    let vars = [
        ("AWS_ENDPOINT_URL", ports.moto_url()),
        ("AWS_CONFIG_FILE", aws_config.display().to_string()),
        // No credentials of the caller's files or environment reach cdk.
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
    ];
    let removed = ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];
    Ok(Access {
        sdk: ports.sdk_config_in(region, account).await,
        registry: Some(RegistryEndpoint { host: registry.registry_host(), plain_http: true }),
        cdk: CdkEnv {
            profile: Some(crate::credentials::profile_of(account)),
            vars: vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            removed: removed.map(String::from).to_vec(),
            deploy_args: LOCAL_CDK_DEPLOY_ARGS.map(String::from).to_vec(),
            // A diff of templates only: moto cannot delete the change set cdk would make to compare.
            diff_args: vec!["--no-change-set".to_string()],
            // Nobody is asked on the local stack.
            never_ask: true,
        },
        build_network: build_network(stage),
        accepts_dirty_images: true,
        build_args,
    })
}
