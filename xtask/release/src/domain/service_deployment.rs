//! A service deployment, judged: what ECS says of one (`DescribeServiceDeployments`) read as
//! a deploy's outcome. Under way, with the line that says where it is (a new line each time it
//! reaches a lifecycle stage); done; or failed, with ECS's reasons. And whether a rollback can
//! still return the service to the revision the deployment replaces (a blue/green or canary
//! deployment whose previous revision still runs).
//!
//! The statuses and lifecycle stages are those of the ECS API reference
//! (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html>).

use crate::clients::ecs::ServiceDeployment;

/// What a described service deployment says of the deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Under way: where it is (status and lifecycle stage).
    InProgress(String),
    /// The target revision runs.
    Succeeded,
    /// Rolled back or stopped (or being): ECS's reasons.
    Failed(Vec<String>),
}

/// Judges `deployment`. `ROLLBACK_*`, `STOP_REQUESTED` and `STOPPED` are failures, even while the
/// rollback is still under way: the commit will not run. A status the API may add later is
/// waited on, as under way.
pub fn judge(deployment: &ServiceDeployment) -> Judgement {
    match deployment.status.as_str() {
        "SUCCESSFUL" => Judgement::Succeeded,
        "ROLLBACK_REQUESTED"
        | "ROLLBACK_IN_PROGRESS"
        | "ROLLBACK_SUCCESSFUL"
        | "ROLLBACK_FAILED"
        | "STOP_REQUESTED"
        | "STOPPED" => Judgement::Failed(reasons(deployment)),
        _ => Judgement::InProgress(stage_line(deployment)),
    }
}

/// Judges `deployment` after a rollback was asked of it (`StopServiceDeployment`, `ROLLBACK`):
/// `ROLLBACK_SUCCESSFUL` is done; `ROLLBACK_FAILED`, `STOPPED` or a deployment that completed
/// all the same failed; anything else is under way.
pub fn judge_rollback(deployment: &ServiceDeployment) -> Judgement {
    match deployment.status.as_str() {
        "ROLLBACK_SUCCESSFUL" => Judgement::Succeeded,
        "ROLLBACK_FAILED" | "STOPPED" | "SUCCESSFUL" => Judgement::Failed(reasons(deployment)),
        _ => Judgement::InProgress(stage_line(deployment)),
    }
}

/// `service deployment IN_PROGRESS, lifecycle stage BAKE_TIME`: where a deployment is; it
/// changes as the deployment reaches each stage, so each is printed once.
pub fn stage_line(deployment: &ServiceDeployment) -> String {
    let status = if deployment.status.is_empty() { "PENDING" } else { deployment.status.as_str() };
    match &deployment.lifecycle_stage {
        Some(stage) => format!("service deployment {status}, lifecycle stage {stage}"),
        None => format!("service deployment {status}"),
    }
}

/// `2 of 3 tasks running; circuit breaker 1 of 10 failed tasks; alarms MONITORING`: what
/// changes within a stage, shown live.
pub fn detail_line(deployment: &ServiceDeployment) -> String {
    let mut parts = vec![format!("{} of {} tasks running", deployment.running, deployment.requested)];
    if let Some((status, failed, threshold)) = &deployment.circuit_breaker {
        parts.push(format!("circuit breaker {status}: {failed} of {threshold} failed tasks"));
    }
    if let Some((status, _)) = &deployment.alarms {
        parts.push(format!("alarms {status}"));
    }
    parts.join("; ")
}

/// ECS's reasons for a failed deployment: its status and reason, the rollback's reason, the
/// circuit breaker's count once tasks failed, the alarms that fired.
pub fn reasons(deployment: &ServiceDeployment) -> Vec<String> {
    let mut reasons = vec![match &deployment.status_reason {
        Some(why) => format!("ECS: service deployment {}: {why}", deployment.status),
        None => format!("ECS: service deployment {}", deployment.status),
    }];
    if let Some(why) = &deployment.rollback_reason
        && Some(why) != deployment.status_reason.as_ref()
    {
        reasons.push(format!("rolled back: {why}"));
    }
    if let Some((status, failed, threshold)) = &deployment.circuit_breaker
        && (*failed > 0 || status == "TRIGGERED")
    {
        reasons.push(format!("circuit breaker {status}: {failed} of {threshold} failed tasks"));
    }
    if let Some((_, fired)) = &deployment.alarms
        && !fired.is_empty()
    {
        reasons.push(format!("alarms fired: {}", fired.join(", ")));
    }
    reasons
}

/// The lifecycle stages in which the revision a deployment replaces still runs beside the new
/// one (blue/green, canary, linear): a rollback then returns traffic to it rather than
/// deploying it again.
const PREVIOUS_REVISION_RUNS: [&str; 8] = [
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
];

