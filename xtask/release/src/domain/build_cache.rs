//! Build cache in ECR, for runners whose daemon starts empty.
//!
//! An image may name a `cache-stage` (the stage that compiles its dependencies). After a
//! build, `push` builds that stage on its own with `BUILDKIT_INLINE_CACHE=1` (every step is
//! already cached, so this takes seconds) and pushes it as `buildcache-<key>`; the next
//! build anywhere names that image as cache (`cachefrom`), and BuildKit takes the stage's
//! layers from ECR instead of running its steps. Inline cache and not the pushed image's
//! own: inline cache records only the layers of the image it rides on, and the final stage
//! of a multi-stage build holds none of the compiled dependencies.
//!
//! The key is what the stage is built from, read from the Dockerfile: its instructions
//! (and those of the stages it builds on), the context files it copies or binds, the base
//! images as they resolve now, the build arguments but the commit, and the platform. So a
//! change to the app's sources keeps the key, a new lock file makes a new one, and a key
//! already in ECR is never pushed again (its tag is immutable like every other). Where the
//! Dockerfile does not say which files the stage reads (a wildcard, `COPY . .`), the whole
//! context is the key. The cache never touches the image's inputs key nor its tags.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::domain::dockerfile::{self, Base};

/// Prefix of a cache image's tag; the lifecycle policy keeps the newest few.
pub const CACHE_TAG_PREFIX: &str = "buildcache-";

/// The build argument that makes BuildKit write inline cache metadata into the image.
pub const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// What a cache key is computed from.
pub struct KeyInputs<'a> {
    pub stage: &'a str,
    pub dockerfile: &'a Path,
    pub context_root: &'a Path,
    /// The image's source key: the key when the stage's files cannot be told.
    pub source_key: &'a str,
    pub bases: &'a [Base],
    pub keyed_args: &'a BTreeMap<String, String>,
    pub platform: &'a str,
}

/// `buildcache-<sha256>` for the stage `inputs.stage`.
pub fn tag(inputs: &KeyInputs<'_>) -> Result<String> {
    let text = fs::read_to_string(inputs.dockerfile)
        .with_context(|| format!("cannot read {}", inputs.dockerfile.display()))?;
    let stage = dockerfile::stage_inputs(&text, inputs.stage)
        .with_context(|| format!("cache-stage `{}` of {}", inputs.stage, inputs.dockerfile.display()))?;
    let mut hasher = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    field("stage", inputs.stage.to_ascii_lowercase().as_bytes());
    field("platform", inputs.platform.as_bytes());
    for (key, value) in inputs.keyed_args {
        field(&format!("arg:{key}"), value.as_bytes());
    }
    for base in inputs.bases {
        field("base", format!("{}@{}", base.reference, base.digest).as_bytes());
    }
    match stage {
        Some(stage) => {
            for instruction in &stage.instructions {
                field("instruction", instruction.as_bytes());
            }
            for source in &stage.sources {
                hash_path(&mut field, inputs.context_root, source)?;
            }
        }
        None => field("source", inputs.source_key.as_bytes()),
    }
    Ok(format!("{CACHE_TAG_PREFIX}{:x}", hasher.finalize()))
}

/// Feeds the file, link or directory tree at `root/rel` to `field`, in a fixed order;
/// a path that does not exist counts as absent (the build will say so).
fn hash_path(field: &mut impl FnMut(&str, &[u8]), root: &Path, rel: &str) -> Result<()> {
    let path = root.join(rel);
    let Ok(meta) = fs::symlink_metadata(&path) else {
        field("absent", rel.as_bytes());
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(&path).with_context(|| format!("cannot read the link {}", path.display()))?;
        field(&format!("link:{rel}"), target.as_os_str().as_encoded_bytes());
    } else if meta.is_dir() {
        field("dir", rel.as_bytes());
        let mut names: Vec<String> = fs::read_dir(&path)
            .with_context(|| format!("cannot list {}", path.display()))?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot list {}", path.display()))?;
        names.sort();
        for name in names {
            hash_path(field, root, &format!("{rel}/{name}"))?;
        }
    } else {
        let content = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        field(&format!("file:{rel}"), &content);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new() -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "xtask-cache-key-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("src")).unwrap();
            Dir(dir)
        }
        fn write(&self, rel: &str, text: &str) {
            fs::write(self.0.join(rel), text).unwrap();
        }
        fn key(&self) -> String {
            let args = BTreeMap::from([("RUST_IMAGE".to_string(), "r".to_string())]);
            let bases = [Base { reference: "r".into(), digest: "sha256:1".into() }];
            tag(&KeyInputs {
                stage: "deps",
                dockerfile: &self.0.join("Dockerfile"),
                context_root: &self.0,
                source_key: "whole-context",
                bases: &bases,
                keyed_args: &args,
                platform: "linux/amd64",
            })
            .unwrap()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_key_follows_the_lock_file_not_the_sources() {
        let dir = Dir::new();
        dir.write(
            "Dockerfile",
            "FROM r AS deps\nCOPY Cargo.toml Cargo.lock ./\nRUN cargo build\nFROM deps AS build\nCOPY src src\nRUN cargo build\n",
        );
        dir.write("Cargo.toml", "[package]\n");
        dir.write("Cargo.lock", "v1\n");
        dir.write("src/main.rs", "fn main() {}\n");
        let first = dir.key();
        assert!(first.starts_with(CACHE_TAG_PREFIX));
        dir.write("src/main.rs", "fn main() { println!(); }\n");
        assert_eq!(dir.key(), first, "a source change keeps the cache");
        let text = fs::read_to_string(dir.0.join("Dockerfile")).unwrap();
        dir.write("Dockerfile", &format!("{text}FROM r AS runtime\nCOPY --from=build /a /a\n"));
        assert_eq!(dir.key(), first, "a later stage keeps it too");
        dir.write("Cargo.lock", "v2\n");
        assert_ne!(dir.key(), first, "a new lock file is a new cache");
    }

    #[test]
    fn without_literal_sources_the_whole_context_is_the_key() {
        let dir = Dir::new();
        dir.write("Dockerfile", "FROM r AS deps\nCOPY . .\n");
        let first = dir.key();
        dir.write("Dockerfile", "FROM r AS deps\nCOPY . .\nRUN true\n");
        assert_eq!(dir.key(), first, "only the source key counts: the caller's");
    }
}
