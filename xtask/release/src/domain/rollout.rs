//! How ECS rolls a stage's services out to a new revision: the `strategy` settings of a
//! stage, checked against what ECS and CloudFormation accept and resolved with their
//! defaults, as the service stack renders them (`DeploymentConfiguration` of
//! `AWS::ECS::Service`:
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-deploymentconfiguration.html>).
//!
//! Blue/green, canary and linear shift a load balancer's traffic between two target groups,
//! so they apply to the load-balanced services; a service without a load balancer (a
//! worker) has no traffic to shift and always rolls. Rollback alarms apply to every
//! service, whatever the strategy.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// ECS's built-in deployment strategies (`strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Replace the tasks a few at a time; the circuit breaker rolls a failed one back.
    #[default]
    Rolling,
    /// Start the new revision beside the old, then shift all traffic at once.
    BlueGreen,
    /// Shift `canary-percent` of the traffic, wait `canary-bake-minutes`, then the rest.
    Canary,
    /// Shift `linear-percent` of the traffic every `linear-step-minutes`.
    Linear,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Rolling => "rolling",
            Strategy::BlueGreen => "blue-green",
            Strategy::Canary => "canary",
            Strategy::Linear => "linear",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage's strategy settings as written (each `None` where the stage sets none).
#[derive(Debug, Clone, Default)]
pub struct Written<'a> {
    pub strategy: Strategy,
    pub bake_minutes: Option<u32>,
    pub canary_percent: Option<f64>,
    pub canary_bake_minutes: Option<u32>,
    pub linear_percent: Option<f64>,
    pub linear_step_minutes: Option<u32>,
    pub rollback_alarms: &'a [String],
}

/// A stage's rollout, resolved: every value the strategy uses is set, no other is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    pub strategy: Strategy,
    /// How long the old and new revisions both run once all traffic has shifted
    /// (`BakeTimeInMinutes`), during which an alarm still rolls back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_bake_minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_step_minutes: Option<u32>,
    /// CloudWatch alarms whose ALARM state fails the deployment and rolls it back.
    pub rollback_alarms: Vec<String>,
}

/// The bake time of a blue/green, canary or linear stage that sets none: ECS requires one
/// for blue/green (`bakeTimeInMinutes`, "You must provide this parameter when you use the
/// BLUE_GREEN deployment strategy":
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html>).
pub const DEFAULT_BAKE_MINUTES: u32 = 10;
/// ECS's own defaults (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CanaryConfiguration.html>,
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LinearConfiguration.html>).
pub const DEFAULT_CANARY_PERCENT: f64 = 5.0;
pub const DEFAULT_CANARY_BAKE_MINUTES: u32 = 10;
pub const DEFAULT_LINEAR_PERCENT: f64 = 10.0;
pub const DEFAULT_LINEAR_STEP_MINUTES: u32 = 6;

/// Every bake time ECS accepts: 0 to 1440 minutes (24 hours).
const MAX_MINUTES: u32 = 1440;
/// CloudFormation refuses a canary or linear deployment whose computed time exceeds 33
/// hours (its operations time out after 36):
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-canaryconfiguration.html>.
const MAX_CLOUDFORMATION_MINUTES: u32 = 33 * 60;
/// CloudWatch's longest alarm name.
const MAX_ALARM_NAME: usize = 255;

