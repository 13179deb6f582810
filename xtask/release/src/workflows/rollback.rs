//! `rollback`: back to the commit a stage ran before the one it runs, read from the
//! `deployed-<stage>.` tags (or the commit `--to` names), deployed as `deploy --rev` deploys
//! it. During a blue/green or canary deployment whose previous revision still runs (its
//! bake, or a traffic shift), ECS itself is asked to roll the deployment back
//! (`StopServiceDeployment` with `ROLLBACK`) instead of a new deployment being started.

use std::time::Duration;

use anyhow::{Result, bail};
use aws_sdk_ecs::Client;
use serde::Serialize;

use crate::{
    clients::{cdk::Cdk, ecs, git::Git},
    domain::{
        inventory::timestamp_rfc3339,
        service_deployment::{self, Judgement},
    },
    stage::StageContext,
    support::{exit::Verdict, progress::Progress, text},
    workflows::{
        deploy::{self, DeployOptions, Report},
        deployed_tags,
        rollout::EcsRollouts,
        verify,
    },
};

/// What a rollback deploys, and why that commit: `rollback --json`'s `choice`.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub stage: String,
    /// The commit the stage runs now, if its deployed tags say.
    pub runs: Option<String>,
    /// The commit to deploy.
    pub commit: String,
    /// Its subject, when this clone has the commit.
    pub subject: Option<String>,
    /// When it last ran on the stage (RFC 3339), if it did.
    pub last_ran: Option<String>,
    /// It is the commit the stage ran before the one it runs (not one `--to` named elsewhere).
    pub previous: bool,
}

/// Picks the commit: `to` (a resolved commit) or, without it, the one the stage ran before
/// the one it runs. Nothing to roll back to is a [`Verdict`].
pub async fn choose(ctx: &StageContext<'_>, git: &Git, to: Option<&str>) -> Result<Choice> {
    let stage = &ctx.stage.name;
    let history = deployed_tags::history(ctx).await?;
    // Of the commits an image carries, one this clone knows is newer than one it does not
    // (another clone's commit that reused the image), else the descendant.
    let is_newer = |a: &str, b: &str| match (git.has_commit(a), git.has_commit(b)) {
        (true, false) => true,
        (true, true) => a != b && git.is_ancestor(b, a).unwrap_or(false),
        (false, _) => false,
    };
    let runs = deployed_tags::current(&history, is_newer);
    let before = runs.as_deref().and_then(|runs| deployed_tags::previous(&history, runs, is_newer));
    let commit = match (to, &runs, &before) {
        (Some(to), _, _) => to.to_string(),
        (None, None, _) => bail!(Verdict(format!(
            "nothing to roll back: stage `{stage}` has no deployed images (no `deployed-{stage}.` tag in its repositories); deploy a commit with `cargo xtask deploy --stage {stage}`"
        ))),
        (None, Some(runs), None) => bail!(Verdict(format!(
            "nothing to roll back to: stage `{stage}` ran no commit before {} within its rollback window; name one with `cargo xtask rollback --stage {stage} --to REV`",
            text::prefix(runs, 12)
        ))),
        (None, Some(_), Some((previous, _))) => previous.clone(),
    };
    if runs.as_deref() == Some(commit.as_str()) {
        bail!(Verdict(format!("stage `{stage}` already runs {commit}: nothing to roll back")));
    }
    Ok(Choice {
        stage: stage.clone(),
        previous: before.as_ref().is_some_and(|(previous, _)| *previous == commit),
        last_ran: deployed_tags::last_ran(&history, &commit).map(|at| timestamp_rfc3339(&at)),
        subject: git.subject(&commit),
        runs,
        commit,
    })
}

/// What `rollback` says before it deploys: what runs, what will, and when that last ran.
pub fn describe(choice: &Choice) -> Vec<String> {
    let named = |commit: &str, subject: &Option<String>| match subject {
        Some(subject) => format!("{commit} ({subject})"),
        None => format!("{commit} (not in this clone's history)"),
    };
    let mut lines = vec![];
    if let Some(runs) = &choice.runs {
        lines.push(format!("stage {} runs {}", choice.stage, text::prefix(runs, 12)));
    }
    let when = match &choice.last_ran {
        Some(at) => format!("it last ran there at {at}"),
        None => "it never ran there within the rollback window".to_string(),
    };
    lines.push(format!("rolling back to {}; {when}", named(&choice.commit, &choice.subject)));
    lines
}

