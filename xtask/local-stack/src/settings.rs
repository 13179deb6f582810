//! The local stack's part of the settings: the `local` stage that always exists, the rules
//! of the stages it serves (`local-stack = true`), and its own table
//! `[workspace.metadata.xtask.local]` (loopback ports). The release library hands these on
//! unread; they are checked here, once, when the workspace is opened.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xtask_release::domain::config::{Config, ImplicitStage, Stage, deserialize_at, invalid_in};

/// The name of the stage that runs on this machine's local stack.
pub const LOCAL_STAGE: &str = "local";

/// The account moto acts in unless a role in another is assumed.
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The stages the local stack serves whether or not the settings name them: `local`, in
/// moto's own account and its default region unless the settings say otherwise.
pub const IMPLICIT: [ImplicitStage; 1] =
    [ImplicitStage { name: LOCAL_STAGE, region: "us-east-1", account: DEFAULT_ACCOUNT }];

/// Does the local stack serve `stage` (rather than an AWS account)?
pub fn serves(stage: &Stage) -> bool {
    stage.name == LOCAL_STAGE || stage.local_stack
}

/// Loopback ports of the local stack; each one unset is picked free when the stack starts.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Ports {
    #[serde(default)]
    pub moto_port: Option<u16>,
    #[serde(default)]
    pub registry_port: Option<u16>,
    #[serde(default)]
    pub sync_port: Option<u16>,
}

/// The ports `[workspace.metadata.xtask.local]` sets; the error names the key.
pub fn ports(config: &Config) -> Result<Ports> {
    deserialize_at("local", toml::Value::Table(config.local.clone()))
}

/// The local stack's rules of the settings, with the settings' own error context.
pub fn check(config: &Config) -> Result<()> {
    rules(config).with_context(|| invalid_in(&config.root))
}

fn rules(config: &Config) -> Result<()> {
    ports(config)?;
    for (name, stage) in &config.stages {
        if stage.local_stack && stage.account.is_none() {
            bail!("stages.{name}.account: a stage on the local stack needs its own 12-digit account id");
        }
        if serves(stage) && stage.scanning.is_some() {
            bail!(
                "stages.{name}.scanning: the local stack's ECR has no registry scanning configuration to set (its CloudFormation skips AWS::ECR::RegistryScanningConfiguration); remove the key"
            );
        }
        if let Some(source) = &stage.promote_from
            && let Some(from) = config.stages.get(source)
            && serves(from) != serves(stage)
        {
            bail!("stages.{name}.promote-from: `{source}` and `{name}` must both be on the local stack or both in AWS");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const MINIMAL: &str = r#"
[workspace]
[workspace.metadata.xtask]
project = "p"
[[workspace.metadata.xtask.images]]
name = "app"
context = "app"
dockerfile = "app/Dockerfile"
repository = "p/app"
port = 8080
"#;

    #[test]
    fn the_local_stage_always_exists() {
        let config = Config::parse(Path::new("/w"), MINIMAL, &IMPLICIT).unwrap();
        let local = config.stage("local").unwrap();
        assert_eq!(local.region.as_deref(), Some("us-east-1"));
        assert_eq!(local.account.as_deref(), Some("123456789012"));
        assert_eq!(config.service_stack(local), "p-local-service");
    }

    #[test]
    fn mistakes_are_refused_with_the_keys_path() {
        let stage = "[workspace.metadata.xtask.stages.dev]\n";
        let cases = [
            (
                "an unknown local key",
                format!("{MINIMAL}[workspace.metadata.xtask.local]\nmoto = 1\n"),
                "local.moto: unknown field `moto`",
            ),
            (
                "promotion from the local stack into AWS",
                format!("{MINIMAL}{stage}promote-from = \"local\"\n"),
                "stages.dev.promote-from: `local` and `dev` must both be on the local stack or both in AWS",
            ),
            (
                "a local-stack stage without its account",
                format!("{MINIMAL}{stage}local-stack = true\n"),
                "stages.dev.account: a stage on the local stack needs its own 12-digit account id",
            ),
            (
                "a scan type for the local stage",
                format!("{MINIMAL}[workspace.metadata.xtask.stages.local]\nscanning = \"basic\"\n"),
                "stages.local.scanning: the local stack's ECR has no registry scanning configuration to set",
            ),
        ];
        let mut wrong = vec![];
        for (what, toml, expected) in cases {
            let err = Config::parse(Path::new("/w"), &toml, &IMPLICIT).and_then(|config| check(&config));
            let err = format!("{:#}", err.unwrap_err());
            if !err.contains(expected) || err.contains('\n') || !err.starts_with("invalid [workspace.metadata.xtask]") {
                wrong.push(format!("{what}: expected one line with `{expected}`, got `{err}`"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_workspaces_own_settings_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config = Config::load(&root, &IMPLICIT).unwrap();
        check(&config).unwrap();
        assert!(config.stages.contains_key(LOCAL_STAGE));
    }
}