/// Checks a stage's strategy settings and fills in the defaults; an error names the key
/// (`canary-percent: …`) and says what to write instead.
pub fn resolve(written: &Written) -> Result<Rollout> {
    let strategy = written.strategy;
    let only = |key: &str, with: Strategy| -> Result<()> {
        bail!(
            "{key}: applies to strategy = \"{with}\" only (this stage's is \"{strategy}\"); remove it or set the strategy"
        )
    };
    if written.canary_percent.is_some() && strategy != Strategy::Canary {
        only("canary-percent", Strategy::Canary)?;
    }
    if written.canary_bake_minutes.is_some() && strategy != Strategy::Canary {
        only("canary-bake-minutes", Strategy::Canary)?;
    }
    if written.linear_percent.is_some() && strategy != Strategy::Linear {
        only("linear-percent", Strategy::Linear)?;
    }
    if written.linear_step_minutes.is_some() && strategy != Strategy::Linear {
        only("linear-step-minutes", Strategy::Linear)?;
    }
    if written.bake_minutes.is_some() && strategy == Strategy::Rolling {
        bail!(
            "bake-minutes: a rolling stage has no bake time (it applies to blue-green, canary and linear); remove it or set the strategy"
        );
    }
    for (key, minutes) in [
        ("bake-minutes", written.bake_minutes),
        ("canary-bake-minutes", written.canary_bake_minutes),
        ("linear-step-minutes", written.linear_step_minutes),
    ] {
        if let Some(minutes) = minutes
            && minutes > MAX_MINUTES
        {
            bail!("{key}: {minutes} is out of ECS's range; give 0 to {MAX_MINUTES} minutes (24 hours)");
        }
    }
    if let Some(percent) = written.canary_percent {
        check_percent("canary-percent", percent, 0.1)?;
    }
    if let Some(percent) = written.linear_percent {
        check_percent("linear-percent", percent, 3.0)?;
    }
    for (i, name) in written.rollback_alarms.iter().enumerate() {
        if name.trim().is_empty() || name.len() > MAX_ALARM_NAME || name.contains(char::is_control) {
            bail!(
                "rollback-alarms[{i}]: `{name}` is not a CloudWatch alarm name (1 to {MAX_ALARM_NAME} characters, no control characters)"
            );
        }
        if written.rollback_alarms[..i].contains(name) {
            bail!("rollback-alarms[{i}]: `{name}` is listed twice");
        }
    }

    let shifts = strategy != Strategy::Rolling;
    let rollout = Rollout {
        strategy,
        bake_minutes: shifts.then(|| written.bake_minutes.unwrap_or(DEFAULT_BAKE_MINUTES)),
        canary_percent: (strategy == Strategy::Canary)
            .then(|| written.canary_percent.unwrap_or(DEFAULT_CANARY_PERCENT)),
        canary_bake_minutes: (strategy == Strategy::Canary)
            .then(|| written.canary_bake_minutes.unwrap_or(DEFAULT_CANARY_BAKE_MINUTES)),
        linear_percent: (strategy == Strategy::Linear)
            .then(|| written.linear_percent.unwrap_or(DEFAULT_LINEAR_PERCENT)),
        linear_step_minutes: (strategy == Strategy::Linear)
            .then(|| written.linear_step_minutes.unwrap_or(DEFAULT_LINEAR_STEP_MINUTES)),
        rollback_alarms: written.rollback_alarms.to_vec(),
    };
    if let Some(minutes) = rollout.cloudformation_minutes()
        && minutes > MAX_CLOUDFORMATION_MINUTES
    {
        let formula = match strategy {
            Strategy::Canary => "bake-minutes + canary-bake-minutes",
            _ => "bake-minutes + linear-step-minutes × steps",
        };
        bail!(
            "bake-minutes: {formula} is {minutes} minutes; CloudFormation refuses a {strategy} deployment over 33 hours ({MAX_CLOUDFORMATION_MINUTES} minutes), so shorten them"
        );
    }
    Ok(rollout)
}

impl Rollout {
    /// How long, in minutes, the old revision keeps running beside the new one once the new
    /// one is healthy: from the first traffic shift to the end of the bake (none for a
    /// rolling stage). A stage served on this machine runs that many seconds.
    pub fn shift_minutes(&self) -> u32 {
        match self.strategy {
            Strategy::Rolling => 0,
            Strategy::BlueGreen => self.bake_minutes.unwrap_or(0),
            Strategy::Canary | Strategy::Linear => self.cloudformation_minutes().unwrap_or(0),
        }
    }

    /// How long a deploy waits for each service unless told otherwise: 15 minutes for its
    /// tasks to start and answer, plus the rollout's own time (traffic shifts and bake), so
    /// that a canary with ECS's defaults (20 minutes) is not called failed while it bakes.
    pub fn default_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(15 * 60 + 60 * u64::from(self.shift_minutes()))
    }

    /// The deployment time CloudFormation computes from the template for a canary or linear
    /// rollout (the linear page:
    /// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-linearconfiguration.html>):
    /// canary, bake + canary bake; linear, bake + step × steps, where the steps are
    /// 100 ÷ percent − 1 when the percent divides 100, else the floor of 100 ÷ percent.
    fn cloudformation_minutes(&self) -> Option<u32> {
        let bake = self.bake_minutes.unwrap_or(0);
        match self.strategy {
            Strategy::Canary => Some(bake + self.canary_bake_minutes.unwrap_or(0)),
            Strategy::Linear => {
                let tenths = tenths(self.linear_percent?);
                let steps = if 1000 % tenths == 0 { 1000 / tenths - 1 } else { 1000 / tenths };
                Some(bake + self.linear_step_minutes? * steps)
            }
            Strategy::Rolling | Strategy::BlueGreen => None,
        }
    }
}

/// A percentage as whole tenths (ECS takes multiples of 0.1).
fn tenths(percent: f64) -> u32 {
    (percent * 10.0).round() as u32
}

