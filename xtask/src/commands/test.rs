//! `cargo xtask test`: the tidy gate and every test, against the real local stack.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::commands::stage_args::LocalStackArgs;
use xtask_local_stack::Stack;
use xtask_release::domain::workspace::Workspace;

/// Run the tidy gate and every test: `cargo fmt --check` and `cargo clippy --all-targets
/// -- -D warnings` in this workspace and in each service's (an image context with a
/// Cargo.toml), `cfn-lint` over every stage's synthesized templates and `zizmor` over the
/// GitHub workflows, the services' own tests, then (starting the local stack if needed) the
/// Rust tests of this workspace, then infra's type check (`tsc --noEmit`) and its tests.
///
/// Tests that need Docker fail when no daemon answers, unless XTASK_SKIP_DOCKER_TESTS=1
/// (then they are skipped, each with a printed reason). The Docker engine is the one
/// DOCKER_HOST names, as for every command.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Rust tests (and the tidy gate).
    #[arg(long)]
    rust_only: bool,
    /// Only the tests whose outcome depends on the Docker engine (builds, BuildKit sessions,
    /// pushes, interrupted builds and uploads), without the tidy gate: what a second engine runs.
    #[arg(long, conflicts_with = "rust_only")]
    engine_only: bool,
    #[command(flatten)]
    local: LocalStackArgs,
    /// Arguments passed to the test binaries after `--` (a test name filter, `--nocapture`, ...).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let sh = &ws.sh;
        if self.engine_only {
            let stack = Stack::new(ws);
            stack.up(ws, &self.local.debian_mirror).await?;
            describe_engine().await;
            let (filters, extra) = (ENGINE_TESTS, &self.cargo_args);
            without_cargo_run_vars(cmd!(
                sh,
                "cargo test --package xtask --test it --locked --no-fail-fast -- {filters...} {extra...}"
            ))
            .env("XTASK_LOCAL_STACK", stack.dir())
            .run()
            .context("Rust tests failed")?;
            return Ok(ExitCode::SUCCESS);
        }
        let services = service_workspaces(ws);
        // One target directory for the services: they share most of their dependencies.
        let services_target = ws.root.join("target").join("services");
        for dir in std::iter::once(&ws.root).chain(&services) {
            let _dir = sh.push_dir(dir);
            let at = dir.strip_prefix(&ws.root).unwrap_or(dir).display().to_string();
            let at = if at.is_empty() { String::from(".") } else { at };
            let target = if *dir == ws.root { ws.root.join("target") } else { services_target.clone() };
            without_cargo_run_vars(cmd!(sh, "cargo fmt --all --check"))
                .run()
                .with_context(|| format!("the code in {at} is not formatted; run `cargo fmt --all` there"))?;
            without_cargo_run_vars(cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings"))
                .env("CARGO_TARGET_DIR", &target)
                .run()
                .with_context(|| format!("clippy found problems in {at}; fix them (or `cargo clippy --fix`)"))?;
        }
        lint_infra_and_workflows(ws)?;
        for dir in &services {
            let _dir = sh.push_dir(dir);
            without_cargo_run_vars(cmd!(sh, "cargo test --workspace --locked --no-fail-fast"))
                .env("CARGO_TARGET_DIR", &services_target)
                .run()
                .with_context(|| format!("the tests of {} failed", dir.display()))?;
        }
        let stack = Stack::new(ws);
        stack.up(ws, &self.local.debian_mirror).await?;
        describe_engine().await;
        let extra = &self.cargo_args;
        without_cargo_run_vars(cmd!(sh, "cargo test --workspace --locked --no-fail-fast -- {extra...}"))
            .env("XTASK_LOCAL_STACK", stack.dir())
            .run()
            .context("Rust tests failed")?;
        if self.rust_only {
            return Ok(ExitCode::SUCCESS);
        }
        let _infra = sh.push_dir(ws.root.join("infra"));
        // ts-jest only transpiles: the type check is its own step.
        cmd!(sh, "npx tsc --noEmit").run().context("infra does not type-check (tsc --noEmit)")?;
        cmd!(sh, "npx jest --ci").run().context("infra tests failed")?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The linters of the tidy gate beyond Rust's: every stack of every stage, synthesized in one
/// process (`infra/bin/synth-all.ts`: this workspace's stages and infra's test fixture, whose
/// stages get their CI stacks), checked by `cfn-lint` (warnings it should not report are
/// ignored in `infra/.cfnlintrc.yaml`, each with its reason); and the GitHub workflows,
/// checked by `zizmor --offline`. Installs infra's packages first if they are missing.
fn lint_infra_and_workflows(ws: &Workspace) -> Result<()> {
    let sh = &ws.sh;
    let _infra = sh.push_dir(ws.root.join("infra"));
    if !sh.path_exists("node_modules") {
        cmd!(sh, "npm ci --no-audit --no-fund")
            .run()
            .context("`npm ci` in infra/ failed; is Node.js 20+ installed?")?;
    }
    let dir = ws.target_dir().join("infra-lint");
    sh.create_dir(&dir)?;
    let config = dir.join("workspace.json");
    sh.write_file(&config, xtask_release::domain::resolved::json(&ws.config))?;
    let synth = dir.join("synth");
    cmd!(sh, "npx tsx bin/synth-all.ts {synth} {config} test/fixtures/config.json")
        .run()
        .context("synthesizing every stage's stacks failed (infra/bin/synth-all.ts)")?;
    // cfn-lint expands the pattern itself.
    let templates = synth.join("**").join("*.template.json");
    const PIN: &str = "python3 -m pip install 'cfn-lint==1.58.0' 'zizmor==1.32.0'";
    cmd!(sh, "cfn-lint --version")
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("cfn-lint is not installed; install it with `{PIN}`"))?;
    cmd!(sh, "cfn-lint {templates}").run().context(
        "cfn-lint found problems in the synthesized templates (above); fix the stacks in infra/lib, \
         or ignore a warning in infra/.cfnlintrc.yaml saying why",
    )?;
    let _root = sh.push_dir(&ws.root);
    cmd!(sh, "zizmor --version")
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("zizmor is not installed; install it with `{PIN}`"))?;
    cmd!(sh, "zizmor --offline --quiet .github/workflows/")
        .run()
        .context("zizmor found problems in .github/workflows/ (above); fix them, or justify one inline with `# zizmor: ignore[<audit>]`")?;
    Ok(())
}

