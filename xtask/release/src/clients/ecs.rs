//! Amazon ECS: what a deploy left running. A service's deployments (ECS's service
//! deployments, and the primary deployment's rollout state where ECS has none), the images of
//! a task definition's containers and the digests ECS resolved them to, why the service's
//! last tasks stopped, and a rollback of a deployment under way.

use anyhow::{Context, Result, bail};
use aws_sdk_ecs::{
    Client,
    types::{DeploymentRolloutState, DesiredStatus, StopServiceDeploymentStopType},
};

use crate::clients::aws::SdkResultExt;

/// The rollout of a service's primary deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    InProgress,
    Completed,
    /// ECS gave up on it (the circuit breaker), with its reason.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub task_definition: String,
    pub rollout: Rollout,
    pub running: i32,
    pub desired: i32,
}

/// A container of a task definition, as a local run needs it.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub environment: Vec<(String, String)>,
}

/// The service's primary deployment (the one ECS moves the service to).
pub async fn primary(client: &Client, cluster: &str, service: &str) -> Result<Deployment> {
    let out = client
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .sdk_context(|| format!("cannot describe ECS service {service}"))?;
    let described = out.services().first().with_context(|| format!("ECS has no service {service} in {cluster}"))?;
    let primary = described
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .with_context(|| format!("ECS service {service} has no primary deployment"))?;
    let rollout = match primary.rollout_state() {
        Some(DeploymentRolloutState::Completed) => Rollout::Completed,
        Some(DeploymentRolloutState::Failed) => {
            Rollout::Failed(primary.rollout_state_reason().unwrap_or("the deployment failed").to_string())
        }
        _ => Rollout::InProgress,
    };
    Ok(Deployment {
        task_definition: primary.task_definition().unwrap_or_default().to_string(),
        rollout,
        running: primary.running_count(),
        desired: primary.desired_count(),
    })
}

/// The containers of a task definition.
pub async fn containers(client: &Client, task_definition: &str) -> Result<Vec<Container>> {
    let out = client
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .sdk_context(|| format!("cannot describe ECS task definition {task_definition}"))?;
    let definition = out.task_definition().with_context(|| format!("ECS did not describe {task_definition}"))?;
    Ok(definition
        .container_definitions()
        .iter()
        .map(|c| Container {
            name: c.name().unwrap_or_default().to_string(),
            image: c.image().unwrap_or_default().to_string(),
            environment: c
                .environment()
                .iter()
                .filter_map(|kv| Some((kv.name()?.to_string(), kv.value().unwrap_or_default().to_string())))
                .collect(),
        })
        .collect())
}

/// Why the service's most recently stopped tasks stopped (at most 3): the task's reason and
/// each container's exit code and reason.
pub async fn stopped_reasons(client: &Client, cluster: &str, service: &str) -> Result<Vec<String>> {
    let stopped = tasks(client, cluster, service, DesiredStatus::Stopped, 3).await?;
    Ok(stopped
        .iter()
        .map(|task| {
            let mut reason = task.stopped_reason().unwrap_or("stopped").to_string();
            for container in task.containers() {
                if let Some(code) = container.exit_code() {
                    reason += &format!("; {} exited with code {code}", container.name().unwrap_or("a container"));
                }
                if let Some(why) = container.reason() {
                    reason += &format!(" ({why})");
                }
            }
            reason
        })
        .collect())
}

/// A service deployment as ECS describes it (`DescribeServiceDeployments`), in plain values:
/// what a deploy follows in place of the primary deployment's rollout state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDeployment {
    pub arn: String,
    /// `PENDING`, `IN_PROGRESS`, `SUCCESSFUL`, `STOP_REQUESTED`, `STOPPED`, `ROLLBACK_REQUESTED`,
    /// `ROLLBACK_IN_PROGRESS`, `ROLLBACK_SUCCESSFUL`, `ROLLBACK_FAILED`.
    pub status: String,
    pub status_reason: Option<String>,
    /// `SCALE_UP`, `BAKE_TIME`, `CLEAN_UP`, ... (none for a rolling deployment between stages).
    pub lifecycle_stage: Option<String>,
    /// The service revision being deployed, and its task counts.
    pub target_revision: Option<String>,
    pub running: i32,
    pub requested: i32,
    /// Why ECS rolled it back, when it did.
    pub rollback_reason: Option<String>,
    /// The circuit breaker: its status (`MONITORING`, `TRIGGERED`, ...), failed tasks, threshold.
    pub circuit_breaker: Option<(String, i32, i32)>,
    /// The alarms: their status and the ones that fired.
    pub alarms: Option<(String, Vec<String>)>,
}

