//! Amazon ECS: what a deploy left running. A service's primary deployment (its rollout
//! state, as the deployment circuit breaker sets it), the images of a task definition's
//! containers, and why the service's last tasks stopped.

use anyhow::{Context, Result};
use aws_sdk_ecs::{
    Client,
    types::{DeploymentRolloutState, DesiredStatus},
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
    let listed = client
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .sdk_context(|| format!("cannot list the stopped tasks of {service}"))?;
    let arns: Vec<String> = listed.task_arns().iter().take(3).cloned().collect();
    if arns.is_empty() {
        return Ok(vec![]);
    }
    let described = client
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .sdk_context(|| format!("cannot describe the stopped tasks of {service}"))?;
    Ok(described
        .tasks()
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
