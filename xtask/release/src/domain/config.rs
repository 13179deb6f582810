//! Project settings: `[workspace.metadata.xtask]` in the workspace's `Cargo.toml`.
//!
//! This module is the one reader of that table: it refuses unknown keys and wrong types
//! with the key's path, checks every value once, and hands the CDK app in `infra/` the
//! resolved settings as JSON ([`crate::domain::resolved`]), so the two never disagree.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::domain::rollout::{self, Rollout, Strategy};

/// A stage that exists whether or not the settings name it, with the region and account it
/// gets where they set none: a stage the program that opens stages serves itself.
#[derive(Debug, Clone, Copy)]
pub struct ImplicitStage {
    pub name: &'static str,
    pub region: &'static str,
    pub account: &'static str,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root: the directory of the workspace `Cargo.toml`.
    pub root: PathBuf,
    pub project: String,
    pub commit_arg: String,
    pub keep_images: u32,
    /// How many pull-request images each repository keeps (`keep-pr-images`).
    pub keep_pr_images: u32,
    /// How many of the images last deployed to a stage are kept for a rollback.
    pub rollback_window: u32,
    /// The branch whose commits are main's (`refs/remotes/origin/<b>` or `refs/heads/<b>`).
    pub main_branch: String,
    pub images: Vec<Image>,
    pub stages: BTreeMap<String, Stage>,
    /// `[workspace.metadata.xtask.local]`: the settings of whoever serves the stages marked
    /// `local-stack` (and the implicit ones), handed to it unread.
    pub local: toml::Table,
    /// `owner/name` of the GitHub repository whose workflow releases (`github-repository`):
    /// the CDK app's CI stack trusts its OIDC tokens, by branch and environment.
    pub github_repository: Option<String>,
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
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// The port the container listens on; the service stack routes its load balancer to it.
    pub port: u16,
    /// Whether the service stack puts a load balancer in front of it (`load-balanced`;
    /// a worker without one is health-checked by its container's own `healthcheck` command).
    #[serde(default = "default_true")]
    pub load_balanced: bool,
    /// The Dockerfile stage whose layers `push` exports to ECR as build cache
    /// (`cache-stage`, e.g. the stage that compiles the dependencies), so a runner with an
    /// empty daemon reuses them.
    #[serde(default)]
    pub cache_stage: Option<String>,
}

fn default_true() -> bool {
    true
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
    /// Build arguments that apply to every image in this stage (override the image's own).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// The stage whose images this one runs: `promote` copies them here by digest, and
    /// `push` never builds for this stage.
    #[serde(default)]
    pub promote_from: Option<String>,
    /// Served by the program that opens stages rather than an AWS account (`local-stack =
    /// true`), in its own `account`: plain data here, read by whoever serves it.
    #[serde(default)]
    pub local_stack: bool,
    /// The KMS key that signs the build provenance of images pushed here from the main
    /// branch (`signing-key`: a key id, ARN or alias); `alias/<project>-<stage>-main` unless
    /// set. A stage with `promote-from` signs nothing: it runs what its source signed.
    #[serde(default)]
    pub signing_key: Option<String>,
    /// The KMS key that signs the provenance of pull-request images (`pr-signing-key`);
    /// `alias/<project>-<stage>-pr` unless set. No stage trusts it unless it says so.
    #[serde(default)]
    pub pr_signing_key: Option<String>,
    /// Whose provenance this stage accepts (`trusted-keys`): KMS keys (id, ARN or alias,
    /// read with GetPublicKey) or public keys as PEM files committed to the repository
    /// (`*.pem`, relative to the workspace root; no KMS call). Unless set: the stage's own
    /// main signing key, or for a stage with `promote-from`, its source stage's.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// The registry's scanning configuration, set by the registry stack (`scanning =
    /// "basic" | "enhanced"`): the scan type, and one rule that scans the project's
    /// repositories on push (continuously, for enhanced). Unset: the registry's is left alone.
    #[serde(default)]
    pub scanning: Option<Scanning>,
    // How ECS rolls the stage's services out ([`crate::domain::rollout`]): `strategy`
    // (rolling, blue-green, canary or linear; rolling unless set), `bake-minutes`, the
    // canary's and linear's percentages and minutes, and `rollback-alarms` (CloudWatch
    // alarms that roll a deployment back). A service without a load balancer always rolls.
    #[serde(default)]
    pub strategy: Strategy,
    #[serde(default)]
    pub bake_minutes: Option<u32>,
    #[serde(default)]
    pub canary_percent: Option<f64>,
    #[serde(default)]
    pub canary_bake_minutes: Option<u32>,
    #[serde(default)]
    pub linear_percent: Option<f64>,
    #[serde(default)]
    pub linear_step_minutes: Option<u32>,
    #[serde(default)]
    pub rollback_alarms: Vec<String>,
}

