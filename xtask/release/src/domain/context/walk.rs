//! Walks a build context the way moby's `archive.TarWithOptions` does: depth first, each
//! directory's names in byte order, `.dockerignore` rules applied with
//! `MatchesUsingParentResults`, and an excluded directory entered only when an exception
//! pattern names something below it (its own entry is then not sent).
//!
//! Symbolic links are reported as links and never followed. Sockets, FIFOs and device nodes are
//! skipped: Docker skips sockets and would send the others as special files, which a build
//! context has no use for.

use std::{
    ffi::OsString,
    fs, io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::{EntryKind, ignore::MatchInfo, ignore::PatternMatcher};

/// One entry that goes into the build context.
#[derive(Debug)]
pub struct Node {
    /// Relative to the context root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    /// Permission bits, with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Bytes of a regular file; 0 otherwise.
    pub size: u64,
    /// Seconds since the epoch (0 before it).
    pub mtime: u64,
    /// A symbolic link's target, as stored.
    pub target: Option<OsString>,
    /// `(device, inode)` of a regular file that has other hard links.
    pub inode: Option<(u64, u64)>,
    /// What the walk saw of a regular file, which its read must still find.
    pub listed: Option<super::beneath::Listed>,
}

/// Calls `visit` for each included entry of the context at `root`, in Docker's order.
pub fn walk(root: &Path, matcher: &PatternMatcher, visit: &mut dyn FnMut(Node) -> io::Result<()>) -> io::Result<()> {
    let names = list(root).map_err(|e| at(root, "list the build context directory", e))?;
    walk_dir(root, "", names, &MatchInfo::default(), matcher, visit)
}

fn walk_dir(
    dir: &Path,
    rel_dir: &str,
    names: Vec<OsString>,
    parent: &MatchInfo,
    matcher: &PatternMatcher,
    visit: &mut dyn FnMut(Node) -> io::Result<()>,
) -> io::Result<()> {
    for name in names {
        let abs = dir.join(&name);
        let (name, utf8) = match name.to_str() {
            Some(name) => (name.to_string(), true),
            None => (name.to_string_lossy().into_owned(), false),
        };
        let rel = if rel_dir.is_empty() { name } else { format!("{rel_dir}/{name}") };
        let Some((meta, kind)) = stat(&abs)? else { continue };
        let (excluded, info) = matcher.matches_using_parent_results(&rel, parent);
        if excluded {
            let enter = kind == EntryKind::Dir && matcher.exception_may_match_below(&rel);
            if enter {
                // Docker ignores an unreadable directory it only looks into for exceptions.
                if let Ok(names) = list(&abs) {
                    walk_dir(&abs, &rel, names, &info, matcher, visit)?;
                }
            }
            continue;
        }
        if !utf8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "cannot send {} in the build context: its name is not valid UTF-8; rename it or exclude it in .dockerignore",
                    abs.display()
                ),
            ));
        }
        let target = match kind {
            EntryKind::Symlink => Some(fs::read_link(&abs).map_err(|e| at(&abs, "read the symbolic link", e))?.into()),
            _ => None,
        };
        let node = Node {
            rel: rel.clone(),
            abs: abs.clone(),
            kind,
            mode: match kind {
                EntryKind::Symlink => 0o777,
                _ => meta.permissions().mode() & 0o7777,
            },
            size: if kind == EntryKind::File { meta.len() } else { 0 },
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
            target,
            inode: (kind == EntryKind::File && meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
            listed: (kind == EntryKind::File).then(|| super::beneath::Listed::of(&meta)),
        };
        visit(node)?;
        if kind == EntryKind::Dir {
            let names = list(&abs).map_err(|e| at(&abs, "list the directory", e))?;
            walk_dir(&abs, &rel, names, &info, matcher, visit)?;
        }
    }
    Ok(())
}

/// An entry's metadata (not following a link) and kind; `None` for one removed since its
/// directory was listed (Docker skips it too) and for sockets, FIFOs and device nodes.
pub fn stat(abs: &Path) -> io::Result<Option<(fs::Metadata, EntryKind)>> {
    let meta = match fs::symlink_metadata(abs) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(abs, "read the metadata of", e)),
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_symlink() {
        EntryKind::Symlink
    } else {
        return Ok(None);
    };
    Ok(Some((meta, kind)))
}

/// A directory's entry names, sorted by their bytes (Go's `os.ReadDir` order).
pub fn list(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?.map(|entry| entry.map(|e| e.file_name())).collect::<io::Result<Vec<_>>>()?;
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    Ok(names)
}

/// An I/O error that names the path and says what was being done.
pub fn at(path: &Path, doing: &str, error: io::Error) -> io::Error {
    let hint = match error.kind() {
        io::ErrorKind::PermissionDenied => "; make it readable or exclude it in .dockerignore",
        _ => "",
    };
    io::Error::new(error.kind(), format!("cannot {doing} {}: {error}{hint}", path.display()))
}
