//! `cargo xtask test`: every test, against the real local stack.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::{local::Stack, workspace::Workspace};

/// Run every test: start the local stack if needed, then the Rust tests of the
/// workspace and the infra (CDK) tests.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Rust tests.
    #[arg(long)]
    rust_only: bool,
    /// Arguments passed to `cargo test` after `--` (a test name filter, `--nocapture`, ...).
    #[arg(last = true)]
    cargo_args: Vec<String>,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        Stack::new(ws).up(ws).await?;
        let sh = &ws.sh;
        let extra = &self.cargo_args;
        cmd!(sh, "cargo test --workspace --locked --no-fail-fast -- {extra...}")
            .run()
            .context("Rust tests failed")?;
        if self.rust_only {
            return Ok(ExitCode::SUCCESS);
        }
        let _infra = sh.push_dir(ws.root.join("infra"));
        if !sh.path_exists("node_modules") {
            cmd!(sh, "npm ci --no-audit --no-fund").run().context("`npm ci` in infra/ failed; is Node.js 20+ installed?")?;
        }
        // ts-jest only transpiles: the type check is its own step.
        cmd!(sh, "npm run build --silent").run().context("infra does not type-check (npm run build)")?;
        cmd!(sh, "npm test --silent").run().context("infra tests failed")?;
        Ok(ExitCode::SUCCESS)
    }
}
