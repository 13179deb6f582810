//! The build context: `.dockerignore` rules and the tar stream sent to the daemon.
//!
//! [`BuildContext`] sends what `DOCKER_BUILDKIT=0 docker build -f DOCKERFILE DIR` would send:
//! the same `.dockerignore` reading and matching (module [`ignore`]), the same walk and
//! entry order as moby's `archive.TarWithOptions` (module `walk`), the Dockerfile and
//! `.dockerignore` always included, and a Dockerfile from outside the directory added under a
//! generated name. The tar itself is written by module `tar_stream`. Its
//! [`digest`](BuildContext::digest) is a content key of exactly what is sent, without times or
//! owners.

pub mod beneath;
pub mod ignore;
pub mod selected;
mod tar_stream;
mod walk;

use std::{
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, anyhow, bail};
use sha2::{Digest, Sha256};

use ignore::PatternMatcher;

/// A directory prepared to be sent as a Docker build context.
#[derive(Debug, Clone)]
pub struct BuildContext {
    inner: Arc<Inner>,
}

/// One entry of the context, as [`BuildContext::entries`] lists it.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the context directory, `/`-separated.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits with setuid, setgid and sticky; 0o777 for a symbolic link.
    pub mode: u32,
    /// Bytes of a regular file; 0 for directories and links.
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// Sent as a link, never followed.
    Symlink,
}

#[derive(Debug)]
pub struct Inner {
    /// The context directory, symbolic links resolved (as the CLI does).
    root: PathBuf,
    matcher: PatternMatcher,
    dockerfile: DockerfileSource,
    /// The Dockerfile, symbolic links resolved: a BuildKit session offers its directory.
    dockerfile_path: PathBuf,
}

#[derive(Debug)]
pub enum DockerfileSource {
    /// Inside the context: its path relative to the context root.
    Inside { rel: String },
    /// Outside: its content, read once, sent as `name`.
    Outside { name: String, content: Vec<u8> },
}

/// The name of a Dockerfile from outside the context, inside the stream.
const OUTSIDE_DOCKERFILE_PREFIX: &str = ".xtask-dockerfile-";

impl BuildContext {
    /// `dir`: the context directory; `dockerfile`: path to the Dockerfile (absolute or relative
    /// to the current directory, like `docker build -f`).
    pub fn new(dir: &Path, dockerfile: &Path) -> anyhow::Result<Self> {
        let root = fs::canonicalize(dir).with_context(|| {
            format!("cannot open the build context directory {}; check that the path exists", dir.display())
        })?;
        if !root.is_dir() {
            bail!(
                "the build context {} is not a directory; give the directory that holds the files to send",
                dir.display()
            );
        }
        let dockerfile_path = fs::canonicalize(dockerfile).with_context(|| {
            format!(
                "cannot find the Dockerfile {}; check the path to the Dockerfile or create it",
                dockerfile.display()
            )
        })?;
        if !dockerfile_path.is_file() {
            bail!("the Dockerfile {} is not a file; give the path of the Dockerfile itself", dockerfile.display());
        }

        let ignore_path = root.join(".dockerignore");
        let ignore_bytes = match fs::read(&ignore_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", ignore_path.display())),
        };
        let lines = ignore::read_dockerignore(&ignore_bytes).map_err(|line| {
            anyhow!("line {line} of {} is not valid UTF-8; save the file as UTF-8", ignore_path.display())
        })?;
        let mut patterns: Vec<String> = lines.iter().map(|l| l.pattern.clone()).collect();
        let user_rules = PatternMatcher::new(&patterns).map_err(|e| {
            anyhow!(
                "{e}, on line {} of {}; fix or remove that line (the syntax is Docker's: https://docs.docker.com/build/concepts/context/#dockerignore-files)",
                lines[e.index].line,
                ignore_path.display()
            )
        })?;

        let dockerfile = match dockerfile_path.strip_prefix(&root) {
            Ok(rel) => {
                let rel = rel.to_str().ok_or_else(|| {
                    anyhow!("the Dockerfile path {} is not valid UTF-8; rename it", dockerfile_path.display())
                })?;
                DockerfileSource::Inside { rel: rel.to_string() }
            }
            Err(_) => {
                let content = fs::read(&dockerfile_path)
                    .with_context(|| format!("cannot read the Dockerfile {}", dockerfile_path.display()))?;
                let name = format!("{OUTSIDE_DOCKERFILE_PREFIX}{}", &format!("{:x}", Sha256::digest(&content))[..12]);
                DockerfileSource::Outside { name, content }
            }
        };

        // The CLI's `TrimBuildFilesFromExcludes`: the daemon needs both files, so re-include them
        // if the rules exclude them (it removes them again after reading, if they are excluded).
        if user_rules.matches_legacy(".dockerignore") {
            patterns.push("!.dockerignore".to_string());
        }
        // (The CLI also appends `!../path/Dockerfile` for one outside the context; that pattern
        // can match nothing inside it, so it is left out.)
        if let DockerfileSource::Inside { rel } = &dockerfile
            && PatternMatcher::new(&patterns)?.matches_legacy(rel)
        {
            patterns.push(format!("!{rel}"));
        }
        let matcher = PatternMatcher::new(&patterns)?;
        Ok(BuildContext { inner: Arc::new(Inner { root, matcher, dockerfile, dockerfile_path }) })
    }