/// The rollback of a stage in AWS: when it goes back to the previous commit and one of the
/// service stack's services is in a deployment whose previous revision still runs, ECS rolls
/// those deployments back; otherwise the commit is deployed as `deploy --rev` deploys it.
pub async fn rollback(ctx: &StageContext<'_>, choice: &Choice, options: &DeployOptions<'_>) -> Result<Report> {
    let cdk = Cdk::new(ctx.ws, ctx.stage, &ctx.region, &ctx.access.cdk)?;
    let stack = ctx.ws.config.service_stack(ctx.stage);
    // The services as the last deploy from this workspace recorded the stack's outputs.
    let services = match cdk.outputs(&stack) {
        Ok(outputs) => services_of(ctx, &outputs),
        Err(_) => {
            eprintln!(
                "no record here of {stack}'s services (no deploy from this workspace): deploying {}",
                choice.commit
            );
            vec![]
        }
    };
    let baking = if choice.previous { baking(&ctx.ecs, &services).await } else { vec![] };
    let prepared = deploy::prepare(ctx, options).await?;
    if !baking.is_empty() {
        let progress = Progress::detect();
        let mut failures = vec![];
        for (service, arn) in &baking {
            let task = progress.task(service);
            task.step(format!("asking ECS to roll back the service deployment {arn}"));
            if let Err(reasons) = roll_back_in_place(&ctx.ecs, arn, options.wait_timeout, POLL, &task).await? {
                task.abandon();
                failures.push(format!("{service}: {}", reasons.join("; ")));
            } else {
                task.finish(format!("ECS rolled {service} back"));
            }
        }
        if !failures.is_empty() {
            bail!(Verdict(format!("rollback of {stack} to {} failed: {}", choice.commit, failures.join(" / "))));
        }
        eprintln!("rolled {stack} back to {}: ECS returned each service to the revision it ran", choice.commit);
        return Ok(Report { stage: ctx.stage.name.clone(), commit: choice.commit.clone(), stack, images: vec![] });
    }
    let outputs = deploy::cdk_deploy(&cdk, &prepared, options).await?;
    let states = deploy::rollout(ctx, &prepared, &outputs, options, &EcsRollouts).await?;
    deploy::finish(ctx, prepared, states).await
}

/// How often ECS is asked how a rollback goes.
const POLL: Duration = Duration::from_secs(5);

/// The (cluster, service) of each image in the service stack's outputs.
fn services_of(ctx: &StageContext<'_>, outputs: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    ctx.ws
        .config
        .images
        .iter()
        .filter_map(|image| {
            let id = verify::output_id(image);
            Some((outputs.get(&format!("{id}EcsCluster"))?.clone(), outputs.get(&format!("{id}EcsService"))?.clone()))
        })
        .collect()
}

/// The services among `services` (cluster, service) whose newest service deployment is under
/// way with the revision it replaces still running: (service, deployment ARN). A service
/// whose deployments ECS cannot list is not baking.
pub async fn baking(client: &Client, services: &[(String, String)]) -> Vec<(String, String)> {
    let mut baking = vec![];
    for (cluster, service) in services {
        let Ok(Some(arn)) = ecs::newest_service_deployment(client, cluster, service).await else { continue };
        let Ok(deployment) = ecs::service_deployment(client, &arn).await else { continue };
        if service_deployment::can_roll_back_in_place(&deployment) {
            baking.push((service.clone(), arn));
        }
    }
    baking
}

