//! The work tree's tag: HEAD's commit, or a dirty tag when the work tree, or anything a
//! build context would send, is not what the commit holds.

use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::{
    clients::git::{Git, ImageTag},
    domain::{config::Config, context::BuildContext},
};

/// The tag images built from the work tree get now (see [`Git::work_tree_tag`]): a file
/// an image's context sends that HEAD does not hold (git-ignored, say `app/.env`) makes
/// the tree dirty, as a changed file does.
pub fn tag(config: &Config, git: &Git, allow_dirty: bool) -> Result<ImageTag> {
    // No commit is the clearer error than any context's.
    git.resolve("HEAD")?;
    git.work_tree_tag(allow_dirty, &stray_files(config, git)?)
}

/// The files the images' build contexts send that HEAD does not hold, relative to the work
/// tree, sorted, each once.
pub fn stray_files(config: &Config, git: &Git) -> Result<Vec<String>> {
    let mut sent: Vec<PathBuf> = vec![];
    for image in &config.images {
        let context = BuildContext::new(&config.root.join(&image.context), &config.root.join(&image.dockerfile))
            .with_context(|| format!("image `{}`: cannot read its build context", image.name))?;
        sent.extend(context.sent_files()?.into_iter().map(|rel| context.root().join(rel)));
    }
    let mut stray = git.not_in_head(&sent)?;
    stray.dedup();
    Ok(stray)
}