    /// The same context with `content` sent as its Dockerfile (under a generated name, as a
    /// Dockerfile from outside the context is): what the classic builder gets when the
    /// Dockerfile needs rewriting for it. The context's [`digest`](Self::digest) changes;
    /// the image's inputs are keyed by the original.
    pub fn with_dockerfile(&self, content: Vec<u8>) -> BuildContext {
        let name = format!("{OUTSIDE_DOCKERFILE_PREFIX}{}", &format!("{:x}", Sha256::digest(&content))[..12]);
        BuildContext {
            inner: Arc::new(Inner {
                root: self.inner.root.clone(),
                matcher: self.inner.matcher.clone(),
                dockerfile: DockerfileSource::Outside { name, content },
                dockerfile_path: self.inner.dockerfile_path.clone(),
            }),
        }
    }

    /// The Dockerfile's path, symbolic links resolved.
    pub fn dockerfile_path(&self) -> &Path {
        &self.inner.dockerfile_path
    }

    /// The value for `BuildImageOptions.dockerfile`.
    pub fn dockerfile_name(&self) -> &str {
        match &self.inner.dockerfile {
            DockerfileSource::Inside { rel } => rel,
            DockerfileSource::Outside { name, .. } => name,
        }
    }

    /// The context directory, symbolic links resolved.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where a BuildKit session finds the Dockerfile: its directory and its name there (what
    /// the docker CLI offers as the `dockerfile` local and passes as `dockerfile`).
    pub fn dockerfile_dir_and_name(&self) -> (&Path, &str) {
        let path = &self.inner.dockerfile_path;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("Dockerfile");
        (dir, name)
    }

