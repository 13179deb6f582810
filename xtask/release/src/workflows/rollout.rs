//! A service's rollout as ECS tells it, followed to its end: the service deployment ECS
//! started (`ListServiceDeployments`, then `DescribeServiceDeployments` until it has ended),
//! each lifecycle stage said once as it is reached and the bake waited through; a rolled
//! back or stopped deployment fails with ECS's reasons and the stopped tasks'. What runs in
//! the end is the target revision's task definition and the image digests ECS resolved for
//! it (`DescribeServiceRevisions`). Where ECS lists no service deployment (a service whose
//! deployments predate them, or an API that is not there), the primary deployment's rollout
//! state (`DescribeServices`) and the running tasks' digests (`DescribeTasks`) tell it.

use std::time::Duration;

use anyhow::Result;
use aws_sdk_ecs::Client;

use crate::{
    clients::ecs,
    domain::service_deployment::{self, Judgement},
    stage::{Rolled, Rollouts, Service, StageContext},
    support::progress::Task,
};

/// ECS's own account of a rollout: the service deployment ECS started, followed through its
/// lifecycle stages and bake until it has ended; for a service ECS keeps no service
/// deployments of, the primary deployment's rollout state.
pub struct EcsRollouts;

/// How often ECS is asked how a rollout goes.
const POLL: Duration = Duration::from_secs(5);

impl Rollouts for EcsRollouts {
    async fn wait<'a>(
        &'a self,
        ctx: &'a StageContext<'_>,
        service: &'a Service<'a>,
        timeout: Duration,
        task: &'a Task,
    ) -> Result<Rolled> {
        let target = Target { cluster: service.cluster, service: service.service, container: service.image };
        follow(&ctx.ecs, &target, timeout, POLL, task).await
    }
}

/// The service followed, and the container whose image the deploy proves.
pub struct Target<'a> {
    pub cluster: &'a str,
    pub service: &'a str,
    pub container: &'a str,
}

/// Follows `target`'s newest service deployment until it has ended, at most `timeout`,
/// asking ECS every `poll`.
pub async fn follow(
    client: &Client,
    target: &Target<'_>,
    timeout: Duration,
    poll: Duration,
    task: &Task,
) -> Result<Rolled> {
    match ecs::newest_service_deployment(client, target.cluster, target.service).await {
        Ok(Some(arn)) => follow_service_deployment(client, target, &arn, timeout, poll, task).await,
        Ok(None) => {
            task.step("ECS lists no service deployment of it; following its primary deployment");
            follow_primary(client, target, timeout, poll, task).await
        }
        Err(err) => {
            task.step(format!(
                "ECS's service deployments are not available ({err:#}); following its primary deployment"
            ));
            follow_primary(client, target, timeout, poll, task).await
        }
    }
}

