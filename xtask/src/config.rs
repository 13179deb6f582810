//! Project settings: `[workspace.metadata.xtask]` in the workspace's `Cargo.toml`.
//!
//! One declarative place says which images exist and how each stage is reached;
//! the CDK app in `infra/` reads the same table.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The name of the stage that runs on this machine's local stack.
pub const LOCAL_STAGE: &str = "local";

#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root: the directory of the workspace `Cargo.toml`.
    pub root: PathBuf,
    pub project: String,
    pub commit_arg: String,
    pub keep_images: u32,
    pub images: Vec<Image>,
    pub stages: BTreeMap<String, Stage>,
    pub local: LocalPorts,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Image {
    pub name: String,
    /// Context directory, relative to the workspace root.
    pub context: PathBuf,
    /// Dockerfile, relative to the workspace root.
    pub dockerfile: PathBuf,
    /// ECR repository name (without the registry host).
    pub repository: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default = "default_platform")]
    pub platform: String,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Stage {
    #[serde(skip)]
    pub name: String,
    /// AWS profile used by the SDK and passed to `cdk --profile`.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    /// Registry host to push to instead of the one ECR reports (`host:port`).
    #[serde(default)]
    pub registry: Option<String>,
    /// Build arguments that apply to every image in this stage (override the image's own).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
}

/// Loopback ports of the local stack.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LocalPorts {
    #[serde(default = "default_moto_port")]
    pub moto_port: u16,
    #[serde(default = "default_registry_port")]
    pub registry_port: u16,
    #[serde(default = "default_sync_port")]
    pub sync_port: u16,
}

impl Default for LocalPorts {
    fn default() -> Self {
        LocalPorts {
            moto_port: default_moto_port(),
            registry_port: default_registry_port(),
            sync_port: default_sync_port(),
        }
    }
}

fn default_platform() -> String {
    "linux/amd64".to_string()
}
fn default_moto_port() -> u16 {
    5731
}
fn default_registry_port() -> u16 {
    5732
}
fn default_sync_port() -> u16 {
    5733
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Raw {
    project: String,
    #[serde(default = "default_commit_arg")]
    commit_arg: String,
    #[serde(default = "default_keep_images")]
    keep_images: u32,
    #[serde(default)]
    images: Vec<Image>,
    #[serde(default)]
    stages: BTreeMap<String, Stage>,
    #[serde(default)]
    local: LocalPorts,
}

fn default_commit_arg() -> String {
    "GIT_COMMIT".to_string()
}
fn default_keep_images() -> u32 {
    30
}

impl Config {
    /// Reads the settings of the workspace whose root is `root`.
    pub fn load(root: &Path) -> Result<Config> {
        let manifest = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        Config::parse(root, &text).with_context(|| {
            format!("invalid [workspace.metadata.xtask] in {}", manifest.display())
        })
    }

    pub fn parse(root: &Path, cargo_toml: &str) -> Result<Config> {
        #[derive(Deserialize)]
        struct Manifest {
            workspace: Option<Workspace>,
        }
        #[derive(Deserialize)]
        struct Workspace {
            metadata: Option<Metadata>,
        }
        #[derive(Deserialize)]
        struct Metadata {
            xtask: Option<toml::Value>,
        }
        let manifest: Manifest = toml::from_str(cargo_toml)?;
        let Some(table) = manifest.workspace.and_then(|w| w.metadata).and_then(|m| m.xtask) else {
            bail!("the table is missing; add it to the workspace Cargo.toml (see README)");
        };
        let raw: Raw = table.try_into()?;
        let mut stages = raw.stages;
        stages.entry(LOCAL_STAGE.to_string()).or_default();
        for (name, stage) in &mut stages {
            stage.name = name.clone();
        }
        let local = stages.get_mut(LOCAL_STAGE).expect("inserted above");
        local.region.get_or_insert_with(|| "us-east-1".to_string());
        local.account.get_or_insert_with(|| "123456789012".to_string());
        local.registry = Some(format!("127.0.0.1:{}", raw.local.registry_port));

        let config = Config {
            root: root.to_path_buf(),
            project: raw.project,
            commit_arg: raw.commit_arg,
            keep_images: raw.keep_images,
            images: raw.images,
            stages,
            local: raw.local,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.images.is_empty() {
            bail!("no images configured; add an [[workspace.metadata.xtask.images]] entry");
        }
        let mut seen = std::collections::BTreeSet::new();
        for image in &self.images {
            if !seen.insert(&image.name) {
                bail!("image `{}` is configured twice", image.name);
            }
            if !matches!(image.platform.as_str(), "linux/amd64" | "linux/arm64") {
                bail!(
                    "image `{}`: platform `{}` is not supported; use linux/amd64 or linux/arm64",
                    image.name,
                    image.platform
                );
            }
        }
        Ok(())
    }

    pub fn stage(&self, name: &str) -> Result<&Stage> {
        self.stages.get(name).with_context(|| {
            let known: Vec<&str> = self.stages.keys().map(String::as_str).collect();
            format!(
                "unknown stage `{name}`; known stages: {} (add one under [workspace.metadata.xtask.stages])",
                known.join(", ")
            )
        })
    }

    /// The images selected by `--image` (all when none is named).
    pub fn select_images(&self, names: &[String]) -> Result<Vec<&Image>> {
        if names.is_empty() {
            return Ok(self.images.iter().collect());
        }
        names
            .iter()
            .map(|name| {
                self.images.iter().find(|image| &image.name == name).with_context(|| {
                    let known: Vec<&str> = self.images.iter().map(|i| i.name.as_str()).collect();
                    format!("unknown image `{name}`; configured images: {}", known.join(", "))
                })
            })
            .collect()
    }

    /// CloudFormation stack names of a stage.
    pub fn registry_stack(&self, stage: &Stage) -> String {
        format!("{}-{}-registry", self.project, stage.name)
    }
    pub fn service_stack(&self, stage: &Stage) -> String {
        format!("{}-{}-service", self.project, stage.name)
    }
}

impl Stage {
    pub fn is_local(&self) -> bool {
        self.name == LOCAL_STAGE
    }
}

#[cfg(test)]
mod tests {
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
"#;

    #[test]
    fn local_stage_always_exists() {
        let config = Config::parse(Path::new("/w"), MINIMAL).unwrap();
        let local = config.stage("local").unwrap();
        assert_eq!(local.region.as_deref(), Some("us-east-1"));
        assert_eq!(local.registry.as_deref(), Some("127.0.0.1:5732"));
        assert_eq!(config.service_stack(local), "p-local-service");
    }

    #[test]
    fn unknown_stage_lists_known_ones() {
        let config = Config::parse(Path::new("/w"), MINIMAL).unwrap();
        let err = config.stage("prod").unwrap_err().to_string();
        assert!(err.contains("unknown stage `prod`; known stages: local"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let text = MINIMAL.replace("repository = \"p/app\"", "repository = \"p/app\"\nrepo = 1");
        let err = format!("{:#}", Config::parse(Path::new("/w"), &text).unwrap_err());
        assert!(err.contains("unknown field `repo`"), "{err}");
    }

    #[test]
    fn unknown_image_is_named() {
        let config = Config::parse(Path::new("/w"), MINIMAL).unwrap();
        let err = config.select_images(&["web".into()]).unwrap_err().to_string();
        assert_eq!(err, "unknown image `web`; configured images: app");
    }
}
