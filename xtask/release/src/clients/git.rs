//! Commit identity: which commit an image is built from, and whether the work
//! tree still matches it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use git2::{ErrorCode, Repository, Status, StatusOptions};
use sha2::{Digest, Sha256};

/// The tag an image built from the work tree gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTag {
    /// Full 40-hex SHA of the commit.
    pub commit: String,
    /// `Some(8 hex)` when the tag was made from a dirty work tree with `--allow-dirty`.
    pub dirty: Option<String>,
}

impl ImageTag {
    pub fn is_dirty(&self) -> bool {
        self.dirty.is_some()
    }
}

impl std::fmt::Display for ImageTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dirty {
            None => f.write_str(&self.commit),
            Some(hash) => write!(f, "{}-dirty-{hash}", self.commit),
        }
    }
}

pub struct Git {
    repo: Repository,
}

impl Git {
    pub fn open(dir: &Path) -> Result<Git> {
        let repo = Repository::discover(dir).map_err(|err| {
            anyhow::anyhow!(
                "{} is not inside a git repository ({}); images are tagged by commit, so run this from a git checkout",
                dir.display(),
                err.message()
            )
        })?;
        Ok(Git { repo })
    }

    /// The full SHA of `rev` (a branch, tag, short SHA, `HEAD~2`, ...).
    pub fn resolve(&self, rev: &str) -> Result<String> {
        let object = match self.repo.revparse_single(rev) {
            Ok(object) => object,
            Err(_) if self.is_unborn() => {
                bail!("the repository has no commits yet; commit the work tree first")
            }
            Err(err) if err.code() == ErrorCode::NotFound || err.code() == ErrorCode::Ambiguous => {
                bail!("unknown revision `{rev}` ({}); give a commit SHA, branch or tag that exists", err.message())
            }
            Err(err) => return Err(err).with_context(|| format!("cannot resolve revision `{rev}`")),
        };
        let commit = object.peel_to_commit().with_context(|| format!("revision `{rev}` does not name a commit"))?;
        Ok(commit.id().to_string())
    }

    fn is_unborn(&self) -> bool {
        matches!(self.repo.head(), Err(err) if err.code() == ErrorCode::UnbornBranch)
    }