    /// The entries of the context directory that are sent, in the order they are sent
    /// (depth first, names in byte order). A Dockerfile from outside the directory is not
    /// among them; the stream adds it under [`Self::dockerfile_name`].
    #[cfg(test)]
    pub fn entries(&self) -> anyhow::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        walk::walk(&self.inner.root, &self.inner.matcher, &mut |node| {
            entries.push(Entry { path: node.rel, kind: node.kind, mode: node.mode, size: node.size });
            Ok(())
        })
        .with_context(|| format!("cannot list the build context {}", self.inner.root.display()))?;
        Ok(entries)
    }

    /// The files and links the context sends (not its directories), `/`-separated and
    /// relative to the context directory, in the order they are sent. Reads no content.
    pub fn sent_files(&self) -> anyhow::Result<Vec<String>> {
        let mut files = Vec::new();
        walk::walk(&self.inner.root, &self.inner.matcher, &mut |node| {
            if node.kind != EntryKind::Dir {
                files.push(node.rel);
            }
            Ok(())
        })
        .with_context(|| format!("cannot list the build context {}", self.inner.root.display()))?;
        Ok(files)
    }

    /// A SHA-256 content key (lowercase hex) of what is sent: each entry's path, kind and
    /// permission bits, a file's bytes, a link's target, and the Dockerfile's name (and
    /// content, when it comes from outside the directory). Times and owners do not count, so
    /// two checkouts of the same tree have the same key.
    pub fn digest(&self) -> anyhow::Result<String> {
        Ok(self.digest_and_files()?.0)
    }

    /// [`Self::digest`] and [`Self::sent_files`] from one read of the context: the files
    /// listed are exactly those whose content the key covers.
    pub fn digest_and_files(&self) -> anyhow::Result<(String, Vec<String>)> {
        let mut files = Vec::new();
        let mut hasher = Sha256::new();
        hasher.update(b"xtask build context v1\0");
        match &self.inner.dockerfile {
            DockerfileSource::Inside { rel } => {
                hasher.update(b"dockerfile\0");
                put_bytes(&mut hasher, rel.as_bytes());
            }
            DockerfileSource::Outside { name, content } => {
                hasher.update(b"outside dockerfile\0");
                put_bytes(&mut hasher, name.as_bytes());
                put_bytes(&mut hasher, content);
            }
        }
        walk::walk(&self.inner.root, &self.inner.matcher, &mut |node| {
            hasher.update(match node.kind {
                EntryKind::File => b"f",
                EntryKind::Dir => b"d",
                EntryKind::Symlink => b"l",
            });
            put_bytes(&mut hasher, node.rel.as_bytes());
            hasher.update(node.mode.to_be_bytes());
            if node.kind != EntryKind::Dir {
                files.push(node.rel.clone());
            }
            match node.kind {
                EntryKind::File => {
                    hasher.update(node.size.to_be_bytes());
                    let file = fs::File::open(&node.abs).map_err(|e| walk::at(&node.abs, "open", e))?;
                    let read =
                        io::copy(&mut file.take(node.size), &mut hasher).map_err(|e| walk::at(&node.abs, "read", e))?;
                    if read != node.size {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} changed while it was being read; try again", node.abs.display()),
                        ));
                    }
                }
                EntryKind::Symlink => {
                    put_bytes(&mut hasher, node.target.as_deref().unwrap_or_default().as_encoded_bytes())
                }
                EntryKind::Dir => {}
            }
            Ok(())
        })
        .with_context(|| {
            format!("cannot compute the content key of the build context {}", self.inner.root.display())
        })?;
        Ok((format!("{:x}", hasher.finalize()), files))
    }

    /// The context as a tar archive, produced while it is polled, in bounded memory. An item
    /// is an error (naming the path) if reading the context fails; the stream then ends.
    pub fn stream(&self) -> impl futures_util::Stream<Item = Result<bytes::Bytes, io::Error>> + Send + 'static {
        tar_stream::TarStream::new(self.inner.clone())
    }
}