/// Follows the service deployment `arn` of `target` until it has ended.
pub async fn follow_service_deployment(
    client: &Client,
    target: &Target<'_>,
    arn: &str,
    timeout: Duration,
    poll: Duration,
    task: &Task,
) -> Result<Rolled> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut said = String::new();
    loop {
        let deployment = ecs::service_deployment(client, arn).await?;
        match service_deployment::judge(&deployment) {
            Judgement::Succeeded => {
                let revision = match &deployment.target_revision {
                    Some(revision) => ecs::revision(client, revision).await?,
                    None => ecs::Revision::default(),
                };
                let task_definition = if revision.task_definition.is_empty() {
                    ecs::primary(client, target.cluster, target.service).await?.task_definition
                } else {
                    revision.task_definition
                };
                return Ok(Rolled::Completed {
                    task_definition,
                    url: None,
                    digests: of_container(&revision.digests, target),
                });
            }
            Judgement::Failed(mut reasons) => {
                reasons.extend(ecs::stopped_reasons(client, target.cluster, target.service).await?);
                return Ok(Rolled::Failed(reasons));
            }
            Judgement::InProgress(line) => {
                if line != said {
                    task.step(&line);
                    said = line;
                }
                let detail = service_deployment::detail_line(&deployment);
                if tokio::time::Instant::now() > deadline {
                    let mut reasons =
                        vec![format!("the rollout did not end within {}s ({said}; {detail})", timeout.as_secs())];
                    reasons.extend(ecs::stopped_reasons(client, target.cluster, target.service).await?);
                    return Ok(Rolled::Failed(reasons));
                }
                task.detail(format!("{said}: {detail}"));
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// The digests `target`'s container runs among a revision's `(container, digest)` pairs: the
/// container named for the image, else the revision's only one.
fn of_container(digests: &[(String, String)], target: &Target<'_>) -> Vec<String> {
    let named: Vec<String> = digests.iter().filter(|(c, _)| c == target.container).map(|(_, d)| d.clone()).collect();
    match (named.is_empty(), digests) {
        (true, [(_, only)]) => vec![only.clone()],
        _ => named,
    }
}

/// The primary deployment's rollout state (as the circuit breaker sets it), polled until it
/// has ended; then the digests the running tasks of its task definition run.
async fn follow_primary(
    client: &Client,
    target: &Target<'_>,
    timeout: Duration,
    poll: Duration,
    task: &Task,
) -> Result<Rolled> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let deployment = ecs::primary(client, target.cluster, target.service).await?;
        match &deployment.rollout {
            ecs::Rollout::Completed => {
                let digests = ecs::running_digests(
                    client,
                    target.cluster,
                    target.service,
                    &deployment.task_definition,
                    target.container,
                )
                .await?;
                return Ok(Rolled::Completed { task_definition: deployment.task_definition, url: None, digests });
            }
            ecs::Rollout::Failed(reason) => {
                let mut reasons = vec![format!("ECS: {reason}")];
                reasons.extend(ecs::stopped_reasons(client, target.cluster, target.service).await?);
                return Ok(Rolled::Failed(reasons));
            }
            ecs::Rollout::InProgress if tokio::time::Instant::now() > deadline => {
                let mut reasons = vec![format!(
                    "the rollout did not complete within {}s ({} of {} tasks running)",
                    timeout.as_secs(),
                    deployment.running,
                    deployment.desired
                )];
                reasons.extend(ecs::stopped_reasons(client, target.cluster, target.service).await?);
                return Ok(Rolled::Failed(reasons));
            }
            ecs::Rollout::InProgress => {
                task.detail(format!("{} of {} tasks running", deployment.running, deployment.desired));
                tokio::time::sleep(poll).await;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! ECS answers shaped as the ECS API reference documents them:
    //! ListServiceDeployments <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListServiceDeployments.html>,
    //! DescribeServiceDeployments <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServiceDeployments.html>
    //! (its `ServiceDeployment`: <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html>),
    //! DescribeServiceRevisions <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServiceRevisions.html>,
    //! DescribeServices <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeServices.html>,
    //! ListTasks <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html> and
    //! DescribeTasks <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html>
    //! (its `Container.imageDigest`: <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Container.html>).

    use super::*;
    use aws_sdk_ecs::{
        Client as Ecs,
        operation::{
            describe_service_deployments::DescribeServiceDeploymentsOutput,
            describe_service_revisions::DescribeServiceRevisionsOutput, describe_services::DescribeServicesOutput,
            describe_tasks::DescribeTasksOutput, list_service_deployments::ListServiceDeploymentsError,
            list_service_deployments::ListServiceDeploymentsOutput, list_tasks::ListTasksOutput,
        },
        primitives::DateTime,
        types::{
            Container, ContainerImage, Deployment, DeploymentRolloutState, DesiredStatus, Rollback, Service,
            ServiceDeployment as Sd, ServiceDeploymentAlarms, ServiceDeploymentBrief, ServiceDeploymentCircuitBreaker,
            ServiceDeploymentLifecycleStage, ServiceDeploymentRollbackMonitorsStatus as Monitor,
            ServiceDeploymentStatus, ServiceRevision, ServiceRevisionSummary, Task as EcsTask,
            error::UnsupportedFeatureException,
        },
    };
    use aws_smithy_mocks::{Rule, mock};

    use crate::{clients::mocked, support::progress::Progress};

    pub const CLUSTER: &str = "hello-dev-service-Cluster";
    pub const SERVICE: &str = "hello-dev-service-AppService";
    pub const DEPLOYMENT: &str = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/hello-dev-service-Cluster/hello-dev-service-AppService/r9i43YFjvgF";
    const REVISION: &str = "arn:aws:ecs:eu-west-1:123456789012:service-revision/hello-dev-service-Cluster/hello-dev-service-AppService/1485800978477494678";
    const TASK_DEFINITION: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/hellodevserviceApp:7";
    pub const DIGEST: &str = "sha256:5d41402abc4b2a76b9719d911017c592ae7ed5b1c3a1f0c6e1a2b3c4d5e6f708";

    fn target() -> Target<'static> {
        Target { cluster: CLUSTER, service: SERVICE, container: "app" }
    }

    /// ListServiceDeployments: one `ServiceDeploymentBrief`, newest.
    pub fn listed() -> Rule {
        mock!(Ecs::list_service_deployments)
            .match_requests(|r| r.service() == Some(SERVICE) && r.cluster() == Some(CLUSTER))
            .then_output(|| {
                ListServiceDeploymentsOutput::builder()
                    .service_deployments(
                        ServiceDeploymentBrief::builder()
                            .service_deployment_arn(DEPLOYMENT)
                            .service_arn("arn:aws:ecs:eu-west-1:123456789012:service/hello-dev-service-Cluster/hello-dev-service-AppService")
                            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/hello-dev-service-Cluster")
                            .created_at(DateTime::from_secs(1_765_100_000))
                            .started_at(DateTime::from_secs(1_765_100_002))
                            .target_service_revision_arn(REVISION)
                            .status(ServiceDeploymentStatus::InProgress)
                            .build(),
                    )
                    .build()
            })
    }

    /// DescribeServiceDeployments of [`DEPLOYMENT`], with `status` and `lifecycleStage`,
    /// a circuit breaker and alarms that are monitoring.
    pub fn described(status: ServiceDeploymentStatus, stage: Option<ServiceDeploymentLifecycleStage>) -> Rule {
        described_as(move || {
            Sd::builder()
                .status(status.clone())
                .set_lifecycle_stage(stage.clone())
                .deployment_circuit_breaker(
                    ServiceDeploymentCircuitBreaker::builder()
                        .status(Monitor::Monitoring)
                        .failure_count(0)
                        .threshold(10)
                        .build(),
                )
                .alarms(ServiceDeploymentAlarms::builder().status(Monitor::Monitoring).alarm_names("hello-5xx").build())
        })
    }

    fn described_as(
        deployment: impl Fn() -> aws_sdk_ecs::types::builders::ServiceDeploymentBuilder + Send + Sync + 'static,
    ) -> Rule {
        mock!(Ecs::describe_service_deployments)
            .match_requests(|r| r.service_deployment_arns() == [DEPLOYMENT])
            .then_output(move || {
                let summary = ServiceRevisionSummary::builder()
                    .arn(REVISION)
                    .requested_task_count(2)
                    .running_task_count(1)
                    .pending_task_count(1)
                    .build();
                DescribeServiceDeploymentsOutput::builder()
                    .service_deployments(
                        deployment()
                            .service_deployment_arn(DEPLOYMENT)
                            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/hello-dev-service-Cluster")
                            .target_service_revision(summary)
                            .build(),
                    )
                    .build()
            })
    }

    /// DescribeServiceRevisions of the target revision: the digest ECS resolved for `app`.
    fn revision() -> Rule {
        mock!(Ecs::describe_service_revisions).match_requests(|r| r.service_revision_arns() == [REVISION]).then_output(|| {
            DescribeServiceRevisionsOutput::builder()
                .service_revisions(
                    ServiceRevision::builder()
                        .service_revision_arn(REVISION)
                        .task_definition(TASK_DEFINITION)
                        .container_images(
                            ContainerImage::builder()
                                .container_name("app")
                                .image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello/app:0123456789abcdef0123456789abcdef01234567")
                                .image_digest(DIGEST)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    /// ListTasks of the service's tasks with `status`.
    pub fn tasks(status: DesiredStatus, arns: &'static [&'static str]) -> Rule {
        mock!(Ecs::list_tasks)
            .match_requests(move |r| r.desired_status() == Some(&status) && r.service_name() == Some(SERVICE))
            .then_output(move || {
                ListTasksOutput::builder().set_task_arns(Some(arns.iter().map(|a| a.to_string()).collect())).build()
            })
    }

    const TASK: &str =
        "arn:aws:ecs:eu-west-1:123456789012:task/hello-dev-service-Cluster/0b69d5c0d0e04e8b9c1b1d3c0e5f3a21";

    fn run(rules: &[&Rule], timeout: Duration) -> Rolled {
        let client = mocked::ecs(rules);
        let task = Progress::detect().task("app");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(follow(&client, &target(), timeout, Duration::ZERO, &task)).unwrap()
    }

    #[test]
    fn a_deployment_is_followed_through_its_bake_to_the_digest_ecs_resolved() {
        use ServiceDeploymentLifecycleStage as Stage;
        use ServiceDeploymentStatus as Status;
        let rules = [
            listed(),
            described(Status::Pending, None),
            described(Status::InProgress, Some(Stage::ScaleUp)),
            described(Status::InProgress, Some(Stage::BakeTime)),
            described(Status::InProgress, Some(Stage::BakeTime)),
            described(Status::Successful, None),
            revision(),
        ];
        let Rolled::Completed { task_definition, url, digests } =
            run(&rules.iter().collect::<Vec<_>>(), Duration::from_secs(60))
        else {
            panic!("the rollout failed")
        };
        assert_eq!((task_definition.as_str(), url, digests), (TASK_DEFINITION, None, vec![DIGEST.to_string()]));
        // Every answer was asked for: the bake was waited through, not skipped.
        assert!(rules.iter().all(|r| r.num_calls() == 1));
    }

    #[test]
    fn a_rolled_back_deployment_fails_with_ecs_reasons_and_the_stopped_tasks() {
        let rolled_back = described_as(|| {
            Sd::builder()
                .status(ServiceDeploymentStatus::RollbackSuccessful)
                .status_reason("Service deployment rolled back because the circuit breaker threshold was exceeded.")
                .rollback(
                    Rollback::builder().reason("Circuit breaker triggered").service_revision_arn(REVISION).build(),
                )
                .deployment_circuit_breaker(
                    ServiceDeploymentCircuitBreaker::builder()
                        .status(Monitor::Triggered)
                        .failure_count(3)
                        .threshold(3)
                        .build(),
                )
        });
        let stopped = mock!(Ecs::describe_tasks).match_requests(|r| r.tasks() == [TASK]).then_output(|| {
            DescribeTasksOutput::builder()
                .tasks(
                    EcsTask::builder()
                        .task_arn(TASK)
                        .stopped_reason("Essential container in task exited")
                        .containers(Container::builder().name("app").exit_code(1).build())
                        .build(),
                )
                .build()
        });
        let rules = [listed(), rolled_back, tasks(DesiredStatus::Stopped, &[TASK]), stopped];
        let Rolled::Failed(reasons) = run(&rules.iter().collect::<Vec<_>>(), Duration::from_secs(60)) else {
            panic!("a rolled back deployment completed")
        };
        assert_eq!(
            reasons,
            [
                "ECS: service deployment ROLLBACK_SUCCESSFUL: Service deployment rolled back because the circuit breaker threshold was exceeded.",
                "rolled back: Circuit breaker triggered",
                "circuit breaker TRIGGERED: 3 of 3 failed tasks",
                "Essential container in task exited; app exited with code 1",
            ]
        );
    }

    #[test]
    fn a_deployment_still_baking_at_the_timeout_fails_saying_where_it_was() {
        let rules = [
            listed(),
            described(ServiceDeploymentStatus::InProgress, Some(ServiceDeploymentLifecycleStage::BakeTime)),
            tasks(DesiredStatus::Stopped, &[]),
        ];
        let Rolled::Failed(reasons) = run(&rules.iter().collect::<Vec<_>>(), Duration::ZERO) else {
            panic!("it completed")
        };
        assert_eq!(
            reasons,
            [
                "the rollout did not end within 0s (service deployment IN_PROGRESS, lifecycle stage BAKE_TIME; 1 of 2 tasks running; circuit breaker MONITORING: 0 of 10 failed tasks; alarms MONITORING)"
            ]
        );
    }

    /// DescribeServices: the primary deployment with `state`.
    fn primary(state: DeploymentRolloutState) -> Rule {
        mock!(Ecs::describe_services).match_requests(|r| r.services() == [SERVICE]).then_output(move || {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_name(SERVICE)
                        .deployments(
                            Deployment::builder()
                                .status("PRIMARY")
                                .task_definition(TASK_DEFINITION)
                                .rollout_state(state.clone())
                                .desired_count(1)
                                .running_count(1)
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    /// DescribeTasks of the running task: its container's `imageDigest`, and one task of an
    /// older task definition (draining) that must not count.
    fn running_task() -> Rule {
        mock!(Ecs::describe_tasks).then_output(|| {
            let with = |definition: &str, digest: &str| {
                EcsTask::builder()
                    .task_arn(TASK)
                    .task_definition_arn(definition)
                    .last_status("RUNNING")
                    .containers(Container::builder().name("app").image_digest(digest).last_status("RUNNING").build())
                    .build()
            };
            DescribeTasksOutput::builder()
                .tasks(with(TASK_DEFINITION, DIGEST))
                .tasks(with("arn:aws:ecs:eu-west-1:123456789012:task-definition/hellodevserviceApp:6", "sha256:00"))
                .build()
        })
    }

    #[test]
    fn without_service_deployments_the_primary_deployment_and_the_tasks_digests_tell_it() {
        // The API is not there (a Region without it), then a service ECS lists none of.
        let unsupported = mock!(Ecs::list_service_deployments).then_error(|| {
            ListServiceDeploymentsError::UnsupportedFeatureException(
                UnsupportedFeatureException::builder()
                    .message("The specified task isn't supported in this Region.")
                    .build(),
            )
        });
        let none = mock!(Ecs::list_service_deployments).then_output(|| ListServiceDeploymentsOutput::builder().build());
        for first in [unsupported, none] {
            let rules = [
                first,
                primary(DeploymentRolloutState::InProgress),
                primary(DeploymentRolloutState::Completed),
                tasks(DesiredStatus::Running, &[TASK, TASK]),
                running_task(),
            ];
            let Rolled::Completed { task_definition, digests, .. } =
                run(&rules.iter().collect::<Vec<_>>(), Duration::from_secs(60))
            else {
                panic!("the rollout failed")
            };
            assert_eq!((task_definition.as_str(), digests), (TASK_DEFINITION, vec![DIGEST.to_string()]));
            assert!(rules.iter().all(|r| r.num_calls() == 1));
        }
    }
}