/// Asks ECS to roll the service deployment `arn` back and follows it, at most `timeout`,
/// until ECS says it rolled back (`Ok`) or could not (`Err` with its reasons).
pub async fn roll_back_in_place(
    client: &Client,
    arn: &str,
    timeout: Duration,
    poll: Duration,
    task: &crate::support::progress::Task,
) -> Result<Result<(), Vec<String>>> {
    ecs::roll_back_service_deployment(client, arn).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut said = String::new();
    loop {
        let deployment = ecs::service_deployment(client, arn).await?;
        match service_deployment::judge_rollback(&deployment) {
            Judgement::Succeeded => return Ok(Ok(())),
            Judgement::Failed(reasons) => return Ok(Err(reasons)),
            Judgement::InProgress(line) => {
                if line != said {
                    task.step(&line);
                    said = line;
                }
                if tokio::time::Instant::now() > deadline {
                    return Ok(Err(vec![format!("the rollback did not end within {}s ({said})", timeout.as_secs())]));
                }
                task.detail(format!("{said}: {}", service_deployment::detail_line(&deployment)));
                tokio::time::sleep(poll).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! StopServiceDeployment as the ECS API reference documents it
    //! (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopServiceDeployment.html>:
    //! request `serviceDeploymentArn`, `stopType`; response `serviceDeploymentArn`); the other
    //! answers are `rollout`'s, shaped from their pages.

    use super::*;
    use aws_sdk_ecs::{
        Client as Ecs,
        operation::stop_service_deployment::StopServiceDeploymentOutput,
        types::{
            ServiceDeploymentLifecycleStage as Stage, ServiceDeploymentStatus as Status, StopServiceDeploymentStopType,
        },
    };
    use aws_smithy_mocks::{Rule, mock};

    use crate::{
        clients::mocked,
        support::progress::Progress,
        workflows::rollout::tests::{CLUSTER, DEPLOYMENT, SERVICE, described, listed},
    };

    fn stop() -> Rule {
        mock!(Ecs::stop_service_deployment)
            .match_requests(|r| {
                r.service_deployment_arn() == Some(DEPLOYMENT)
                    && r.stop_type() == Some(&StopServiceDeploymentStopType::Rollback)
            })
            .then_output(|| StopServiceDeploymentOutput::builder().service_deployment_arn(DEPLOYMENT).build())
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
    }

    #[test]
    fn a_deployment_in_its_bake_is_rolled_back_by_ecs() {
        let rules = [
            // Is it baking?
            listed(),
            described(Status::InProgress, Some(Stage::BakeTime)),
            // Roll it back, and follow the rollback to its end.
            stop(),
            described(Status::RollbackRequested, None),
            described(Status::RollbackInProgress, Some(Stage::ProductionTrafficShift)),
            described(Status::RollbackSuccessful, None),
        ];
        let client = mocked::ecs(&rules.iter().collect::<Vec<_>>());
        let services = [(CLUSTER.to_string(), SERVICE.to_string())];
        let baking = block_on(baking(&client, &services));
        assert_eq!(baking, [(SERVICE.to_string(), DEPLOYMENT.to_string())]);
        let task = Progress::detect().task("app");
        let outcome = block_on(roll_back_in_place(&client, DEPLOYMENT, Duration::from_secs(60), Duration::ZERO, &task));
        assert_eq!(outcome.unwrap(), Ok(()));
        assert!(rules.iter().all(|r| r.num_calls() == 1));
    }

    #[test]
    fn a_rollback_ecs_could_not_do_fails_with_its_reasons() {
        let rules = [stop(), described(Status::RollbackFailed, None)];
        let client = mocked::ecs(&rules.iter().collect::<Vec<_>>());
        let task = Progress::detect().task("app");
        let outcome = block_on(roll_back_in_place(&client, DEPLOYMENT, Duration::from_secs(60), Duration::ZERO, &task));
        assert_eq!(outcome.unwrap(), Err(vec!["ECS: service deployment ROLLBACK_FAILED".to_string()]));
    }

    #[test]
    fn a_finished_or_rolling_deployment_is_not_rolled_back_in_place() {
        // Done, and a rolling deployment (no lifecycle stage): a new deployment is the rollback.
        for (status, stage) in [(Status::Successful, None), (Status::InProgress, None)] {
            let rules = [listed(), described(status, stage)];
            let client = mocked::ecs(&rules.iter().collect::<Vec<_>>());
            assert!(block_on(baking(&client, &[(CLUSTER.to_string(), SERVICE.to_string())])).is_empty());
        }
    }

    #[test]
    fn the_choice_says_what_runs_what_will_and_when_it_last_ran() {
        let choice = Choice {
            stage: "dev".into(),
            runs: Some("b".repeat(40)),
            commit: "a".repeat(40),
            subject: Some("first".into()),
            last_ran: Some("2026-12-07T09:00:01Z".into()),
            previous: true,
        };
        assert_eq!(
            describe(&choice),
            [
                "stage dev runs bbbbbbbbbbbb".to_string(),
                format!("rolling back to {} (first); it last ran there at 2026-12-07T09:00:01Z", "a".repeat(40)),
            ]
        );
        let elsewhere = Choice { subject: None, last_ran: None, ..choice };
        assert_eq!(
            describe(&elsewhere)[1],
            format!(
                "rolling back to {} (not in this clone's history); it never ran there within the rollback window",
                "a".repeat(40)
            )
        );
    }
}
