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
        let json = xtask_release::domain::resolved::json(&ws.config);
        match &self.out {
            Some(path) => std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?,
            None => output::text(&json)?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use xtask_local_stack::settings::IMPLICIT;
    use xtask_release::domain::{config::Config, resolved};

    /// infra's tests read `test/fixtures/config.json`, the resolved form of
    /// `test/fixtures/Cargo.toml` as this program loads it: the two must agree, as the CDK
    /// app and xtask must.
    #[test]
    fn infra_fixture_is_the_resolved_form_of_its_manifest() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let fixtures = root.join("infra/test/fixtures");
        let config = Config::load(&fixtures, &IMPLICIT).unwrap();
        let path = fixtures.join("config.json");
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, resolved::json(&config)).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == resolved::json(&config),
            "{} is stale; refresh it with `UPDATE_FIXTURES=1 cargo test -p xtask infra_fixture`",
            path.display()
        );
    }
}
