//! Where a stage lives: an AWS account, or the local stack on this machine.
//!
//! This file is the one seam between the two. Everything the local stage does
//! differently from a real one is a hook here, so the commands and the library read as
//! the production path, and a reader finds every local-stack workaround in one place:
//!
//! - the AWS API is moto at the stack's endpoint, with dummy credentials (`open`);
//! - images are pushed to the stack's registry over plain http on loopback (`registry`);
//! - cdk gets the endpoint and credentials in its environment (`cdk_env`), deploys without
//!   change sets (moto cannot delete them) and never asks for approval (`cdk_deploy_args`);
//! - `bootstrap` applies the repository settings moto's CloudFormation drops (`after_bootstrap`);
//! - `deploy` replaces the service stack rather than updating it, since moto loses a task
//!   definition's containers on update (`before_deploy`), and runs the whole chain first:
//!   start the stack, bootstrap it, push the work tree (`deploy_runs_whole_chain`);
//! - images of a dirty work tree are accepted (`accepts_dirty_images`);
//! - builds run their steps on the host's network (`build_network`);
//! - a stage with an account of its own acts in it through a role assumed there, and
//!   pushes to that account's registry (`open`, `registry`, `profile`).

use anyhow::{Result, bail};
use aws_config::SdkConfig;
use xshell::Cmd;

use crate::{
    aws,
    cdk::Cdk,
    config::Stage,
    ecr::RegistryAuth,
    ecs,
    local::{self, Ports, Stack},
    stage::StageContext,
    workspace::Workspace,
};

/// cdk's flags on the local stack: its CloudFormation (moto) cannot delete change sets, so
/// a deploy through one can hang; stacks are deployed directly, with the bootstrap version
/// parameter given explicitly (moto cannot reuse a previous value).
pub(crate) const LOCAL_CDK_DEPLOY_ARGS: [&str; 3] =
    ["--method=direct", "--parameters", "BootstrapVersion=/cdk-bootstrap/hnb659fds/version"];

pub(crate) enum Target {
    /// A real AWS account, reached with `profile` (or the default credential chain).
    Aws { profile: Option<String> },
    /// The local stack, running at `ports`, whose state lives in `stack`; cdk reads its
    /// profile from `aws_config`. `account` is the emulated account the stage acts in,
    /// when it is not moto's own.
    Local { stack: Stack, ports: Ports, aws_config: std::path::PathBuf, account: Option<String> },
}

