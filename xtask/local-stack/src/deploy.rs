//! A deploy on the local stack: the release library's steps (check, `cdk deploy`, rollout
//! proof, deployed tags), with what the emulator cannot do made up around them:
//!
//! - moto's CloudFormation updates a task definition by dropping its containers, and drops
//!   the ECS service even on an update that changes nothing: the service stack is replaced
//!   (destroyed, then deployed), unless it already runs exactly these images (as the last
//!   deploy recorded and its ECS services still show), when nothing is deployed at all;
//! - moto's ECS reports no rollout and runs nothing: each deployed task definition's
//!   container runs on this machine's Docker daemon, and its health check is the rollout.

use std::time::Duration;

use anyhow::{Result, bail};
use xtask_release::{
    clients::{cdk::Cdk, ecs},
    stage::{Rolled, Rollouts, Service, StageContext},
    support::progress::Task,
    workflows::{
        deploy::{self, DeployOptions, Report},
        verify,
    },
};

use crate::{
    service,
    stack::{Deployed, Stack},
    stage::LocalStage,
};

pub async fn deploy(local: &LocalStage<'_>, options: &DeployOptions<'_>) -> Result<Report> {
    let ctx = &local.ctx;
    let prepared = deploy::prepare(ctx, options).await?;
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let service_stack = &prepared.stack;
    // The record only saves work: one that cannot be read means "replace".
    let unchanged = match local.stack.deployed(service_stack) {
        Ok(Some(deployed)) if deployed.images == prepared.expected && options.cdk_args.is_empty() => {
            runs_as_recorded(ctx, &deployed).await.then_some(deployed.outputs)
        }
        _ => None,
    };
    let outputs = match unchanged {
        Some(outputs) => {
            eprintln!("local stack: {service_stack} already runs these images; nothing to deploy");
            outputs
        }
        None => {
            remove(&local.stack, &cdk, service_stack).await?;
            deploy::cdk_deploy(&cdk, &prepared, options).await?
        }
    };
    let states = deploy::rollout(ctx, &prepared, &outputs, options, &LocalRollouts { stack: &local.stack }).await?;
    // What the service stack runs now, so that deploying it again changes nothing.
    let record = Deployed { images: prepared.expected.clone(), outputs };
    local.stack.record_deployed(service_stack, &record)?;
    deploy::finish(ctx, prepared, states).await
}

/// Removes the service stack before it is deployed again. Its delete can report the VPC's
/// dependencies and still remove the stack, or leave it: destroy until cdk reports the
/// stack gone. cdk's own report of a delete that went through after all (`❌ destroy
/// failed`) is no failure: it is shown only when the stack cannot be removed.
async fn remove(stack: &Stack, cdk: &Cdk<'_>, service_stack: &str) -> Result<()> {
    stack.forget_deployed(service_stack)?;
    eprintln!("local stack: replacing {service_stack} (the emulated CloudFormation cannot update a task definition)");
    let mut last = String::new();
    for _ in 0..3 {
        let (status, output) = cdk.destroy_quietly(service_stack).await?;
        if status.success() {
            return Ok(());
        }
        last = output;
    }
    bail!(
        "cannot remove {service_stack} from the local stack to replace it ({}); restart the stack (`cargo xtask local down && cargo xtask local up`)",
        xtask_release::clients::cdk::last_lines(&last, 3)
    );
}

/// Do the ECS services of a recorded deploy still run the recorded images?
async fn runs_as_recorded(ctx: &StageContext<'_>, deployed: &Deployed) -> bool {
    for image in &ctx.ws.config.images {
        let id = verify::output_id(image);
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

/// The rollout on the local stack: the primary deployment's task definition, its
/// container run on this machine until its health check answers (`Completed`, with the
/// URL and the digest the daemon pulled) or it exits or never gets healthy (`Failed`, with
/// why and the end of its log).
struct LocalRollouts<'a> {
    stack: &'a Stack,
}

impl Rollouts for LocalRollouts<'_> {
    async fn wait<'a>(
        &'a self,
        ctx: &'a StageContext<'_>,
        service: &'a Service<'a>,
        timeout: Duration,
        task: &'a Task,
    ) -> Result<Rolled> {
        let deployment = ecs::primary(&ctx.ecs, service.cluster, service.service).await?;
        let containers = ecs::containers(&ctx.ecs, &deployment.task_definition).await?;
        let Some(definition) = containers.iter().find(|c| c.name == service.image).or(containers.first()) else {
            bail!("the task definition {} has no container", deployment.task_definition);
        };
        let (docker, registry) = (ctx.docker().await?, ctx.registry().await?);
        let bake = bake(ctx, service.image)?;
        if !bake.is_zero() {
            task.step(format!(
                "the new version runs beside the previous one for {}s once healthy (a minute of the stage's rollout is a second here)",
                bake.as_secs()
            ));
        }
        let outcome = service::run(
            docker,
            self.stack.dir(),
            &service.key,
            definition,
            registry,
            service.health_path,
            service::Times { timeout, bake },
        )
        .await?;
        Ok(match outcome {
            service::Outcome::Healthy(running) => Rolled::Completed {
                task_definition: deployment.task_definition,
                url: Some(running.url),
                digests: running.digest.into_iter().collect(),
            },
            service::Outcome::Failed(reason) => Rolled::Failed(vec![reason]),
        })
    }
}

/// How long the new version of `image` runs beside the previous one here: the stage's
/// traffic-shifting rollout (blue-green, canary, linear), a minute of it a second, for a
/// load-balanced image; a worker has no traffic to shift and rolls, as in AWS.
fn bake(ctx: &StageContext<'_>, image: &str) -> Result<Duration> {
    let load_balanced = ctx.ws.config.images.iter().any(|i| i.name == image && i.load_balanced);
    let minutes = if load_balanced { ctx.stage.rollout()?.shift_minutes() } else { 0 };
    Ok(Duration::from_secs(minutes.into()))
}
