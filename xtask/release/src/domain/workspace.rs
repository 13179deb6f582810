//! The workspace this xtask serves: its root, settings and a shell rooted there.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::Shell;

use crate::domain::config::{Config, ImplicitStage};

pub struct Workspace {
    pub root: PathBuf,
    pub config: Config,
    pub sh: Shell,
    /// `--local-stack` as given, made absolute: where the local stack keeps its state, when
    /// not in this workspace's target directory (read by the local stack).
    pub local_stack: Option<PathBuf>,
}

impl Workspace {
    /// The workspace around the current directory: the nearest `Cargo.toml` upwards
    /// that has a `[workspace.metadata.xtask]` table, as cargo finds its workspace. The
    /// `implicit` stages exist whether or not the settings name them.
    pub fn find(local_stack: Option<PathBuf>, implicit: &[ImplicitStage]) -> Result<Workspace> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let root = cwd
            .ancestors()
            .find(|dir| {
                std::fs::read_to_string(dir.join("Cargo.toml"))
                    .is_ok_and(|text| text.contains("[workspace.metadata.xtask"))
            })
            .with_context(|| {
                format!(
                    "no workspace with [workspace.metadata.xtask] in its Cargo.toml around {}; run cargo xtask inside the workspace",
                    cwd.display()
                )
            })?;
        let mut ws = Workspace::at(root, implicit)?;
        ws.local_stack = local_stack.map(|dir| cwd.join(dir));
        Ok(ws)
    }

    pub fn at(root: &Path, implicit: &[ImplicitStage]) -> Result<Workspace> {
        let config = Config::load(root, implicit)?;
        let sh = Shell::new().context("cannot create a shell")?;
        sh.change_dir(root);
        Ok(Workspace { root: root.to_path_buf(), config, sh, local_stack: None })
    }

    /// `target/` of the workspace (honours CARGO_TARGET_DIR).
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }
}
