//! Reading a file of the context as the walk listed it. Between the walk and the read, a
//! process writing into the context could swap a file, or a directory on its way, for a
//! symbolic link to something outside (as root, `/etc/shadow`), or make the file grow
//! without end. So a file is opened from the context root one component at a time, never
//! following a link (`openat` with `O_NOFOLLOW`; portable where `openat2`'s
//! `RESOLVE_BENEATH` is Linux's alone), must still be the file the walk listed (device and
//! inode), and exactly the size the walk read is sent: a change in between fails the build,
//! saying the context changed while it was sent.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Read},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
};

/// What the walk recorded of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
}

impl Listed {
    pub fn of(meta: &std::fs::Metadata) -> Listed {
        Listed { dev: meta.dev(), ino: meta.ino(), size: meta.len() }
    }
}

/// The file `rel` (relative to `root`, `/`-separated) opened beneath `root` as listed, read
/// through [`Bounded`].
pub fn open(root: &Path, rel: &str, listed: Listed) -> io::Result<Bounded> {
    let abs = root.join(rel);
    let changed = |how: &str| {
        io::Error::other(format!(
            "{} {how} since the build context was listed; the context changed while the build read it, run the build again",
            abs.display()
        ))
    };
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{rel:?} is not a path inside the context")));
    }
    let (name, dirs) = parts.split_last().expect("split gives at least one part");
    let mut dir = open_at(None, root.as_os_str().as_bytes(), libc::O_DIRECTORY)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open the build context {}: {e}", root.display())))?;
    for part in dirs {
        dir = match open_at(Some(&dir), part.as_bytes(), libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            // A link (ELOOP) or no longer a directory (ENOTDIR) on the way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Err(changed("has a symbolic link or a file on its way"));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(changed("was removed")),
            Err(e) => return Err(super::walk::at(&abs, "open", e)),
        };
    }
    // O_NONBLOCK: a FIFO swapped in must not block the open; it changes nothing for a file.
    let file = match open_at(Some(&dir), name.as_bytes(), libc::O_NOFOLLOW | libc::O_NONBLOCK) {
        Ok(fd) => File::from(fd),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(changed("was replaced by a symbolic link")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(changed("was removed")),
        Err(e) => return Err(super::walk::at(&abs, "open", e)),
    };
    let meta = file.metadata().map_err(|e| super::walk::at(&abs, "read the metadata of", e))?;
    if !meta.file_type().is_file() || meta.dev() != listed.dev || meta.ino() != listed.ino {
        return Err(changed("was replaced"));
    }
    Ok(Bounded { file: file.take(listed.size), left: listed.size, path: abs })
}

fn open_at(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a path"))?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: openat(2) with a valid directory descriptor (or AT_FDCWD) and a NUL-terminated name.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags | libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat(2) and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads exactly the size the walk listed: fails if the file is shorter (it shrank) or
/// longer (it grew) than that when read.
pub struct Bounded {
    file: io::Take<File>,
    left: u64,
    path: PathBuf,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.file.read(buf).map_err(|e| super::walk::at(&self.path, "read", e))?;
        self.left -= n as u64;
        if n == 0 {
            if self.left > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while it was being sent; run the build again", self.path.display()),
                ));
            }
            let mut more = [0u8; 1];
            if self.file.get_mut().read(&mut more).map_err(|e| super::walk::at(&self.path, "read", e))? > 0 {
                return Err(io::Error::other(format!(
                    "{} grew while it was being sent; run the build again when nothing writes to it",
                    self.path.display()
                )));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn context(test: &str) -> (Dir, PathBuf) {
        let base = std::env::temp_dir().join(format!("xtask-beneath-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("ctx/sub")).unwrap();
        fs::write(base.join("outside.txt"), "content-that-must-not-be-sent\n").unwrap();
        fs::write(base.join("ctx/sub/file.txt"), "inside\n").unwrap();
        let root = fs::canonicalize(base.join("ctx")).unwrap();
        (Dir(base), root)
    }

    fn listed(root: &Path, rel: &str) -> Listed {
        Listed::of(&fs::symlink_metadata(root.join(rel)).unwrap())
    }

    fn read(root: &Path, rel: &str, listed: Listed) -> io::Result<String> {
        let mut text = String::new();
        open(root, rel, listed)?.read_to_string(&mut text)?;
        Ok(text)
    }

    #[test]
    fn a_file_as_listed_is_read_whole() {
        let (_dir, root) = context("whole");
        let listed = listed(&root, "sub/file.txt");
        assert_eq!(read(&root, "sub/file.txt", listed).unwrap(), "inside\n");
    }

    #[test]
    fn a_file_swapped_for_a_link_out_of_the_context_is_never_read() {
        let (dir, root) = context("link");
        let listed = listed(&root, "sub/file.txt");
        fs::remove_file(root.join("sub/file.txt")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("outside.txt"), root.join("sub/file.txt")).unwrap();
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("replaced by a symbolic link") && err.contains("run the build again"), "{err}");
    }

    #[test]
    fn a_directory_on_the_way_swapped_for_a_link_is_never_followed() {
        let (dir, root) = context("dirlink");
        let listed = listed(&root, "sub/file.txt");
        // The same name and content outside, so that only the way there differs.
        fs::create_dir_all(dir.0.join("elsewhere")).unwrap();
        fs::rename(root.join("sub/file.txt"), dir.0.join("elsewhere/file.txt")).unwrap();
        fs::remove_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("elsewhere"), root.join("sub")).unwrap();
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("symbolic link or a file on its way"), "{err}");
    }

    #[test]
    fn another_file_under_the_listed_name_is_refused() {
        let (_dir, root) = context("other");
        let listed = listed(&root, "sub/file.txt");
        fs::write(root.join("sub/new.txt"), "other\n").unwrap();
        fs::rename(root.join("sub/new.txt"), root.join("sub/file.txt")).unwrap();
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("was replaced"), "{err}");
    }

    #[test]
    fn a_file_that_grew_or_shrank_since_the_walk_fails() {
        let (_dir, root) = context("size");
        let listed = listed(&root, "sub/file.txt");
        fs::OpenOptions::new().append(true).open(root.join("sub/file.txt")).unwrap().set_len(1 << 20).unwrap();
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("grew while it was being sent"), "{err}");
        fs::OpenOptions::new().write(true).open(root.join("sub/file.txt")).unwrap().set_len(2).unwrap();
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("shrank while it was being sent"), "{err}");
    }

    #[test]
    fn a_fifo_swapped_in_does_not_block() {
        let (_dir, root) = context("fifo");
        let listed = listed(&root, "sub/file.txt");
        fs::remove_file(root.join("sub/file.txt")).unwrap();
        let path = CString::new(root.join("sub/file.txt").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let err = read(&root, "sub/file.txt", listed).unwrap_err().to_string();
        assert!(err.contains("was replaced"), "{err}");
    }
}
