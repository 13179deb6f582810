//! `cargo xtask config`: the settings as xtask resolved them.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};

use crate::commands::output;
use xtask_release::domain::workspace::Workspace;

/// Print the settings of [workspace.metadata.xtask] as xtask resolved them (defaults
/// applied, every value checked): the JSON the CDK app in infra/ reads through
/// `-c xtaskConfig=<file>`. Use it to run cdk by hand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the JSON to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let json = ws.config.resolved_json();
        match &self.out {
            Some(path) => std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?,
            None => output::text(&json)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}