/// `cmd` (a cargo) without the variables `cargo xtask` was given for this package.
fn without_cargo_run_vars(mut cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_set_by_cargo_run) {
            cmd = cmd.env_remove(name);
        }
    }
    cmd
}

/// Set by `cargo run` (so by `cargo xtask`) for the package it runs: never for a cargo this
/// command starts. Build scripts that read them (ring's, through `cc`: CARGO_MANIFEST_DIR,
/// CARGO_PKG_NAME, ...) take a change as a reason to run again, so the cargo started here
/// and the next `cargo xtask` would each rebuild ring and everything above it.
fn is_set_by_cargo_run(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_"].iter().any(|prefix| name.starts_with(prefix))
        || ["CARGO_CRATE_NAME", "CARGO_BIN_NAME", "CARGO_PRIMARY_PACKAGE"].contains(&name)
}

/// The integration-test modules whose outcome depends on the Docker engine: builds and their
/// `.dockerignore` parity with buildx, BuildKit sessions, the build cache on an empty daemon,
/// pushes, and builds or uploads interrupted. The rest talk to the registry, the AWS API and
/// cdk the same way whatever the engine.
const ENGINE_TESTS: &[&str] = &["app_image::", "build_cache::", "dockerignore::", "interrupt::", "push::"];

/// Which engine the Docker tests run on: each run names it, so a log tells engines apart.
async fn describe_engine() {
    if let Ok(docker) = xtask_release::clients::docker::connect().await {
        eprintln!("Docker engine under test: {}", xtask_release::clients::docker::describe(&docker).await);
    }
}

/// The Cargo workspaces of the services: each image context that holds a Cargo.toml.
fn service_workspaces(ws: &Workspace) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = ws
        .config
        .images
        .iter()
        .map(|image| ws.root.join(&image.context))
        .filter(|dir| *dir != ws.root && dir.join("Cargo.toml").is_file())
        .collect();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_variables_cargo_run_sets_for_its_package_are_known_and_no_others() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR"] {
            assert!(super::is_set_by_cargo_run(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_INCREMENTAL", "PATH"] {
            assert!(!super::is_set_by_cargo_run(name), "{name}");
        }
    }

    /// A renamed test module would silently drop out of the second engines' runs.
    #[test]
    fn engine_tests_name_modules_of_the_integration_tests() {
        let main = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/main.rs")).unwrap();
        for filter in super::ENGINE_TESTS {
            let module = filter.trim_end_matches("::");
            assert!(main.lines().any(|l| l.trim() == format!("mod {module};")), "tests/it has no module {module}");
        }
    }
}
