//! The work tree's tag: HEAD's commit, or a dirty tag when the work tree, or anything a
//! build context would send, is not what the commit holds.

use std::path::PathBuf;

use anyhow::Result;

use crate::{
    clients::git::{Git, ImageTag},
    domain::{config::Config, context::BuildContext},
};

/// The tag images built from the work tree get now (see [`Git::work_tree_tag`]): a file
/// an image's context sends that HEAD does not hold (git-ignored, say `app/.env`) makes
/// the tree dirty, as a changed file does.
pub fn tag(config: &Config, git: &Git, allow_dirty: bool) -> Result<ImageTag> {
    git.work_tree_tag(allow_dirty, &stray_files(config, git)?)
}

/// The files the images' build contexts send that HEAD does not hold, relative to the work
/// tree, sorted, each once. A context that cannot be read or listed sends nothing: no image
/// is built from it, and its error is the one keying or building the image reports.
pub fn stray_files(config: &Config, git: &Git) -> Result<Vec<String>> {
    let mut sent: Vec<PathBuf> = vec![];
    for image in &config.images {
        let dockerfile = config.root.join(&image.dockerfile);
        let Ok(context) = BuildContext::new(&config.root.join(&image.context), &dockerfile) else { continue };
        let Ok(files) = context.sent_files() else { continue };
        sent.extend(files.into_iter().map(|rel| context.root().join(rel)));
    }
    let mut stray = git.not_in_head(&sent)?;
    stray.dedup();
    Ok(stray)
}
