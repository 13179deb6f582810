//! `cargo xtask test`: the tidy gate and every test, against the real local stack.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::{commands::stage_args::LocalStackArgs, local::Stack, workspace::Workspace};

/// Run the tidy gate and every test: `cargo fmt --check` and `cargo clippy --all-targets
/// -- -D warnings`, then (starting the local stack if needed) the Rust tests of the
/// workspace, then infra's type check (`tsc --noEmit`) and its tests.
///
/// Tests that need Docker fail when no daemon answers, unless XTASK_SKIP_DOCKER_TESTS=1
/// (then they are skipped, each with a printed reason). The Docker engine is the one
/// DOCKER_HOST names, as for every command.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Rust tests (and the tidy gate).
    #[arg(long)]
    rust_only: bool,
    #[command(flatten)]
    local: LocalStackArgs,
    /// Arguments passed to the test binaries after `--` (a test name filter, `--nocapture`, ...).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let sh = &ws.sh;
        cmd!(sh, "cargo fmt --all --check").run().context("the code is not formatted; run `cargo fmt --all`")?;
        cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings")
            .run()
            .context("clippy found problems; fix them (or `cargo clippy --fix`)")?;
        let stack = Stack::new(ws);
        stack.up(ws, &self.local.debian_mirror).await?;
        // Which engine the Docker tests run on: each run names it, so a log tells engines apart.
        if let Ok(docker) = crate::docker::connect().await {
            eprintln!("Docker engine under test: {}", crate::docker::describe(&docker).await);
        }
        let extra = &self.cargo_args;
        cmd!(sh, "cargo test --workspace --locked --no-fail-fast -- {extra...}")
            .env("XTASK_LOCAL_STACK", stack.dir())
            .run()
            .context("Rust tests failed")?;
        if self.rust_only {
            return Ok(ExitCode::SUCCESS);
        }
        let _infra = sh.push_dir(ws.root.join("infra"));
        if !sh.path_exists("node_modules") {
            cmd!(sh, "npm ci --no-audit --no-fund")
                .run()
                .context("`npm ci` in infra/ failed; is Node.js 20+ installed?")?;
        }
        // ts-jest only transpiles: the type check is its own step.
        cmd!(sh, "npx tsc --noEmit").run().context("infra does not type-check (tsc --noEmit)")?;
        cmd!(sh, "npx jest --ci").run().context("infra tests failed")?;
        Ok(ExitCode::SUCCESS)
    }
}