/// Is `deployment` under way with the revision it replaces still running (its bake, or a
/// traffic shift before it)? Then `StopServiceDeployment` with `ROLLBACK` is the rollback.
pub fn can_roll_back_in_place(deployment: &ServiceDeployment) -> bool {
    deployment.status == "IN_PROGRESS"
        && deployment.lifecycle_stage.as_deref().is_some_and(|stage| PREVIOUS_REVISION_RUNS.contains(&stage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(status: &str, stage: Option<&str>) -> ServiceDeployment {
        ServiceDeployment {
            arn: "arn:aws:ecs:eu-west-1:123456789012:service-deployment/c/s/abc".into(),
            status: status.into(),
            lifecycle_stage: stage.map(str::to_owned),
            running: 2,
            requested: 3,
            ..ServiceDeployment::default()
        }
    }

    #[test]
    fn a_deployment_under_way_says_its_status_and_stage() {
        assert_eq!(
            judge(&deployment("IN_PROGRESS", Some("BAKE_TIME"))),
            Judgement::InProgress("service deployment IN_PROGRESS, lifecycle stage BAKE_TIME".into())
        );
        assert_eq!(judge(&deployment("PENDING", None)), Judgement::InProgress("service deployment PENDING".into()));
        // A status the API adds later is waited on (the timeout bounds it), not taken for success.
        assert_eq!(
            judge(&deployment("PAUSED", Some("SCALE_UP"))),
            Judgement::InProgress("service deployment PAUSED, lifecycle stage SCALE_UP".into())
        );
        assert_eq!(judge(&deployment("SUCCESSFUL", None)), Judgement::Succeeded);
    }

    #[test]
    fn every_rollback_and_stop_status_is_a_failure_with_ecs_reasons() {
        for status in [
            "ROLLBACK_REQUESTED",
            "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_SUCCESSFUL",
            "ROLLBACK_FAILED",
            "STOP_REQUESTED",
            "STOPPED",
        ] {
            assert!(matches!(judge(&deployment(status, None)), Judgement::Failed(_)), "{status}");
        }
        let failed = ServiceDeployment {
            status_reason: Some(
                "Service deployment rolled back because the circuit breaker threshold was exceeded.".into(),
            ),
            rollback_reason: Some("circuit breaker".into()),
            circuit_breaker: Some(("TRIGGERED".into(), 3, 3)),
            alarms: Some(("MONITORING".into(), vec!["hello-5xx".into()])),
            ..deployment("ROLLBACK_SUCCESSFUL", Some("CLEAN_UP"))
        };
        assert_eq!(
            judge(&failed),
            Judgement::Failed(vec![
                "ECS: service deployment ROLLBACK_SUCCESSFUL: Service deployment rolled back because the circuit breaker threshold was exceeded.".into(),
                "rolled back: circuit breaker".into(),
                "circuit breaker TRIGGERED: 3 of 3 failed tasks".into(),
                "alarms fired: hello-5xx".into(),
            ])
        );
        // A circuit breaker that counted nothing and alarms that fired none add no noise.
        let quiet = ServiceDeployment {
            circuit_breaker: Some(("MONITORING".into(), 0, 10)),
            alarms: Some(("MONITORING".into(), vec![])),
            ..deployment("STOPPED", None)
        };
        assert_eq!(judge(&quiet), Judgement::Failed(vec!["ECS: service deployment STOPPED".into()]));
    }

    #[test]
    fn the_detail_line_counts_tasks_and_failures() {
        let d = ServiceDeployment {
            circuit_breaker: Some(("MONITORING".into(), 1, 10)),
            alarms: Some(("MONITORING".into(), vec![])),
            ..deployment("IN_PROGRESS", Some("SCALE_UP"))
        };
        assert_eq!(
            detail_line(&d),
            "2 of 3 tasks running; circuit breaker MONITORING: 1 of 10 failed tasks; alarms MONITORING"
        );
        assert_eq!(detail_line(&deployment("IN_PROGRESS", None)), "2 of 3 tasks running");
    }

    #[test]
    fn a_rollback_asked_for_ends_only_when_ecs_rolled_back() {
        assert_eq!(judge_rollback(&deployment("ROLLBACK_SUCCESSFUL", None)), Judgement::Succeeded);
        assert_eq!(
            judge_rollback(&deployment("ROLLBACK_IN_PROGRESS", Some("BAKE_TIME"))),
            Judgement::InProgress("service deployment ROLLBACK_IN_PROGRESS, lifecycle stage BAKE_TIME".into())
        );
        assert!(matches!(judge_rollback(&deployment("ROLLBACK_REQUESTED", None)), Judgement::InProgress(_)));
        for status in ["ROLLBACK_FAILED", "STOPPED", "SUCCESSFUL"] {
            assert!(matches!(judge_rollback(&deployment(status, None)), Judgement::Failed(_)), "{status}");
        }
    }

    #[test]
    fn only_a_deployment_whose_previous_revision_still_runs_rolls_back_in_place() {
        assert!(can_roll_back_in_place(&deployment("IN_PROGRESS", Some("BAKE_TIME"))));
        assert!(can_roll_back_in_place(&deployment("IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT"))));
        // Cleaning up: the previous revision is scaling down; a rolling deployment has no stage.
        assert!(!can_roll_back_in_place(&deployment("IN_PROGRESS", Some("CLEAN_UP"))));
        assert!(!can_roll_back_in_place(&deployment("IN_PROGRESS", None)));
        assert!(!can_roll_back_in_place(&deployment("SUCCESSFUL", Some("BAKE_TIME"))));
        assert!(!can_roll_back_in_place(&deployment("ROLLBACK_IN_PROGRESS", Some("BAKE_TIME"))));
    }
}
