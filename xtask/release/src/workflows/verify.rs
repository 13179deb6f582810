//! After `cdk deploy`: proof that each service runs the commit's image. CloudFormation can
//! report success after ECS's deployment circuit breaker rolled a service back, so the
//! deploy reads each service the stack owns: waits (bounded) until its primary deployment
//! has rolled out, then checks that the running task definition's container uses the
//! image of this commit. A failed or rolled-back rollout is a failed deploy, with what ECS
//! said of the stopped tasks.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    clients::ecs,
    domain::config::Image,
    stage::{Rolled, Rollouts, Service, StageContext},
    support::progress::Progress,
};

/// What a deploy left running, per image.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceState {
    pub name: String,
    pub cluster: String,
    pub service: String,
    pub task_definition: String,
    /// The image the running task definition's container uses.
    pub image: String,
    pub state: State,
    /// Where the service answers, when the rollout's observer knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a deploy left a service doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Rolled out with the commit's image.
    Running,
}

/// Why the rollout of one service failed.
pub struct Failure {
    pub name: String,
    pub reasons: Vec<String>,
}

/// The CfnOutput id the service stack gives `image`'s outputs (`infra/lib/config.ts`'s `imageId`).
pub fn output_id(image: &Image) -> String {
    image
        .name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Waits for each image's service to roll out with `expected` (per image name, the image
/// reference its container must use: `<registry>/<repository>:<tag>` or `@<digest>`), as
/// `rollouts` reports it. Returns the services' states, or the failures.
pub async fn verify(
    ctx: &StageContext<'_>,
    outputs: &BTreeMap<String, String>,
    expected: &BTreeMap<String, String>,
    timeout: Duration,
    rollouts: &impl Rollouts,
) -> Result<Result<Vec<ServiceState>, Vec<Failure>>> {
    let progress = Progress::detect();
    let mut states = vec![];
    let mut failures = vec![];
    let stack = ctx.ws.config.service_stack(ctx.stage);
    for image in &ctx.ws.config.images {
        let id = output_id(image);
        let output = |key: &str| {
            outputs.get(&format!("{id}{key}")).cloned().with_context(|| {
                format!("the service stack has no output {id}{key}; deploy infra/ as it is in this commit")
            })
        };
        let (cluster, service, health) = (output("EcsCluster")?, output("EcsService")?, output("HealthCheckPath")?);
        let want = expected.get(&image.name).cloned().unwrap_or_default();
        let task = progress.task(&image.name);
        task.step(format!("waiting for ECS service {service} to roll out"));
        let target = Service {
            image: &image.name,
            cluster: &cluster,
            service: &service,
            health_path: &health,
            key: format!("{stack}/{}", image.name),
        };
        let (task_definition, url) = match rollouts.wait(ctx, &target, timeout, &task).await? {
            Rolled::Completed { task_definition, url } => (task_definition, url),
            Rolled::Failed(reasons) => {
                task.abandon();
                failures.push(Failure { name: image.name.clone(), reasons });
                continue;
            }
        };
        // The rollout completed: with this commit's image, or the circuit breaker's rollback?
        let containers = ecs::containers(&ctx.ecs, &task_definition).await?;
        let running = containers.iter().find(|c| c.name == image.name).or(containers.first());
        let running = running.map(|c| c.image.clone()).unwrap_or_default();
        if running != want {
            failures.push(Failure {
                name: image.name.clone(),
                reasons: vec![format!("the service runs {running}, not {want}: ECS rolled the deployment back")],
            });
            task.abandon();
            continue;
        }
        let at = url.as_deref().map(|u| format!(", at {u}")).unwrap_or_default();
        task.finish(format!("{service} runs {running}{at}"));
        states.push(ServiceState {
            name: image.name.clone(),
            cluster,
            service,
            task_definition,
            image: running,
            state: State::Running,
            url,
        });
    }
    Ok(if failures.is_empty() { Ok(states) } else { Err(failures) })
}
