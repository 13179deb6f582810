//! The `dockerfile` local of a session: a private directory holding the Dockerfile alone
//! (and its `<name>.dockerignore`, which BuildKit reads beside it), never the Dockerfile's
//! own directory. That directory may be the repository's root, with `.git/config` and files
//! the context's `.dockerignore` keeps out; a `# syntax=` frontend may ask the local for any
//! path, and finds nothing else there.

use std::{
    fs,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// The directory, removed when dropped.
pub struct DockerfileOnly {
    dir: PathBuf,
}

impl DockerfileOnly {
    /// A new directory (mode 0700, a name no other process has) under the system's temporary
    /// directory, holding copies of `dockerfile` and its `.dockerignore` if it has one, with
    /// their modes and modification times (BuildKit compares them with its cached copy).
    pub fn new(dockerfile: &Path, unique: &str) -> Result<DockerfileOnly> {
        let dir = std::env::temp_dir().join(format!("xtask-dockerfile-{unique}"));
        // `create`, not `create_all`: a directory someone made there already is refused.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("cannot create the private directory {}", dir.display()))?;
        let only = DockerfileOnly { dir };
        let name = dockerfile.file_name().context("the Dockerfile's path has no file name")?;
        let mut ignore_name = name.to_os_string();
        ignore_name.push(".dockerignore");
        for (from, required) in [(dockerfile.to_path_buf(), true), (dockerfile.with_file_name(&ignore_name), false)] {
            let meta = match fs::metadata(&from) {
                Ok(meta) => meta,
                Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).with_context(|| format!("cannot read {}", from.display())),
            };
            let to = only.dir.join(from.file_name().unwrap_or_default());
            fs::copy(&from, &to).with_context(|| format!("cannot copy {} for the build", from.display()))?;
            let copy = fs::File::options().write(true).open(&to)?;
            copy.set_modified(meta.modified()?)?;
        }
        Ok(only)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DockerfileOnly {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn holds_the_dockerfile_and_its_ignore_file_alone_and_goes_when_dropped() {
        let repo = std::env::temp_dir().join(format!("xtask-dockerfile-only-test-{}", std::process::id()));
        fs::create_dir_all(repo.join(".git")).unwrap();
        fs::write(repo.join(".git/config"), "[remote]\n").unwrap();
        fs::write(repo.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(repo.join("Dockerfile.dockerignore"), "target\n").unwrap();
        fs::write(repo.join("secret.env"), "TOKEN=1\n").unwrap();
        let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options().write(true).open(repo.join("Dockerfile")).unwrap().set_modified(when).unwrap();

        let only = DockerfileOnly::new(&repo.join("Dockerfile"), &format!("t{}", std::process::id())).unwrap();
        let dir = only.path().to_path_buf();
        assert_eq!(names(&dir), ["Dockerfile", "Dockerfile.dockerignore"]);
        assert_eq!(fs::read_to_string(dir.join("Dockerfile")).unwrap(), "FROM scratch\n");
        assert_eq!(fs::metadata(dir.join("Dockerfile")).unwrap().modified().unwrap(), when);
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&dir).unwrap().permissions()) & 0o777, 0o700);
        // A directory of that name made by someone else first is refused, not reused.
        assert!(DockerfileOnly::new(&repo.join("Dockerfile"), &format!("t{}", std::process::id())).is_err());
        drop(only);
        assert!(!dir.exists());
        fs::remove_dir_all(&repo).unwrap();
    }
}
