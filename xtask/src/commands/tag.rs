//! `cargo xtask tag`: the image tag of a commit.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::output;
use xtask_release::{clients::git::Git, domain::workspace::Workspace, workflows::work_tree};

/// Print the image tag for REV: the commit's full 40-hex SHA and nothing else,
/// so scripts can use `$(cargo xtask tag)`.
///
/// Without --rev the tag is for the work tree at HEAD, which must be clean:
/// modified, staged or untracked (not ignored) files, and files a build context would send
/// that the commit does not hold (git-ignored ones too), are listed and refused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Commit to tag (SHA, branch, tag, `HEAD~1`, ...). The work tree does not matter then.
    #[arg(long, value_name = "REV")]
    rev: Option<String>,
    /// Accept a dirty work tree; the tag becomes `<sha>-dirty-<8 hex of the changes>`,
    /// which never equals a clean commit's tag and is refused by deploys to non-local stages.
    #[arg(long, conflicts_with = "rev")]
    allow_dirty: bool,
}

impl Args {
    pub fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let git = Git::open(&ws.root)?;
        let tag = match &self.rev {
            Some(rev) => git.resolve(rev)?,
            None => work_tree::tag(&ws.config, &git, self.allow_dirty)?.to_string(),
        };
        output::text(&format!("{tag}\n"))?;
        Ok(ExitCode::SUCCESS)
    }
}