/// ECS takes a traffic percentage as a multiple of 0.1 from `min` to 100.
fn check_percent(key: &str, percent: f64, min: f64) -> Result<()> {
    let whole_tenths = ((percent * 10.0).round() - percent * 10.0).abs() < 1e-6;
    if !percent.is_finite() || percent < min || percent > 100.0 || !whole_tenths {
        bail!("{key}: {percent} is out of ECS's range; give a multiple of 0.1 from {min:.1} to 100");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(strategy: Strategy) -> Written<'static> {
        Written { strategy, ..Written::default() }
    }

    #[test]
    fn a_stage_that_sets_nothing_rolls() {
        let rollout = resolve(&Written::default()).unwrap();
        assert_eq!(rollout, Rollout { strategy: Strategy::Rolling, ..Rollout::default() });
        assert_eq!(
            serde_json::to_value(&rollout).unwrap(),
            serde_json::json!({ "strategy": "rolling", "rollbackAlarms": [] })
        );
    }

    #[test]
    fn each_strategy_gets_the_defaults_it_uses_and_no_others() {
        let json = |strategy| serde_json::to_value(resolve(&written(strategy)).unwrap()).unwrap();
        assert_eq!(
            json(Strategy::BlueGreen),
            serde_json::json!({ "strategy": "blue-green", "bakeMinutes": 10, "rollbackAlarms": [] })
        );
        assert_eq!(
            json(Strategy::Canary),
            serde_json::json!({
                "strategy": "canary", "bakeMinutes": 10, "canaryPercent": 5.0, "canaryBakeMinutes": 10,
                "rollbackAlarms": []
            })
        );
        assert_eq!(
            json(Strategy::Linear),
            serde_json::json!({
                "strategy": "linear", "bakeMinutes": 10, "linearPercent": 10.0, "linearStepMinutes": 6,
                "rollbackAlarms": []
            })
        );
    }

    #[test]
    fn written_values_win_over_the_defaults() {
        let alarms = ["p99-latency".to_string(), "5xx-rate".to_string()];
        let rollout = resolve(&Written {
            strategy: Strategy::Canary,
            bake_minutes: Some(0),
            canary_percent: Some(12.5),
            canary_bake_minutes: Some(1440),
            rollback_alarms: &alarms,
            ..Written::default()
        })
        .unwrap();
        assert_eq!(
            (rollout.bake_minutes, rollout.canary_percent, rollout.canary_bake_minutes),
            (Some(0), Some(12.5), Some(1440))
        );
        assert_eq!(rollout.rollback_alarms, alarms);
        // Alarms roll a rolling stage back too.
        let rolling = resolve(&Written { rollback_alarms: &alarms, ..Written::default() }).unwrap();
        assert_eq!(rolling.rollback_alarms, alarms);
    }

    #[test]
    fn the_old_revision_runs_beside_the_new_one_through_every_shift_and_the_bake() {
        let minutes = |written: Written| resolve(&written).unwrap().shift_minutes();
        assert_eq!(minutes(written(Strategy::Rolling)), 0);
        assert_eq!(minutes(Written { bake_minutes: Some(3), ..written(Strategy::BlueGreen) }), 3);
        let canary = Written { bake_minutes: Some(2), canary_bake_minutes: Some(5), ..written(Strategy::Canary) };
        assert_eq!(minutes(canary), 7);
        // 25 % every 4 minutes: three steps before the last shift, then the bake.
        let linear = Written {
            bake_minutes: Some(1),
            linear_percent: Some(25.0),
            linear_step_minutes: Some(4),
            ..written(Strategy::Linear)
        };
        assert_eq!(minutes(linear), 13);
    }

    #[test]
    fn a_deploy_waits_through_the_rollout_by_default() {
        let wait = |written: Written| resolve(&written).unwrap().default_wait().as_secs();
        assert_eq!(wait(written(Strategy::Rolling)), 900);
        // ECS's canary defaults: 10 minutes of canary bake, then 10 of bake.
        assert_eq!(wait(written(Strategy::Canary)), 900 + 20 * 60);
    }

    #[test]
    fn the_33_hour_limit_counts_linear_steps_as_cloudformation_does() {
        // 100 % 25 == 0: three steps (the bake after the last shift is not counted).
        let linear = |percent, step| Written {
            strategy: Strategy::Linear,
            bake_minutes: Some(0),
            linear_percent: Some(percent),
            linear_step_minutes: Some(step),
            ..Written::default()
        };
        assert_eq!(resolve(&linear(25.0, 660)).unwrap().cloudformation_minutes(), Some(1980));
        assert!(resolve(&linear(25.0, 661)).is_err());
        // 100 / 11 is 9.09: nine steps.
        assert_eq!(resolve(&linear(11.0, 220)).unwrap().cloudformation_minutes(), Some(1980));
        assert!(resolve(&linear(11.0, 221)).is_err());
    }

    #[test]
    fn mistakes_are_refused_with_one_line_naming_the_key() {
        let (blank, twice) = (["ok".to_string(), " ".to_string()], ["a".to_string(), "a".to_string()]);
        let cases: Vec<(&str, Written, &str)> = vec![
            (
                "a canary percent on a linear stage",
                Written { canary_percent: Some(5.0), ..written(Strategy::Linear) },
                "canary-percent: applies to strategy = \"canary\" only (this stage's is \"linear\")",
            ),
            (
                "a canary bake time on a blue-green stage",
                Written { canary_bake_minutes: Some(5), ..written(Strategy::BlueGreen) },
                "canary-bake-minutes: applies to strategy = \"canary\" only",
            ),
            (
                "a step without linear",
                Written { linear_step_minutes: Some(5), ..written(Strategy::Canary) },
                "linear-step-minutes: applies to strategy = \"linear\" only (this stage's is \"canary\")",
            ),
            (
                "a linear percent on a rolling stage",
                Written { linear_percent: Some(10.0), ..written(Strategy::Rolling) },
                "linear-percent: applies to strategy = \"linear\" only (this stage's is \"rolling\")",
            ),
            (
                "a bake time on a rolling stage",
                Written { bake_minutes: Some(5), ..written(Strategy::Rolling) },
                "bake-minutes: a rolling stage has no bake time",
            ),
            (
                "a bake time over 24 hours",
                Written { bake_minutes: Some(1441), ..written(Strategy::BlueGreen) },
                "bake-minutes: 1441 is out of ECS's range; give 0 to 1440 minutes",
            ),
            (
                "a canary bake time over 24 hours",
                Written { canary_bake_minutes: Some(2000), ..written(Strategy::Canary) },
                "canary-bake-minutes: 2000 is out of ECS's range",
            ),
            (
                "a canary percent of 0",
                Written { canary_percent: Some(0.0), ..written(Strategy::Canary) },
                "canary-percent: 0 is out of ECS's range; give a multiple of 0.1 from 0.1 to 100",
            ),
            (
                "a canary percent over 100",
                Written { canary_percent: Some(100.5), ..written(Strategy::Canary) },
                "canary-percent: 100.5 is out of ECS's range",
            ),
            (
                "a canary percent that is no multiple of 0.1",
                Written { canary_percent: Some(5.25), ..written(Strategy::Canary) },
                "canary-percent: 5.25 is out of ECS's range",
            ),
            (
                "a linear percent under 3",
                Written { linear_percent: Some(2.9), ..written(Strategy::Linear) },
                "linear-percent: 2.9 is out of ECS's range; give a multiple of 0.1 from 3.0 to 100",
            ),
            (
                "a canary over 33 hours",
                Written { bake_minutes: Some(1000), canary_bake_minutes: Some(1000), ..written(Strategy::Canary) },
                "bake-minutes: bake-minutes + canary-bake-minutes is 2000 minutes; CloudFormation refuses a canary deployment over 33 hours",
            ),
            (
                "a linear rollout over 33 hours",
                Written { linear_percent: Some(3.0), linear_step_minutes: Some(100), ..written(Strategy::Linear) },
                "bake-minutes: bake-minutes + linear-step-minutes × steps is 3310 minutes",
            ),
            (
                "an empty alarm name",
                Written { rollback_alarms: &blank, ..written(Strategy::Rolling) },
                "rollback-alarms[1]: ` ` is not a CloudWatch alarm name",
            ),
            (
                "an alarm listed twice",
                Written { rollback_alarms: &twice, ..written(Strategy::Canary) },
                "rollback-alarms[1]: `a` is listed twice",
            ),
        ];
        let mut wrong = vec![];
        for (what, written, expected) in cases {
            match resolve(&written) {
                Ok(rollout) => wrong.push(format!("{what}: accepted as {rollout:?}")),
                Err(err) => {
                    let err = format!("{err:#}");
                    if !err.contains(expected) || err.contains('\n') {
                        wrong.push(format!("{what}: expected one line with `{expected}`, got `{err}`"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn ecs_range_ends_are_accepted() {
        for (strategy, percent) in [(Strategy::Canary, 0.1), (Strategy::Canary, 100.0), (Strategy::Linear, 3.0)] {
            let written = match strategy {
                Strategy::Canary => Written { canary_percent: Some(percent), ..written(strategy) },
                _ => Written { linear_percent: Some(percent), ..written(strategy) },
            };
            resolve(&written).unwrap_or_else(|err| panic!("{strategy} {percent}: {err}"));
        }
        resolve(&Written { bake_minutes: Some(1440), ..written(Strategy::BlueGreen) }).unwrap();
    }
}