impl Stage {
    /// The stage's rollout, its defaults filled in; an error names the key, without the
    /// stage (checked once when the settings are read, so later calls succeed).
    pub fn rollout(&self) -> Result<Rollout> {
        rollout::resolve(&rollout::Written {
            strategy: self.strategy,
            bake_minutes: self.bake_minutes,
            canary_percent: self.canary_percent,
            canary_bake_minutes: self.canary_bake_minutes,
            linear_percent: self.linear_percent,
            linear_step_minutes: self.linear_step_minutes,
            rollback_alarms: &self.rollback_alarms,
        })
    }
}

/// A stage's `scanning`: the scan type its registry stack gives the account's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanning {
    /// ECR's own scanning, on push.
    Basic,
    /// Amazon Inspector: on push, then continuously as new vulnerabilities are published.
    Enhanced,
}

impl Scanning {
    pub fn as_str(self) -> &'static str {
        match self {
            Scanning::Basic => "basic",
            Scanning::Enhanced => "enhanced",
        }
    }
}

impl<'de> Deserialize<'de> for Scanning {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Scanning, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "basic" => Ok(Scanning::Basic),
            "enhanced" => Ok(Scanning::Enhanced),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a scan type; use \"basic\" (ECR's scan on push) or \"enhanced\" (Amazon Inspector)"
            ))),
        }
    }
}

/// The keys a stage that builds its images signs their provenance with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// Signs what is pushed from the main branch.
    pub main: String,
    /// Signs what is pushed from anywhere else (pull requests, dirty work trees).
    pub pr: String,
}

/// A key whose signatures a stage trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedKey {
    /// A KMS key, read with GetPublicKey through the named stage's credentials.
    Kms { key: String, stage: String },
    /// A public key in a PEM file of the repository.
    Pem(PathBuf),
}

impl std::fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustedKey::Kms { key, .. } => write!(f, "KMS key {key}"),
            TrustedKey::Pem(path) => write!(f, "public key {}", path.display()),
        }
    }
}

/// The platforms an image can be built for: what ECS on Fargate runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Platform {
    #[default]
    LinuxAmd64,
    LinuxArm64,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Platform, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "linux/amd64" => Ok(Platform::LinuxAmd64),
            "linux/arm64" => Ok(Platform::LinuxArm64),
            _ => Err(serde::de::Error::custom(format!("`{text}` is not supported; use linux/amd64 or linux/arm64"))),
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
fn default_commit_arg() -> String {
    "GIT_COMMIT".to_string()
}
fn default_keep_images() -> u32 {
    30
}
fn default_keep_pr_images() -> u32 {
    20
}
fn default_rollback_window() -> u32 {
    10
}
fn default_main_branch() -> String {
    "main".to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Raw {
    project: String,
    #[serde(default = "default_commit_arg")]
    commit_arg: String,
    #[serde(default = "default_keep_images")]
    keep_images: u32,
    #[serde(default = "default_keep_pr_images")]
    keep_pr_images: u32,
    #[serde(default = "default_rollback_window")]
    rollback_window: u32,
    #[serde(default = "default_main_branch")]
    main_branch: String,
    #[serde(default)]
    images: Vec<Image>,
    #[serde(default)]
    stages: BTreeMap<String, Stage>,
    #[serde(default)]
    local: toml::Table,
    #[serde(default)]
    github_repository: Option<String>,
}

/// A part of the settings, read from `value`, found at `at` (`""` for the whole table);
/// the error names the key: `images[0].port: invalid type: string "80", expected u16`.
pub fn deserialize_at<T: serde::de::DeserializeOwned>(at: &str, value: toml::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = match (at, err.path().to_string()) {
            (at, path) if path == "." => at.to_string(),
            ("", path) => path,
            (at, path) => format!("{at}.{path}"),
        };
        // toml appends "\nin `images`" to its own message: the path above says it better.
        let inner = err.into_inner().to_string();
        let inner = inner.lines().next().unwrap_or_default().trim();
        if path.is_empty() { anyhow::anyhow!("{inner}") } else { anyhow::anyhow!("{path}: {inner}") }
    })
}