/// The newest service deployment of `service` (`ListServiceDeployments`), or `None` when ECS
/// lists none (a service whose deployments predate them).
pub async fn newest_service_deployment(client: &Client, cluster: &str, service: &str) -> Result<Option<String>> {
    let out = client
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .send()
        .await
        .sdk_context(|| format!("cannot list the service deployments of {service}"))?;
    let newest = out.service_deployments().iter().max_by_key(|d| d.created_at().map(|t| (t.secs(), t.subsec_nanos())));
    Ok(newest.and_then(|d| d.service_deployment_arn()).map(str::to_owned))
}

/// Describes one service deployment (`DescribeServiceDeployments`).
pub async fn service_deployment(client: &Client, arn: &str) -> Result<ServiceDeployment> {
    let out = client
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .sdk_context(|| format!("cannot describe the service deployment {arn}"))?;
    let Some(d) = out.service_deployments().first() else {
        let why = out.failures().first().map(|f| f.reason().unwrap_or("no reason").to_string()).unwrap_or_default();
        bail!("ECS did not describe the service deployment {arn} ({why})");
    };
    let target = d.target_service_revision();
    Ok(ServiceDeployment {
        arn: d.service_deployment_arn().unwrap_or(arn).to_string(),
        status: d.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        status_reason: d.status_reason().map(str::to_owned),
        lifecycle_stage: d.lifecycle_stage().map(|s| s.as_str().to_string()),
        target_revision: target.and_then(|t| t.arn()).map(str::to_owned),
        running: target.map_or(0, |t| t.running_task_count()),
        requested: target.map_or(0, |t| t.requested_task_count()),
        rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_owned),
        circuit_breaker: d.deployment_circuit_breaker().map(|c| {
            (c.status().map(|s| s.as_str().to_string()).unwrap_or_default(), c.failure_count(), c.threshold())
        }),
        alarms: d.alarms().map(|a| {
            (a.status().map(|s| s.as_str().to_string()).unwrap_or_default(), a.triggered_alarm_names().to_vec())
        }),
    })
}

/// Asks ECS to roll a service deployment back to the revision it replaces (`StopServiceDeployment`
/// with stop type `ROLLBACK`).
pub async fn roll_back_service_deployment(client: &Client, arn: &str) -> Result<()> {
    client
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .sdk_context(|| format!("cannot ask ECS to roll back the service deployment {arn}"))?;
    Ok(())
}

/// A service revision: its task definition and the image digest each of its containers runs,
/// as ECS resolved it when the deployment started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    pub task_definition: String,
    /// (container name, image digest).
    pub digests: Vec<(String, String)>,
}

/// Describes a service revision (`DescribeServiceRevisions`: `taskDefinition`, `containerImages`).
pub async fn revision(client: &Client, arn: &str) -> Result<Revision> {
    let out = client
        .describe_service_revisions()
        .service_revision_arns(arn)
        .send()
        .await
        .sdk_context(|| format!("cannot describe the service revision {arn}"))?;
    let described = out.service_revisions().first().with_context(|| format!("ECS did not describe {arn}"))?;
    Ok(Revision {
        task_definition: described.task_definition().unwrap_or_default().to_string(),
        digests: described
            .container_images()
            .iter()
            .filter_map(|c| Some((c.container_name()?.to_string(), c.image_digest()?.to_string())))
            .collect(),
    })
}

/// The image digests the running tasks of `task_definition` in `service` run in their
/// container `container` (`DescribeTasks`, `containers[].imageDigest`), distinct.
pub async fn running_digests(
    client: &Client,
    cluster: &str,
    service: &str,
    task_definition: &str,
    container: &str,
) -> Result<Vec<String>> {
    let running = tasks(client, cluster, service, DesiredStatus::Running, 100).await?;
    let mut digests = vec![];
    for task in running.iter().filter(|t| t.task_definition_arn() == Some(task_definition)) {
        let named = task.containers().iter().find(|c| c.name() == Some(container)).or(task.containers().first());
        if let Some(digest) = named.and_then(|c| c.image_digest())
            && !digests.iter().any(|d| d == digest)
        {
            digests.push(digest.to_string());
        }
    }
    Ok(digests)
}

/// At most `at_most` of `service`'s tasks with the desired status `status` (`ListTasks`, then
/// `DescribeTasks`, which takes up to 100).
async fn tasks(
    client: &Client,
    cluster: &str,
    service: &str,
    status: DesiredStatus,
    at_most: usize,
) -> Result<Vec<aws_sdk_ecs::types::Task>> {
    let which = status.as_str().to_lowercase();
    let listed = client
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(status)
        .send()
        .await
        .sdk_context(|| format!("cannot list the {which} tasks of {service}"))?;
    let arns: Vec<String> = listed.task_arns().iter().take(at_most).cloned().collect();
    if arns.is_empty() {
        return Ok(vec![]);
    }
    let described = client
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .sdk_context(|| format!("cannot describe the {which} tasks of {service}"))?;
    Ok(described.tasks().to_vec())
}
