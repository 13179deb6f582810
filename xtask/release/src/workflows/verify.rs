//! After `cdk deploy`: proof that each service runs the commit's image. CloudFormation can
//! report success after ECS's deployment circuit breaker rolled a service back, so the
//! deploy reads each service the stack owns: waits (bounded) until its deployment has
//! rolled out, then checks that the running task definition's container uses the image of
//! this commit and that the digest the service runs is the one ECR has for it. Since ECS
//! resolves a tag to a digest when a deployment starts, that digest (the service revision's,
//! or the tasks'), not the tag, is what runs. A failed or rolled-back rollout is a failed
//! deploy, with what ECS said of the stopped tasks.

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
    /// The image digest the service runs, as ECS (or whoever ran it) resolved it; absent
    /// when the rollout's observer cannot say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_digest: Option<String>,
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
/// reference its container must use: `<registry>/<repository>:<tag>` or `@<digest>`) and
/// the digest `digests` has for it (per image name, ECR's), as `rollouts` reports it.
/// Returns the services' states, or the failures.
pub async fn verify(
    ctx: &StageContext<'_>,
    outputs: &BTreeMap<String, String>,
    expected: &BTreeMap<String, String>,
    digests: &[(String, String)],
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
        let (task_definition, url, running_digests) = match rollouts.wait(ctx, &target, timeout, &task).await? {
            Rolled::Completed { task_definition, url, digests } => (task_definition, url, digests),
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
        // ...and the bytes ECS resolved that reference to are the commit's.
        let in_ecr = digests.iter().find(|(name, _)| *name == image.name).map(|(_, d)| d.as_str());
        let running_digest = match proof(in_ecr, &running_digests) {
            Ok(digest) => digest,
            Err(reason) => {
                failures.push(Failure { name: image.name.clone(), reasons: vec![format!("{reason} ({running})")] });
                task.abandon();
                continue;
            }
        };
        let at = url.as_deref().map(|u| format!(", at {u}")).unwrap_or_default();
        let resolved = running_digest.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        task.finish(format!("{service} runs {running}{resolved}{at}"));
        states.push(ServiceState {
            name: image.name.clone(),
            cluster,
            service,
            task_definition,
            image: running,
            running_digest,
            state: State::Running,
            url,
        });
    }
    Ok(if failures.is_empty() { Ok(states) } else { Err(failures) })
}

/// The digest check: every digest the service runs (`running`, as resolved when its
/// deployment started) is the one ECR has for the commit (`in_ecr`). `Ok(Some(digest))` is the
/// proof; `Ok(None)` when the rollout's observer could not say which digest runs (the task
/// definition's reference is then the only proof); `Err` says what runs instead.
pub fn proof(in_ecr: Option<&str>, running: &[String]) -> Result<Option<String>, String> {
    let (Some(want), [first, ..]) = (in_ecr, running) else { return Ok(None) };
    match running.iter().find(|d| *d != want) {
        None => Ok(Some(first.clone())),
        Some(other) => Err(format!("the service runs {other}, not {want}, the digest ECR has for the commit's image")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSHED: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn the_running_digest_must_be_the_one_ecr_has_for_the_commit() {
        assert_eq!(proof(Some(PUSHED), &[PUSHED.to_string()]), Ok(Some(PUSHED.to_string())));
        assert_eq!(proof(Some(PUSHED), &[PUSHED.to_string(), PUSHED.to_string()]), Ok(Some(PUSHED.to_string())));
        // One task of the revision on other bytes is enough to refuse.
        let err = proof(Some(PUSHED), &[PUSHED.to_string(), OTHER.to_string()]).unwrap_err();
        assert!(err.starts_with(&format!("the service runs {OTHER}, not {PUSHED}")), "{err}");
        // Nothing said which digest runs: no digest proof, and no false failure.
        assert_eq!(proof(Some(PUSHED), &[]), Ok(None));
        assert_eq!(proof(None, &[OTHER.to_string()]), Ok(None));
    }
}
