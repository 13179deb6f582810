//! Walks a directory the way BuildKit's FileSync asks for it (fsutil's `FilterFS`): the
//! request's exclude patterns (the `.dockerignore` rules the Dockerfile frontend read) and
//! include patterns (the files it wants, e.g. `Dockerfile`), depth first, each directory's
//! names in byte order. A directory that is not itself selected, but holds something that is,
//! is sent just before the first such entry, as fsutil does.
//!
//! Symbolic links are sent as links, never followed; sockets, FIFOs and device nodes are
//! skipped, as in the tar the classic builder gets.

use std::{
    collections::HashMap,
    fs, io,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::{
    EntryKind,
    ignore::{MatchInfo, PatternMatcher},
    walk::{at, list, stat},
};

/// What the receiver asked for.
pub struct Selection {
    pub excludes: PatternMatcher,
    /// `None`: everything not excluded.
    pub includes: Option<PatternMatcher>,
}

/// One entry sent, with what fsutil's `Stat` carries.
#[derive(Debug)]
pub struct SyncEntry {
    /// Relative to the root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    /// Bytes of a regular file, length of a link's target, 0 for a directory (as `os.Lstat`
    /// reports them and fsutil sends them).
    pub size: u64,
    /// Nanoseconds since the epoch: the receiver compares it (with the size) to tell which
    /// files changed since its cached copy.
    pub mtime_nanos: i64,
    /// A symbolic link's target.
    pub link: Option<String>,
    /// For a regular file with other hard links: the path of the first one sent, which
    /// the receiver links it to (fsutil sends it so, without data).
    pub hardlink_of: Option<String>,
    /// What the walk saw of a regular file, which its read must still find.
    pub listed: Option<super::beneath::Listed>,
}

/// Calls `visit` for each selected entry under `root`, in the order fsutil sends them.
pub fn walk(root: &Path, selection: &Selection, visit: &mut dyn FnMut(SyncEntry) -> io::Result<()>) -> io::Result<()> {
    let mut walker = Walker { selection, visit, pending: Vec::new(), inodes: HashMap::new() };
    let no_parent = Parent { excluded: MatchInfo::default(), included: Some(MatchInfo::default()) };
    walker.dir(root, "", &no_parent)
}

struct Walker<'a> {
    selection: &'a Selection,
    visit: &'a mut dyn FnMut(SyncEntry) -> io::Result<()>,
    /// Directories walked into but not sent yet, outermost first.
    pending: Vec<SyncEntry>,
    /// `(device, inode)` of files with several links, and the path sent first.
    inodes: HashMap<(u64, u64), String>,
}

/// What the walk knows about a directory when it lists it.
struct Parent {
    excluded: MatchInfo,
    /// `None` once an include pattern matched the directory: all below is included.
    included: Option<MatchInfo>,
}

impl Walker<'_> {
    fn dir(&mut self, dir: &Path, rel_dir: &str, parent: &Parent) -> io::Result<()> {
        for name in list(dir).map_err(|e| at(dir, "list the directory", e))? {
            let abs = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "cannot send {} in the build context: its name is not valid UTF-8; rename it or exclude it in .dockerignore",
                        abs.display()
                    ),
                ));
            };
            let rel = if rel_dir.is_empty() { name.to_string() } else { format!("{rel_dir}/{name}") };
            let Some((meta, kind)) = stat(&abs)? else { continue };
            let is_dir = kind == EntryKind::Dir;

            // Include patterns first, as fsutil: an entry no pattern matches is not sent, and
            // a directory is walked into only if something below it could match.
            let (included, included_below) = match (&self.selection.includes, &parent.included) {
                (Some(includes), Some(info)) => {
                    let (hit, info) = includes.matches_using_parent_results(&rel, info);
                    match hit {
                        true => (true, None),
                        false => (false, Some(info)),
                    }
                }
                _ => (true, None),
            };
            if !included {
                let includes = self.selection.includes.as_ref().expect("not included without includes");
                if !is_dir || !includes.fsutil_may_match_below(&rel, false) {
                    continue;
                }
            }
            let (excluded, excluded_info) =
                self.selection.excludes.matches_using_parent_results(&rel, &parent.excluded);
            if excluded && !(is_dir && self.selection.excludes.fsutil_may_match_below(&rel, true)) {
                continue;
            }

            let entry = SyncEntry {
                rel: rel.clone(),
                abs: abs.clone(),
                kind,
                mode: meta.permissions().mode() & 0o7777,
                size: if is_dir { 0 } else { meta.len() },
                mtime_nanos: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
                link: match kind {
                    EntryKind::Symlink => {
                        let target = fs::read_link(&abs).map_err(|e| at(&abs, "read the symbolic link", e))?;
                        Some(target.to_str().map(str::to_string).ok_or_else(|| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("the target of the link {} is not valid UTF-8", abs.display()),
                            )
                        })?)
                    }
                    _ => None,
                },
                hardlink_of: None,
                listed: (kind == EntryKind::File).then(|| super::beneath::Listed::of(&meta)),
            };
            let selected = included && !excluded;
            if selected {
                self.flush_pending()?;
                let mut entry = entry;
                if kind == EntryKind::File && meta.nlink() > 1 {
                    match self.inodes.get(&(meta.dev(), meta.ino())) {
                        Some(first) => {
                            entry.hardlink_of = Some(first.clone());
                            entry.size = 0;
                        }
                        None => {
                            self.inodes.insert((meta.dev(), meta.ino()), rel.clone());
                        }
                    }
                }
                (self.visit)(entry)?;
            } else {
                self.pending.push(entry);
            }
            if is_dir {
                let here = Parent { excluded: excluded_info, included: included_below };
                match self.dir(&abs, &rel, &here) {
                    // fsutil passes over an unreadable directory it walks only to look for
                    // what its patterns might bring back.
                    Err(e) if !selected && e.kind() == io::ErrorKind::PermissionDenied => {}
                    result => result?,
                }
            }
            if !selected && is_dir {
                // Not sent: nothing below it was selected, or it was sent as a parent.
                if self.pending.last().is_some_and(|p| p.rel == rel) {
                    self.pending.pop();
                }
            }
        }
        Ok(())
    }

    /// Sends the directories walked into before the entry about to be sent.
    fn flush_pending(&mut self) -> io::Result<()> {
        for entry in self.pending.drain(..) {
            (self.visit)(entry)?;
        }
        Ok(())
    }
}