    /// Paths that differ from HEAD: modified, staged, deleted, or untracked and not ignored.
    pub fn dirty_paths(&self) -> Result<Vec<(String, &'static str)>> {
        let mut options = StatusOptions::new();
        options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false).exclude_submodules(false);
        let statuses = self.repo.statuses(Some(&mut options)).context("cannot read git status")?;
        let mut paths: Vec<(String, &'static str)> = statuses
            .iter()
            .filter(|entry| entry.status() != Status::CURRENT && !entry.status().is_ignored())
            .map(|entry| {
                let path = String::from_utf8_lossy(entry.path_bytes()).into_owned();
                (path, describe(entry.status()))
            })
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The tag for an image built from the work tree at HEAD.
    ///
    /// `stray`: files (relative to the work tree) that a build context sends and HEAD does
    /// not hold, git-ignored ones among them ([`Self::not_in_head`]): an image tagged with the
    /// commit must hold the commit's files and no others, so they make the tree dirty too.
    /// A dirty tree is refused unless `allow_dirty`, in which case the tag gets a
    /// suffix derived from the dirty content so it can never equal a clean commit's tag.
    pub fn work_tree_tag(&self, allow_dirty: bool, stray: &[String]) -> Result<ImageTag> {
        let commit = self.resolve("HEAD")?;
        let mut dirty = self.dirty_paths()?;
        for path in stray {
            if !dirty.iter().any(|(dirty, _)| dirty == path) {
                dirty.push((path.clone(), "not in the commit, sent by a build context"));
            }
        }
        if dirty.is_empty() {
            return Ok(ImageTag { commit, dirty: None });
        }
        if !allow_dirty {
            let list: Vec<String> = dirty.iter().map(|(path, what)| format!("  {what}: {path}")).collect();
            let fix = if stray.is_empty() {
                "commit or stash them"
            } else {
                "commit or stash them, exclude the files a build context must not send in its .dockerignore"
            };
            bail!(
                "the work tree has changes that are not in commit {}; {fix} (or pass --allow-dirty for a local-only tag):\n{}",
                crate::support::text::prefix(&commit, 12),
                list.join("\n")
            );
        }
        let hash = self.dirty_hash(&dirty)?;
        Ok(ImageTag { commit, dirty: Some(hash) })
    }

    /// Those of `paths` (absolute, or relative to the work tree) that HEAD's tree does not
    /// hold, relative to the work tree: untracked files, git-ignored ones among them.
    pub fn not_in_head(&self, paths: &[std::path::PathBuf]) -> Result<Vec<String>> {
        let workdir = self.repo.workdir().context("a bare repository has no work tree to build from")?;
        let workdir = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
        let tree = match self.repo.head() {
            Ok(head) => Some(head.peel_to_tree().context("cannot read the tree of HEAD")?),
            Err(err) if err.code() == ErrorCode::UnbornBranch => None,
            Err(err) => return Err(err).context("cannot read HEAD"),
        };
        // Each directory's tree is looked up once, then each file by name in it: a lookup
        // by full path walks from the root again for every file of a context.
        let mut dirs: std::collections::HashMap<&Path, Option<git2::Tree<'_>>> = std::collections::HashMap::new();
        let mut missing = vec![];
        for path in paths {
            let rel = path.strip_prefix(&workdir).unwrap_or(path);
            let held = match (&tree, rel.parent(), rel.file_name()) {
                (Some(root), Some(dir), Some(name)) => {
                    let dir_tree = dirs.entry(dir).or_insert_with(|| self.subtree(root, dir));
                    dir_tree.as_ref().is_some_and(|t| t.get_name_bytes(name.as_encoded_bytes()).is_some())
                }
                _ => false,
            };
            if !held {
                missing.push(rel.to_string_lossy().into_owned());
            }
        }
        missing.sort();
        Ok(missing)
    }

    /// The tree at `dir` (relative; empty for `root` itself) under `root`, if `root` holds one there.
    fn subtree<'r>(&'r self, root: &git2::Tree<'r>, dir: &Path) -> Option<git2::Tree<'r>> {
        if dir.as_os_str().is_empty() {
            return Some(root.clone());
        }
        let entry = root.get_path(dir).ok()?;
        self.repo.find_tree(entry.id()).ok()
    }

    /// 8 hex of a hash over the dirty paths and their current content.
    fn dirty_hash(&self, dirty: &[(String, &'static str)]) -> Result<String> {
        let workdir = self.repo.workdir().context("a bare repository has no work tree to build from")?;
        let mut hasher = Sha256::new();
        for (path, what) in dirty {
            hasher.update(path.as_bytes());
            hasher.update([0]);
            hasher.update(what.as_bytes());
            hasher.update([0]);
            let full = workdir.join(path);
            if full.is_file() {
                let oid = git2::Oid::hash_file(git2::ObjectType::Blob, &full)
                    .with_context(|| format!("cannot read {}", full.display()))?;
                hasher.update(oid.as_bytes());
            }
            hasher.update([0]);
        }
        Ok(format!("{:x}", hasher.finalize())[..8].to_string())
    }

    /// Where the source lives, for the `org.opencontainers.image.source` label:
    /// the `origin` remote's URL, or empty.
    pub fn source_url(&self) -> String {
        self.repo
            .find_remote("origin")
            .ok()
            .and_then(|remote| remote.url().ok().map(without_userinfo))
            .unwrap_or_default()
    }

    /// Is `commit` on `branch`: reachable from `refs/remotes/origin/<branch>` or from
    /// `refs/heads/<branch>`?
    pub fn is_on_branch(&self, commit: &str, branch: &str) -> Result<bool> {
        for name in [format!("refs/remotes/origin/{branch}"), format!("refs/heads/{branch}")] {
            let Ok(reference) = self.repo.find_reference(&name) else { continue };
            let Ok(tip) = reference.peel_to_commit() else { continue };
            if self.is_ancestor(commit, &tip.id().to_string())? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The subject line of `sha`, when this clone has the commit.
    pub fn subject(&self, sha: &str) -> Option<String> {
        let oid = git2::Oid::from_str(sha).ok()?;
        let commit = self.repo.find_commit(oid).ok()?;
        commit.summary().ok().flatten().map(str::to_owned)
    }

    /// `commit`'s first-parent ancestors, nearest first, at most `limit` (not `commit` itself).
    pub fn first_parents(&self, commit: &str, limit: usize) -> Result<Vec<String>> {
        let mut commit = self.repo.find_commit(git2::Oid::from_str(commit)?)?;
        let mut out = vec![];
        while out.len() < limit {
            let Ok(parent) = commit.parent(0) else { break };
            out.push(parent.id().to_string());
            commit = parent;
        }
        Ok(out)
    }

    /// The paths that differ between the trees of commits `from` and `to`.
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>> {
        let tree =
            |sha: &str| -> Result<git2::Tree<'_>> { Ok(self.repo.find_commit(git2::Oid::from_str(sha)?)?.tree()?) };
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&tree(from)?), Some(&tree(to)?), None)
            .context("cannot compare the trees of two commits")?;
        let mut paths = vec![];
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(path) = file.path().and_then(|p| p.to_str())
                    && !paths.iter().any(|known| known == path)
                {
                    paths.push(path.to_string());
                }
            }
        }
        Ok(paths)
    }

    /// The commits reachable from `to` and not from `from`, newest first, at most `limit`:
    /// `(sha, subject)`.
    pub fn commits_between(&self, from: &str, to: &str, limit: usize) -> Result<Vec<(String, String)>> {
        let mut walk = self.repo.revwalk().context("cannot walk the history")?;
        walk.push(git2::Oid::from_str(to)?)?;
        walk.hide(git2::Oid::from_str(from)?)?;
        let mut out = vec![];
        for oid in walk.take(limit) {
            let sha = oid?.to_string();
            let subject = self.subject(&sha).unwrap_or_default();
            out.push((sha, subject));
        }
        Ok(out)
    }

    /// Does this clone have commit `sha`?
    pub fn has_commit(&self, sha: &str) -> bool {
        git2::Oid::from_str(sha).is_ok_and(|oid| self.repo.find_commit(oid).is_ok())
    }

    /// Is `ancestor` an ancestor of (or equal to) `commit`?
    pub fn is_ancestor(&self, ancestor: &str, commit: &str) -> Result<bool> {
        let a = git2::Oid::from_str(ancestor).with_context(|| format!("`{ancestor}` is not a commit SHA"))?;
        let c = git2::Oid::from_str(commit).with_context(|| format!("`{commit}` is not a commit SHA"))?;
        if a == c {
            return Ok(true);
        }
        if self.repo.find_commit(a).is_err() {
            // A commit this clone lacks: not an ancestor, unless the history was cut short.
            if self.repo.is_shallow() {
                bail!(
                    "this clone is shallow and lacks commit {ancestor}, so whether it is an ancestor cannot be told; fetch the history (`git fetch --unshallow`, or `fetch-depth: 0` in actions/checkout) and retry"
                );
            }
            return Ok(false);
        }
        match self.repo.graph_descendant_of(c, a) {
            Ok(yes) => Ok(yes),
            Err(err) if err.code() == ErrorCode::NotFound => Ok(false),
            Err(err) => Err(err).context("cannot walk the commit graph"),
        }
    }
}

/// A URL without `user:password@`, so a token in a remote URL never reaches a label or a log.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn describe(status: Status) -> &'static str {
    if status.is_conflicted() {
        "conflicted"
    } else if status.is_wt_new() {
        "untracked"
    } else if status.is_index_new() {
        "added"
    } else if status.is_wt_deleted() || status.is_index_deleted() {
        "deleted"
    } else if status.is_wt_renamed() || status.is_index_renamed() {
        "renamed"
    } else if status.is_index_modified() && !status.is_wt_modified() {
        "staged"
    } else {
        "modified"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_lose_their_credentials() {
        assert_eq!(without_userinfo("https://x:ghp_secret@github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(without_userinfo("https://github.com/o/r.git"), "https://github.com/o/r.git");
        assert_eq!(without_userinfo("git@github.com:o/r.git"), "git@github.com:o/r.git");
    }
}