/// The context of every settings error: where they are.
pub fn invalid_in(root: &Path) -> String {
    format!("invalid [workspace.metadata.xtask] in {}", root.join("Cargo.toml").display())
}

impl Config {
    /// Reads the settings of the workspace whose root is `root`; the `implicit` stages exist
    /// whether or not they name them.
    pub fn load(root: &Path, implicit: &[ImplicitStage]) -> Result<Config> {
        let manifest = root.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
        Config::parse(root, &text, implicit).with_context(|| invalid_in(root))
    }

    pub fn parse(root: &Path, cargo_toml: &str, implicit: &[ImplicitStage]) -> Result<Config> {
        let manifest: toml::Table = toml::from_str(cargo_toml).map_err(|err| {
            let line = err.span().map_or(0, |span| cargo_toml[..span.start].lines().count().max(1));
            anyhow::anyhow!("line {line}: {}", err.message().trim())
        })?;
        let Some(table) = manifest.get("workspace").and_then(|w| w.get("metadata")).and_then(|m| m.get("xtask")) else {
            bail!("the table is missing; add it to the workspace Cargo.toml (see README)");
        };
        let raw: Raw = deserialize_at("", table.clone())?;
        let mut stages = raw.stages;
        for stage in implicit {
            let settings = stages.entry(stage.name.to_string()).or_default();
            settings.region.get_or_insert_with(|| stage.region.to_string());
            settings.account.get_or_insert_with(|| stage.account.to_string());
        }
        for (name, stage) in &mut stages {
            stage.name = name.clone();
        }
        let config = Config {
            root: root.to_path_buf(),
            project: raw.project,
            commit_arg: raw.commit_arg,
            keep_images: raw.keep_images,
            keep_pr_images: raw.keep_pr_images,
            rollback_window: raw.rollback_window,
            main_branch: raw.main_branch,
            images: raw.images,
            stages,
            local: raw.local,
            github_repository: raw.github_repository,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if !is_name(&self.project, |c| c.is_ascii_alphanumeric() || c == '-') || !starts_with_letter(&self.project) {
            bail!(
                "project: `{}` is not a stack-name prefix; use a letter, then letters, digits or dashes",
                self.project
            );
        }
        if self.keep_images == 0 {
            bail!("keep-images: must be at least 1 (the images a rollback can reach)");
        }
        if self.keep_pr_images == 0 {
            bail!("keep-pr-images: must be at least 1 (the pull-request images `check` reads)");
        }
        if self.rollback_window == 0 {
            bail!("rollback-window: must be at least 1 (the image a stage runs)");
        }
        let bad_branch = self.main_branch.is_empty()
            || self.main_branch.starts_with(['-', '/'])
            || self.main_branch.contains(|c: char| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
            || self.main_branch.contains("..");
        if bad_branch {
            bail!("main-branch: `{}` is not a git branch name such as \"main\"", self.main_branch);
        }
        if self.images.is_empty() {
            bail!("images: none configured; add an [[workspace.metadata.xtask.images]] entry");
        }
        let mut seen = BTreeSet::new();
        for (i, image) in self.images.iter().enumerate() {
            let at = format!("images[{i}]");
            if !seen.insert(&image.name) {
                bail!("{at}.name: image `{}` is configured twice", image.name);
            }
            let lower = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
            if !is_name(&image.name, lower) || image.name.starts_with(['-', '_']) {
                bail!("{at}.name: `{}` must be lowercase letters, digits, `-` or `_`", image.name);
            }
            if !is_ecr_repository_name(&image.repository) {
                bail!("{at}.repository: `{}` is not an ECR repository name such as \"project/app\"", image.repository);
            }
            for (key, path) in [("context", &image.context), ("dockerfile", &image.dockerfile)] {
                let escapes = path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
                if escapes {
                    bail!(
                        "{at}.{key}: `{}` is outside the workspace; give a path inside it, relative to its root",
                        path.display()
                    );
                }
                // Written inside, it may still lead out through a symbolic link (committed or
                // not): where it leads is checked too, when it exists (a missing one is said
                // where it is read).
                if let (Ok(workspace), Ok(resolved)) =
                    (std::fs::canonicalize(&self.root), std::fs::canonicalize(self.root.join(path)))
                    && !resolved.starts_with(&workspace)
                {
                    bail!(
                        "{at}.{key}: `{}` leads to {}, outside the workspace, through a symbolic link; give a path inside it",
                        path.display(),
                        resolved.display()
                    );
                }
            }
            if image.port == 0 {
                bail!("{at}.port: must be the TCP port the container listens on (1-65535)");
            }
            for (key, value) in &image.build_args {
                check_build_arg(&format!("{at}.build-args.{key}"), value)?;
            }
        }
        for (name, stage) in &self.stages {
            if !is_name(name, |c| c.is_ascii_alphanumeric() || c == '-') {
                bail!("stages.{name}: a stage name may hold only letters, digits and dashes");
            }
            // Its `deployed-<stage>.<timestamp>` tags stay within a registry client's 128.
            if name.len() > 64 {
                bail!("stages.{name}: a stage name may be at most 64 characters long");
            }
            if let Some(account) = &stage.account
                && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
            {
                bail!("stages.{name}.account: `{account}` is not a 12-digit AWS account id");
            }
            for (key, value) in &stage.build_args {
                check_build_arg(&format!("stages.{name}.build-args.{key}"), value)?;
            }
            // Its errors start with the key: `stages.dev.canary-percent: …`.
            stage.rollout().map_err(|err| anyhow::anyhow!("stages.{name}.{err}"))?;
            if let Some(source) = &stage.promote_from {
                let Some(from) = self.stages.get(source) else {
                    let known: Vec<&str> = self.stages.keys().map(String::as_str).collect();
                    bail!("stages.{name}.promote-from: unknown stage `{source}`; known stages: {}", known.join(", "));
                };
                if source == name || from.promote_from.is_some() {
                    bail!(
                        "stages.{name}.promote-from: `{source}` must be a stage that builds its images (one without promote-from)"
                    );
                }
                for (key, set) in [("signing-key", &stage.signing_key), ("pr-signing-key", &stage.pr_signing_key)] {
                    if set.is_some() {
                        bail!(
                            "stages.{name}.{key}: a stage with promote-from signs nothing (it runs what `{source}` signed); remove the key"
                        );
                    }
                }
            }
            let keys = [&stage.signing_key, &stage.pr_signing_key].into_iter().flatten();
            for (key, value) in ["signing-key", "pr-signing-key"].iter().zip(keys) {
                if value.trim().is_empty() || value.contains(char::is_whitespace) {
                    bail!(
                        "stages.{name}.{key}: `{value}` is not a KMS key id, ARN or alias such as \"alias/{}-{name}-main\"",
                        self.project
                    );
                }
            }
            for (i, key) in stage.trusted_keys.iter().flatten().enumerate() {
                let at = format!("stages.{name}.trusted-keys[{i}]");
                if key.trim().is_empty() || key.contains(char::is_whitespace) {
                    bail!("{at}: `{key}` is neither a KMS key id, ARN or alias nor a .pem file");
                }
                if key.ends_with(".pem")
                    && Path::new(key).components().any(|c| !matches!(c, std::path::Component::Normal(_)))
                {
                    bail!("{at}: `{key}` must be a path inside the workspace, relative to its root");
                }
            }
        }
        if let Some(repository) = &self.github_repository {
            let parts: Vec<&str> = repository.split('/').collect();
            let part_ok = |p: &&str| is_name(p, |c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if parts.len() != 2 || !parts.iter().all(part_ok) {
                bail!("github-repository: `{repository}` is not a GitHub repository such as \"owner/name\"");
            }
        }
        Ok(())
    }

    /// The keys that sign the provenance of images pushed to `stage`; none for a stage with
    /// `promote-from`.
    pub fn signing_keys(&self, stage: &Stage) -> Option<SigningKeys> {
        if stage.promote_from.is_some() {
            return None;
        }
        let default = |kind: &str| format!("alias/{}-{}-{kind}", self.project, stage.name);
        Some(SigningKeys {
            main: stage.signing_key.clone().unwrap_or_else(|| default("main")),
            pr: stage.pr_signing_key.clone().unwrap_or_else(|| default("pr")),
        })
    }

    /// The keys whose provenance `stage` accepts: its `trusted-keys`, or else the main
    /// signing key of the stage that builds what it runs (itself, or its `promote-from`).
    pub fn trusted_keys(&self, stage: &Stage) -> Vec<TrustedKey> {
        if let Some(keys) = &stage.trusted_keys {
            return keys
                .iter()
                .map(|key| match key.ends_with(".pem") {
                    true => TrustedKey::Pem(PathBuf::from(key)),
                    false => TrustedKey::Kms { key: key.clone(), stage: stage.name.clone() },
                })
                .collect();
        }
        let builder = stage.promote_from.as_deref().and_then(|from| self.stages.get(from)).unwrap_or(stage);
        self.signing_keys(builder)
            .map(|keys| TrustedKey::Kms { key: keys.main, stage: builder.name.clone() })
            .into_iter()
            .collect()
    }

    /// The repository an image's pull-request pushes go to: `pr/<repository>`, writable by
    /// the pull-request role, never read by main's pushes.
    pub fn pr_repository(image: &Image) -> String {
        format!("pr/{}", image.repository)
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
    /// The CI stack: GitHub's OIDC provider and the roles the workflow assumes (made only
    /// where `github-repository` is set).
    pub fn ci_stack(&self, stage: &Stage) -> String {
        format!("{}-{}-ci", self.project, stage.name)
    }
}

fn is_name(name: &str, allowed: impl Fn(char) -> bool) -> bool {
    !name.is_empty() && name.chars().all(allowed)
}

fn starts_with_letter(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// ECR's rule: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`.
fn is_ecr_repository_name(name: &str) -> bool {
    name.split('/').all(|part| {
        let mut previous_separator = true;
        for c in part.chars() {
            let separator = matches!(c, '.' | '_' | '-');
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || separator) || (separator && previous_separator) {
                return false;
            }
            previous_separator = separator;
        }
        !previous_separator
    })
}

/// A build argument reaches the daemon as one value: a line break would split it.
fn check_build_arg(at: &str, value: &str) -> Result<()> {
    if value.contains(['\n', '\r', '\0']) {
        bail!("{at}: a build argument cannot hold a line break or NUL");
    }
    Ok(())
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
port = 8080
"#;

    fn error(toml: &str) -> String {
        format!("{:#}", Config::parse(Path::new("/w"), toml, &IMPLICIT).unwrap_err())
    }

    /// A stage the caller serves, as a test's own.
    const IMPLICIT: [ImplicitStage; 1] =
        [ImplicitStage { name: "here", region: "eu-north-1", account: "000000000042" }];

    #[test]
    fn implicit_stages_always_exist() {
        let config = Config::parse(Path::new("/w"), MINIMAL, &IMPLICIT).unwrap();
        let here = config.stage("here").unwrap();
        assert_eq!(here.region.as_deref(), Some("eu-north-1"));
        assert_eq!(here.account.as_deref(), Some("000000000042"));
        assert_eq!(config.service_stack(here), "p-here-service");
    }

    #[test]
    fn unknown_stage_lists_known_ones() {
        let config = Config::parse(Path::new("/w"), MINIMAL, &IMPLICIT).unwrap();
        let err = config.stage("prod").unwrap_err().to_string();
        assert!(err.contains("unknown stage `prod`; known stages: here"), "{err}");
    }

    #[test]
    fn unknown_image_is_named() {
        let config = Config::parse(Path::new("/w"), MINIMAL, &IMPLICIT).unwrap();
        let err = config.select_images(&["web".into()]).unwrap_err().to_string();
        assert_eq!(err, "unknown image `web`; configured images: app");
    }

    #[test]
    fn a_stage_trusts_the_main_key_of_the_stage_that_builds_what_it_runs() {
        let toml = format!(
            "{MINIMAL}[workspace.metadata.xtask.stages.dev]\n[workspace.metadata.xtask.stages.prod]\npromote-from = \"dev\"\n\
             [workspace.metadata.xtask.stages.qa]\ntrusted-keys = [\"keys/release.pem\", \"alias/other\"]\n"
        );
        let config = Config::parse(Path::new("/w"), &toml, &IMPLICIT).unwrap();
        let (dev, prod, qa) =
            (config.stage("dev").unwrap(), config.stage("prod").unwrap(), config.stage("qa").unwrap());
        let keys = config.signing_keys(dev).unwrap();
        assert_eq!((keys.main.as_str(), keys.pr.as_str()), ("alias/p-dev-main", "alias/p-dev-pr"));
        assert_eq!(config.signing_keys(prod), None);
        let dev_main = TrustedKey::Kms { key: "alias/p-dev-main".into(), stage: "dev".into() };
        assert_eq!(config.trusted_keys(dev), std::slice::from_ref(&dev_main));
        // Prod signs nothing and trusts dev's main key, never its pull-request key.
        assert_eq!(config.trusted_keys(prod), [dev_main]);
        assert_eq!(
            config.trusted_keys(qa),
            [
                TrustedKey::Pem("keys/release.pem".into()),
                TrustedKey::Kms { key: "alias/other".into(), stage: "qa".into() }
            ]
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_keys_path() {
        let stage = "[workspace.metadata.xtask.stages.dev]\n";
        let cases = [
            (
                "an unknown key",
                MINIMAL.replace("port = 8080", "port = 8080\nrepo = 1"),
                "images[0].repo: unknown field `repo`",
            ),
            (
                "a wrong type",
                MINIMAL.replace("port = 8080", "port = \"80\""),
                "images[0].port: invalid type: string \"80\", expected u16",
            ),
            ("a missing port", MINIMAL.replace("port = 8080", ""), "images[0]: missing field `port`"),
            ("a port of 0", MINIMAL.replace("port = 8080", "port = 0"), "images[0].port: must be the TCP port"),
            (
                "an unknown top key",
                MINIMAL.replace("project = \"p\"", "project = \"p\"\nimage = 1"),
                "image: unknown field `image`",
            ),
            ("no table", "[workspace]\nmembers = []\n".to_string(), "the table is missing"),
            (
                "a duplicate image",
                format!("{MINIMAL}{}", &MINIMAL[MINIMAL.find("[[").unwrap()..]),
                "images[1].name: image `app` is configured twice",
            ),
            (
                "an unknown platform",
                MINIMAL.replace("port = 8080", "port = 8080\nplatform = \"windows/amd64\""),
                "images[0].platform: `windows/amd64` is not supported",
            ),
            (
                "a bad repository",
                MINIMAL.replace("p/app", "P/App"),
                "images[0].repository: `P/App` is not an ECR repository name",
            ),
            (
                "a repository with a double separator",
                MINIMAL.replace("p/app", "p/a--b"),
                "is not an ECR repository name",
            ),
            (
                "a bad image name",
                MINIMAL.replace("name = \"app\"", "name = \"App\""),
                "images[0].name: `App` must be lowercase",
            ),
            (
                "a zero keep-images",
                MINIMAL.replace("project = \"p\"", "project = \"p\"\nkeep-images = 0"),
                "keep-images: must be at least 1",
            ),
            (
                "a zero rollback-window",
                MINIMAL.replace("project = \"p\"", "project = \"p\"\nrollback-window = 0"),
                "rollback-window: must be at least 1",
            ),
            (
                "a bad main-branch",
                MINIMAL.replace("project = \"p\"", "project = \"p\"\nmain-branch = \"a b\""),
                "main-branch: `a b` is not a git branch name",
            ),
            (
                "a bad project",
                MINIMAL.replace("project = \"p\"", "project = \"9p\""),
                "project: `9p` is not a stack-name prefix",
            ),
            (
                "a bad account",
                format!("{MINIMAL}{stage}account = \"42\"\n"),
                "stages.dev.account: `42` is not a 12-digit",
            ),
            (
                "a bad stage name",
                format!("{MINIMAL}[workspace.metadata.xtask.stages.\"d v\"]\n"),
                "stages.d v: a stage name may hold only",
            ),
            (
                "an unknown stage key",
                format!("{MINIMAL}{stage}regoin = \"x\"\n"),
                "stages.dev.regoin: unknown field `regoin`",
            ),
            (
                "a build argument with a newline",
                format!("{MINIMAL}{stage}build-args = {{ A = \"1\\n2\" }}\n"),
                "stages.dev.build-args.A: a build argument cannot hold a line break",
            ),
            (
                "promotion from an unknown stage",
                format!("{MINIMAL}{stage}promote-from = \"qa\"\n"),
                "stages.dev.promote-from: unknown stage `qa`; known stages: dev, here",
            ),
            (
                "promotion from itself",
                format!("{MINIMAL}{stage}promote-from = \"dev\"\n"),
                "stages.dev.promote-from: `dev` must be a stage that builds its images",
            ),
            (
                "a signing key on a promote-to stage",
                format!("{MINIMAL}{stage}promote-from = \"here\"\nsigning-key = \"alias/k\"\n"),
                "stages.dev.signing-key: a stage with promote-from signs nothing",
            ),
            (
                "a trusted key outside the workspace",
                format!("{MINIMAL}{stage}trusted-keys = [\"../k.pem\"]\n"),
                "stages.dev.trusted-keys[0]: `../k.pem` must be a path inside the workspace",
            ),
            (
                "a bad GitHub repository",
                MINIMAL.replace("project = \"p\"", "project = \"p\"\ngithub-repository = \"a/b/c\""),
                "github-repository: `a/b/c` is not a GitHub repository",
            ),
            (
                "an unknown strategy",
                format!("{MINIMAL}{stage}strategy = \"bluegreen\"\n"),
                "stages.dev.strategy: unknown variant `bluegreen`, expected one of `rolling`, `blue-green`, `canary`, `linear`",
            ),
            (
                "a step without linear",
                format!("{MINIMAL}{stage}strategy = \"canary\"\nlinear-step-minutes = 5\n"),
                "stages.dev.linear-step-minutes: applies to strategy = \"linear\" only",
            ),
            (
                "a canary percent out of range",
                format!("{MINIMAL}{stage}strategy = \"canary\"\ncanary-percent = 120\n"),
                "stages.dev.canary-percent: 120 is out of ECS's range",
            ),
            (
                "an unknown scan type",
                format!("{MINIMAL}{stage}scanning = \"inspector\"\n"),
                "stages.dev.scanning: `inspector` is not a scan type; use \"basic\"",
            ),
            ("invalid TOML", "[workspace\n".to_string(), "line 1: unclosed table, expected `]`"),
        ];
        let mut wrong = vec![];
        for (what, toml, expected) in cases {
            let err = error(&toml);
            if !err.contains(expected) || err.contains('\n') {
                wrong.push(format!("{what}: expected one line with `{expected}`, got `{err}`"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