impl Target {
    /// The network a build's `RUN` steps get: on the local stack the host's, the only one
    /// its daemons have (they run without a bridge) and the one that reaches the package
    /// registries; elsewhere the engine's own.
    pub fn build_network(stage: &Stage) -> Option<&'static str> {
        stage.is_local().then_some("host")
    }

    /// Checks the flags that choose a stage, before anything is started or called.
    pub fn check_flags(stage: &Stage, profile: Option<&str>) -> Result<()> {
        if stage.is_local() && profile.is_some() {
            bail!("--profile does not apply to the local stage, which uses the local stack's dummy credentials");
        }
        Ok(())
    }

    /// Starts what the stage needs on this machine: the local stack (`local up`) for the
    /// local stage, nothing for an AWS one.
    pub async fn start(ws: &Workspace, stage: &Stage, debian_mirror: &str) -> Result<()> {
        if stage.is_local() {
            Stack::new(ws).up(ws, debian_mirror).await?;
        }
        Ok(())
    }

    /// The stage's SDK configuration and target; fails, saying how to fix it, when the
    /// stage cannot be reached (no credentials, no region, local stack not running).
    pub async fn open(ws: &Workspace, stage: &Stage, profile: Option<&str>) -> Result<(SdkConfig, Target)> {
        Target::check_flags(stage, profile)?;
        if stage.is_local() {
            let stack = Stack::new(ws);
            let ports = stack.attach().await?;
            let region = stage.region.as_deref().unwrap_or_default();
            let account = local::other_account(stage).map(str::to_string);
            // The stack serves the account's registry once `local up` ran with this stage.
            ports.registry_of(account.as_deref())?;
            let accounts: Vec<&str> = ports.accounts.keys().map(String::as_str).collect();
            let aws_config = local::write_aws_config(stack.dir(), &accounts)?;
            let sdk = ports.sdk_config_in(region, account.as_deref()).await;
            return Ok((sdk, Target::Local { stack, ports, aws_config, account }));
        }
        let (sdk, profile) = aws::load(stage, profile).await?;
        aws::ensure_credentials(&sdk, profile.as_deref()).await?;
        Ok((sdk, Target::Aws { profile }))
    }

    /// The registry images are pushed to: ECR's own endpoint, or the local stack's registry.
    pub fn registry(&self, mut auth: RegistryAuth) -> RegistryAuth {
        if let Target::Local { ports, account, .. } = self {
            // `open` made sure the account has a registry.
            if let Ok(registry) = ports.registry_of(account.as_deref()) {
                auth.host = registry.registry_host();
            }
            auth.plain_http = true;
        }
        auth
    }

    /// The profile cdk gets with `--profile`: the one the SDK uses, or on the local stack
    /// the one whose `credential_process` hands out its dummy credentials.
    pub fn profile(&self) -> Option<String> {
        match self {
            Target::Aws { profile } => profile.clone(),
            Target::Local { account, .. } => Some(local::profile_of(account.as_deref())),
        }
    }

    /// cdk's environment beyond the region: on the local stack, its endpoint and the config
    /// file with its profile; no credentials of the caller's environment or files.
    pub fn cdk_env<'a>(&self, cmd: Cmd<'a>) -> Cmd<'a> {
        let Target::Local { ports, aws_config, .. } = self else { return cmd };
        let mut cmd = cmd
            .env("AWS_ENDPOINT_URL", ports.moto_url())
            .env("AWS_CONFIG_FILE", aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        for key in ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            cmd = cmd.env_remove(key);
        }
        cmd
    }

    /// Flags every `cdk deploy` of the stage gets; `approve` skips cdk's approval prompt.
    pub fn cdk_deploy_args(&self, approve: bool) -> Vec<String> {
        let mut args = vec![];
        let local = matches!(self, Target::Local { .. });
        if local {
            args.extend(LOCAL_CDK_DEPLOY_ARGS.map(String::from));
        }
        // Nobody is asked on the local stack.
        if approve || local {
            args.extend(["--require-approval".to_string(), "never".to_string()]);
        }
        args
    }

    /// Flags of `cdk diff`: on the local stack, a diff of templates only (moto cannot
    /// delete the change set cdk would make to compare).
    pub fn cdk_diff_args(&self) -> Vec<String> {
        match self {
            Target::Local { .. } => vec!["--no-change-set".to_string()],
            Target::Aws { .. } => vec![],
        }
    }

    /// After the registry stack is deployed: on the local stack, the repository settings
    /// moto's CloudFormation drops (scan on push, lifecycle policy), from its template.
    pub async fn after_bootstrap(&self, ecr: &aws_sdk_ecr::Client, cdk: &Cdk<'_>, registry_stack: &str) -> Result<()> {
        if let Target::Local { .. } = self {
            let template = cdk.synth(registry_stack, None).await?;
            local::repository_settings::apply(ecr, &template).await?;
        }
        Ok(())
    }

    /// Before `cdk deploy` of the service stack: on the local stack, its removal, since
    /// moto's CloudFormation updates a task definition by dropping its containers, and drops
    /// the ECS service even on an update that changes nothing. When the stack already runs
    /// exactly `images` (as the last deploy recorded, and its ECS services still show) and
    /// no cdk arguments are added, there is nothing to deploy: returns the stack's outputs,
    /// and cdk is not run. Its delete can report the VPC's dependencies and still remove the
    /// stack, or leave it: destroy until cdk reports the stack gone.
    pub async fn before_deploy(
        &self,
        ctx: &StageContext<'_>,
        cdk: &Cdk<'_>,
        service_stack: &str,
        images: &std::collections::BTreeMap<String, String>,
        cdk_args: &[String],
    ) -> Result<Option<std::collections::BTreeMap<String, String>>> {
        let Target::Local { stack, .. } = self else { return Ok(None) };
        // The record only saves work: one that cannot be read means "replace".
        if let Ok(Some(deployed)) = stack.deployed(service_stack)
            && deployed.images == *images
            && cdk_args.is_empty()
            && runs_as_recorded(ctx, &deployed).await
        {
            eprintln!("local stack: {service_stack} already runs these images; nothing to deploy");
            return Ok(Some(deployed.outputs));
        }
        stack.forget_deployed(service_stack)?;
        // cdk's own report of a delete that went through after all (`❌ destroy failed`)
        // is no failure: it is shown only when the stack cannot be removed.
        eprintln!(
            "local stack: replacing {service_stack} (the emulated CloudFormation cannot update a task definition)"
        );
        let mut last = String::new();
        for _ in 0..3 {
            let (status, output) = cdk.destroy_quietly(service_stack).await?;
            if status.success() {
                return Ok(None);
            }
            last = output;
        }
        bail!(
            "cannot remove {service_stack} from the local stack to replace it ({}); restart the stack (`cargo xtask local down && cargo xtask local up`)",
            crate::cdk::last_lines(&last, 3)
        );
    }

    /// After a deploy that rolled out: on the local stack, a record of what the service
    /// stack runs, so that deploying it again changes nothing.
    pub fn after_deploy(
        &self,
        service_stack: &str,
        images: &std::collections::BTreeMap<String, String>,
        outputs: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let Target::Local { stack, .. } = self else { return Ok(()) };
        stack.record_deployed(service_stack, &local::Deployed { images: images.clone(), outputs: outputs.clone() })
    }

    /// After `cdk deploy`, on the local stack: runs the deployed task definition's container
    /// named `container` on this machine (the emulated ECS reports no rollout and runs no
    /// task) and says how it went: `Ok(url)` healthy, `Err(reason)` failed. `None` on a real
    /// stage, where ECS says.
    pub async fn run_service(
        &self,
        ctx: &StageContext<'_>,
        key: &str,
        deployment: &ecs::Deployment,
        container: &str,
        health_path: &str,
        timeout: std::time::Duration,
    ) -> Result<Option<std::result::Result<String, String>>> {
        let Target::Local { stack, .. } = self else { return Ok(None) };
        let containers = ecs::containers(&ctx.ecs, &deployment.task_definition).await?;
        let Some(definition) = containers.iter().find(|c| c.name == container).or(containers.first()) else {
            bail!("the task definition {} has no container", deployment.task_definition);
        };
        let (docker, registry) = (ctx.docker().await?, ctx.registry().await?);
        let outcome = local::service::run(docker, stack.dir(), key, definition, registry, health_path, timeout).await?;
        Ok(Some(match outcome {
            local::service::Outcome::Healthy(running) => Ok(running.url),
            local::service::Outcome::Failed(reason) => Err(reason),
        }))
    }

    /// Does `deploy` run the chain before cdk (start the stack, bootstrap it if needed,
    /// push the work tree)? On the local stack it does: one command shows the whole path.
    pub fn deploy_runs_whole_chain(&self) -> bool {
        matches!(self, Target::Local { .. })
    }

    /// Has this stage been bootstrapped with the current settings? Asked only where
    /// `deploy_runs_whole_chain`.
    pub async fn is_bootstrapped(&self, ws: &Workspace, stage: &Stage, ecr: &aws_sdk_ecr::Client) -> Result<bool> {
        match self {
            Target::Local { stack, .. } => stack.is_bootstrapped(ws, stage, ecr).await,
            Target::Aws { .. } => Ok(true),
        }
    }

    /// Bootstraps of one local stack take turns (two deploys from two checkouts would run
    /// two `cdk bootstrap` into one emulated account at once); a real account needs none.
    pub async fn bootstrap_lock(&self) -> Result<Option<crate::lock::Lock>> {
        match self {
            Target::Local { stack, .. } => Ok(Some(
                crate::lock::Lock::acquire(&stack.dir().join("bootstrap.lock"), "another bootstrap of the local stack")
                    .await?,
            )),
            Target::Aws { .. } => Ok(None),
        }
    }

    pub fn mark_bootstrapped(&self, ws: &Workspace, stage: &Stage) -> Result<()> {
        match self {
            Target::Local { stack, .. } => stack.mark_bootstrapped(ws, stage),
            Target::Aws { .. } => Ok(()),
        }
    }

    /// May images of a dirty work tree (`<sha>-dirty-<hash>`) be pushed to and deployed on
    /// `stage`? On the local stack only.
    pub fn accepts_dirty_images(stage: &Stage) -> bool {
        stage.is_local()
    }
}

/// Do the ECS services of a recorded deploy still run the recorded images?
async fn runs_as_recorded(ctx: &StageContext<'_>, deployed: &local::Deployed) -> bool {
    for image in &ctx.ws.config.images {
        let id = crate::verify::output_id(image);
        let (Some(cluster), Some(service), Some(want)) = (
            deployed.outputs.get(&format!("{id}EcsCluster")),
            deployed.outputs.get(&format!("{id}EcsService")),
            deployed.images.get(&image.name),
        ) else {
            return false;
        };
        let Ok(deployment) = ecs::primary(&ctx.ecs, cluster, service).await else { return false };
        let Ok(containers) = ecs::containers(&ctx.ecs, &deployment.task_definition).await else { return false };
        if !containers.iter().any(|c| c.name == image.name && c.image == *want) {
            return false;
        }
    }
    true
}
