//! The settings as the CDK app in `infra/` reads them: resolved (defaults applied), with the
//! lifecycle policy every repository gets, as JSON (`infra/lib/config.ts` reads it from the
//! file its `xtaskConfig` context names), so the two never disagree.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::{config::Config, retention, rollout::Rollout};

/// The version of the JSON the CDK app reads (`infra/lib/config.ts`).
const RESOLVED_SCHEMA: u32 = 3;

/// The settings the CDK app needs, resolved (defaults applied), as the JSON it reads
/// from the file named by its `xtaskConfig` context.
pub fn json(config: &Config) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Resolved<'a> {
        schema: u32,
        project: &'a str,
        keep_images: u32,
        rollback_window: u32,
        main_branch: &'a str,
        /// `owner/name`: the CI stack trusts this repository's workflow tokens.
        #[serde(skip_serializing_if = "Option::is_none")]
        github_repository: Option<&'a str>,
        /// The ECR lifecycle policy of every repository, set by the registry stack verbatim.
        lifecycle_policy: retention::Policy,
        images: Vec<ResolvedImage<'a>>,
        stages: BTreeMap<&'a str, ResolvedStage<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ResolvedImage<'a> {
        name: &'a str,
        repository: &'a str,
        /// Where pull-request pushes go (`pr/<repository>`).
        pr_repository: String,
        port: u16,
        platform: &'a str,
        load_balanced: bool,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ResolvedStage<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        promote_from: Option<&'a str>,
        /// The KMS keys the registry stack makes (aliases), for a stage that builds.
        #[serde(skip_serializing_if = "Option::is_none")]
        signing_keys: Option<ResolvedKeys>,
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        account: Option<&'a str>,
        /// How the service stack has ECS roll the services out (strategy, bake time, alarms).
        rollout: Rollout,
        /// `basic` or `enhanced`: the registry stack sets the registry's scanning configuration.
        #[serde(skip_serializing_if = "Option::is_none")]
        scanning: Option<&'static str>,
    }
    #[derive(Serialize)]
    struct ResolvedKeys {
        main: String,
        pr: String,
    }
    let resolved = Resolved {
        schema: RESOLVED_SCHEMA,
        project: &config.project,
        keep_images: config.keep_images,
        rollback_window: config.rollback_window,
        main_branch: &config.main_branch,
        github_repository: config.github_repository.as_deref(),
        lifecycle_policy: retention::policy(&retention::Settings::of(config)),
        images: config
            .images
            .iter()
            .map(|i| ResolvedImage {
                name: &i.name,
                repository: &i.repository,
                pr_repository: Config::pr_repository(i),
                port: i.port,
                platform: i.platform.as_str(),
                load_balanced: i.load_balanced,
            })
            .collect(),
        stages: config
            .stages
            .values()
            .map(|s| {
                let stage = ResolvedStage {
                    name: &s.name,
                    promote_from: s.promote_from.as_deref(),
                    signing_keys: config.signing_keys(s).map(|k| ResolvedKeys { main: k.main, pr: k.pr }),
                    profile: s.profile.as_deref(),
                    region: s.region.as_deref(),
                    account: s.account.as_deref(),
                    rollout: s.rollout().expect("the settings' validation resolved every stage's rollout"),
                    scanning: s.scanning.map(|scanning| scanning.as_str()),
                };
                (s.name.as_str(), stage)
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&resolved).expect("plain data serializes");
    json.push('\n');
    json
}
