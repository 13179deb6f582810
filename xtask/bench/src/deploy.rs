//! Row 4: `cargo xtask deploy --stage local` beside plain `cdk deploy` of the same
//! stack with the same tag (a copy under another name), in a snapshot of this workspace.
//!
//! Ours includes its local stack check, the push (nothing to do after the warm-up), the
//! presence check, the check that the stack already runs the images (so, on the local
//! stack, no cdk: moto's CloudFormation drops the ECS service on an update that changes
//! nothing) and the rollout check.

use std::time::Duration;

use anyhow::Result;
use xshell::cmd;

use super::{
    Bench, Row,
    fixture::Fixture,
    measure::{self, Stdout},
};
// Plain cdk gets the flags ours passes on the local stack.
use xtask_local_stack::settings::LOCAL_STAGE;
use xtask_local_stack::stage::LOCAL_CDK_DEPLOY_ARGS;

/// Longest a deploy may take before the bench stops it and fails.
const LIMIT: Duration = Duration::from_secs(600);

pub fn row(b: &Bench<'_>) -> Result<Row> {
    let ws = b.ws;
    let fixture = Fixture::snapshot(ws, &b.dir.join("deploy"))?;
    let sh = &fixture.sh;
    let tag = cmd!(sh, "git rev-parse HEAD").quiet().read()?;
    let stage = ws.config.stage(LOCAL_STAGE)?;
    let service = ws.config.service_stack(stage);
    // What `cargo xtask local env` prints, and the settings `cargo xtask config` writes,
    // for a copy of the stack under another project name: moto's CloudFormation drops the
    // ECS service on an update that changes nothing, so the baseline's deploy must not
    // touch the stack ours deploys (same template, same images, its own name).
    let env = b.ports.env(stage.region.as_deref().unwrap_or_default());
    let mut settings: serde_json::Value = serde_json::from_str(&xtask_release::domain::resolved::json(&ws.config))?;
    let baseline_project = format!("{}-baseline", ws.config.project);
    settings["project"] = serde_json::Value::String(baseline_project.clone());
    let baseline = service.replacen(&ws.config.project, &baseline_project, 1);
    let config = b.dir.join("deploy-config.json");
    std::fs::write(&config, serde_json::to_string(&settings)?)?;
    let config = format!("xtaskConfig={}", config.display());
    let (exe, infra) = (&b.exe, fixture.dir.join("infra"));
    let cdk = infra.join("node_modules/.bin/cdk");
    let local_args = LOCAL_CDK_DEPLOY_ARGS;

    let runs = b.rounds("row 4, deploy", || {
        let ours = b.ours(cmd!(sh, "{exe} deploy --stage local"));
        let ours = measure::run("cargo xtask deploy", ours, Stdout::Keep, &b.log("deploy-ours"), LIMIT)?;
        let _infra = sh.push_dir(&infra);
        let mut plain = cmd!(
            sh,
            "{cdk} deploy {baseline} -c stage=local -c {config} -c imageTag={tag} --require-approval never {local_args...}"
        )
        // Ours sets it too: the check would reach for the internet.
        .env("CDK_DISABLE_VERSION_CHECK", "1");
        for (key, value) in &env {
            plain = plain.env(key, value);
        }
        let plain = measure::run("cdk deploy", plain, Stdout::Keep, &b.log("deploy-cdk"), LIMIT)?;
        Ok((ours.secs, plain.secs))
    })?;
    let (ours, theirs) = runs.into_iter().unzip();
    Ok(Row {
        id: "4".into(),
        what: format!("`deploy --stage local` of {service}, the tag already deployed"),
        baseline: "`cdk deploy` of the same stack and tag, under another stack name (`--method=direct`, as moto needs)"
            .into(),
        ours,
        theirs,
        also: vec![
            "ours includes the stack and presence checks, the push (nothing to do) and the rollout check; \
             on the local stack, a stack that already runs the images (its ECS services show them) is not \
             deployed again, since moto's CloudFormation would drop the service"
                .into(),
        ],
    })
}