/// A length-prefixed field, so that no two different entry lists hash the same bytes.
fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        os::unix::fs::{PermissionsExt, symlink},
        path::PathBuf,
    };

    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let dir = std::env::temp_dir().join(format!("xtask-context-{name}-{}-{nanos:x}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn write(&self, rel: &str, content: &str) -> PathBuf {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, content).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn paths(ctx: &BuildContext) -> Vec<String> {
        ctx.entries().unwrap().into_iter().map(|e| e.path).collect()
    }

    /// What the tar stream holds: path -> (type, mode, content or link target).
    fn untar(ctx: &BuildContext) -> BTreeMap<String, (char, u32, Vec<u8>)> {
        let mut archive = Vec::new();
        tar_stream::write_tar(&ctx.inner, &mut archive).unwrap();
        let mut entries = BTreeMap::new();
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let path = entry.path().unwrap().to_str().unwrap().to_string();
            let kind = match header.entry_type() {
                tar::EntryType::Regular => 'f',
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                other => panic!("unexpected {other:?}"),
            };
            let mut data = Vec::new();
            if kind == 'l' || kind == 'h' {
                data = entry.link_name_bytes().unwrap().into_owned();
            } else {
                entry.read_to_end(&mut data).unwrap();
            }
            assert_eq!(header.uid().unwrap(), 0);
            entries.insert(path, (kind, header.mode().unwrap(), data));
        }
        entries
    }

    #[test]
    fn walks_in_dockers_order_and_applies_the_rules() {
        let s = Scratch::new("order");
        s.write("Dockerfile", "FROM scratch\n");
        s.write(".dockerignore", "*.log\nbuild\n!build/keep\n");
        s.write("a.txt", "a");
        s.write("a/b", "b");
        s.write("x.log", "x");
        s.write("build/out.o", "o");
        s.write("build/keep", "k");
        let ctx = BuildContext::new(&s.0, &s.0.join("Dockerfile")).unwrap();
        assert_eq!(ctx.dockerfile_name(), "Dockerfile");
        // `a` before `a.txt` (a walk, not a sort of whole paths); `build/` itself is not sent.
        assert_eq!(paths(&ctx), [".dockerignore", "Dockerfile", "a", "a/b", "a.txt", "build/keep"]);
    }

    #[test]
    fn excluded_dockerfile_and_dockerignore_are_still_sent() {
        let s = Scratch::new("always");
        s.write("docker/Dockerfile", "FROM scratch\n");
        s.write(".dockerignore", "**\n");
        s.write("src/main.rs", "");
        let ctx = BuildContext::new(&s.0, &s.0.join("docker/Dockerfile")).unwrap();
        assert_eq!(ctx.dockerfile_name(), "docker/Dockerfile");
        assert_eq!(paths(&ctx), [".dockerignore", "docker/Dockerfile"]);
    }

    #[test]
    fn tar_keeps_modes_links_and_long_names() {
        let s = Scratch::new("tar");
        s.write("Dockerfile", "FROM scratch\n");
        let script = s.write("run.sh", "#!/bin/sh\n");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let long = format!("{}/{}", "d".repeat(90), "f".repeat(90));
        s.write(&long, "long");
        symlink("/nowhere/outside", s.0.join("abs-link")).unwrap();
        let long_target = format!("../{}", "t".repeat(150));
        symlink(&long_target, s.0.join("long-link")).unwrap();
        fs::hard_link(&script, s.0.join("run-again.sh")).unwrap();
        let ctx = BuildContext::new(&s.0, &s.0.join("Dockerfile")).unwrap();
        let tar = untar(&ctx);
        // `run-again.sh` sorts first ('-' < '.'), so `run.sh` is the hard link.
        assert_eq!(tar["run-again.sh"], ('f', 0o755, b"#!/bin/sh\n".to_vec()));
        assert_eq!(tar["run.sh"], ('h', 0o755, b"run-again.sh".to_vec()));
        assert_eq!(tar[&long], ('f', 0o644 & tar[&long].1, b"long".to_vec()));
        assert_eq!(tar["abs-link"], ('l', 0o777, b"/nowhere/outside".to_vec()));
        assert_eq!(tar["long-link"], ('l', 0o777, long_target.into_bytes()));
        assert_eq!(tar[&"d".repeat(90)].0, 'd');
        // Entries list a hard link as the file it is.
        let entries = ctx.entries().unwrap();
        let again = entries.iter().find(|e| e.path == "run.sh").unwrap();
        assert_eq!((again.kind, again.mode, again.size), (EntryKind::File, 0o755, 10));
    }

    #[test]
    fn outside_dockerfile_gets_a_generated_name_and_is_named_in_dockerignore() {
        let s = Scratch::new("outside");
        let dockerfile = s.write("docker/Dockerfile", "FROM scratch\nCOPY . /\n");
        s.write("ctx/file", "f");
        let ctx = BuildContext::new(&s.0.join("ctx"), &dockerfile).unwrap();
        let name = ctx.dockerfile_name().to_string();
        assert!(name.starts_with(".xtask-dockerfile-") && name.len() == ".xtask-dockerfile-".len() + 12, "{name}");
        assert_eq!(paths(&ctx), ["file"]);
        let tar = untar(&ctx);
        assert_eq!(tar[&name].2, b"FROM scratch\nCOPY . /\n");
        assert_eq!(tar[".dockerignore"].2, format!(".dockerignore\n{name}\n").into_bytes());

        // With a .dockerignore of its own, the name is appended to it.
        s.write("ctx/.dockerignore", "*.log");
        let tar = untar(&BuildContext::new(&s.0.join("ctx"), &dockerfile).unwrap());
        assert_eq!(tar[".dockerignore"].2, format!("*.log\n{name}\n").into_bytes());
    }

    #[test]
    fn digest_ignores_times_and_follows_content_modes_and_rules() {
        let s = Scratch::new("digest");
        s.write("Dockerfile", "FROM scratch\n");
        let file = s.write("src/a.txt", "a");
        let key = |s: &Scratch| BuildContext::new(&s.0, &s.0.join("Dockerfile")).unwrap().digest().unwrap();
        let first = key(&s);
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

        // Same content written again later: same key.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::write(&file, "a").unwrap();
        assert_eq!(key(&s), first);

        fs::write(&file, "b").unwrap();
        let changed = key(&s);
        assert_ne!(changed, first);

        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        let executable = key(&s);
        assert_ne!(executable, changed);

        // An excluded file does not count; the rules file itself does.
        s.write(".dockerignore", "*.tmp\n");
        let with_rules = key(&s);
        assert_ne!(with_rules, executable);
        s.write("junk.tmp", "junk");
        assert_eq!(key(&s), with_rules);
    }

    #[test]
    fn errors_name_the_path_and_the_fix() {
        let s = Scratch::new("errors");
        s.write("Dockerfile", "FROM scratch\n");
        let missing = BuildContext::new(&s.0.join("nope"), &s.0.join("Dockerfile")).unwrap_err();
        assert!(format!("{missing:#}").contains("nope"), "{missing:#}");
        let no_dockerfile = BuildContext::new(&s.0, &s.0.join("Dockerfile.prod")).unwrap_err();
        let message = format!("{no_dockerfile:#}");
        assert!(message.contains("Dockerfile.prod") && message.contains("create it"), "{message}");
        s.write(".dockerignore", "# rules\nok\n\n[z-a]\n");
        let bad = BuildContext::new(&s.0, &s.0.join("Dockerfile")).unwrap_err();
        let message = format!("{bad:#}");
        assert!(message.contains("line 4") && message.contains("[z-a]"), "{message}");
    }

    #[test]
    fn stream_sends_chunks_survives_a_drop_and_errors_name_the_path() {
        use futures_util::StreamExt;
        let s = Scratch::new("stream");
        s.write("Dockerfile", "FROM scratch\n");
        // Bigger than the channel holds, so the producer must block.
        s.write("big", &"x".repeat(3 * 1024 * 1024));
        let ctx = BuildContext::new(&s.0, &s.0.join("Dockerfile")).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut stream = Box::pin(ctx.stream());
            let first = stream.next().await.unwrap().unwrap();
            assert_eq!(first.len(), 64 * 1024);
            drop(stream);

            let mut total = 0;
            let mut stream = Box::pin(ctx.stream());
            while let Some(chunk) = stream.next().await {
                total += chunk.unwrap().len();
            }
            assert_eq!(total % 512, 0);
            assert!(total > 3 * 1024 * 1024);

            // A name Docker could send but a String cannot hold fails the stream, naming the file.
            use std::os::unix::ffi::OsStrExt;
            let bad = s.0.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name"));
            fs::write(&bad, "b").unwrap();
            let mut stream = Box::pin(ctx.stream());
            let mut error = None;
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    error = Some(e);
                }
            }
            let error = error.expect("an entry that cannot be sent must fail the stream");
            let secret = bad;
            assert!(error.to_string().contains(&secret.display().to_string()), "{error}");
        });
    }
}
