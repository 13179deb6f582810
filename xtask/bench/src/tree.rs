//! Generated build contexts: deterministic trees of pseudo-random files (a seeded
//! PRNG, so every run sends the same bytes) with `FROM scratch` + `COPY` Dockerfiles.

use std::path::Path;

use anyhow::{Context, Result};

/// What to generate: at least `files` files and `bytes` bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub files: u64,
    pub bytes: u64,
    pub seed: u64,
}

/// What was generated (the Dockerfile not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Made {
    pub files: u64,
    pub bytes: u64,
}

pub const MIB: u64 = 1024 * 1024;

const DOCKERFILE: &str = "FROM scratch\nCOPY . /data/\n";
const FILES_PER_DIR: u64 = 500;

/// Generates `spec` in `dir` unless a finished tree of the same spec is there (its
/// marker, `dir` + `.done`, says so); a partial one is replaced.
pub fn ensure(dir: &Path, spec: Spec) -> Result<Made> {
    let marker = dir.with_extension("done");
    let key = |made: Made| format!("{} {} {} {} {}", spec.files, spec.bytes, spec.seed, made.files, made.bytes);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let numbers: Vec<u64> = text.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        if let [_, _, _, files, bytes] = numbers[..] {
            let made = Made { files, bytes };
            if text == key(made) && dir.is_dir() {
                return Ok(made);
            }
        }
    }
    let _ = std::fs::remove_file(&marker);
    let made = generate(dir, spec)?;
    std::fs::write(&marker, key(made)).with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(made)
}

/// Replaces `dir` with a fresh tree: file sizes uniform in 0..=2×average, until both
/// the file count and the byte count are reached.
pub fn generate(dir: &Path, spec: Spec) -> Result<Made> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE)?;
    let (mut sizes, mut content) = (SplitMix(spec.seed), SplitMix(!spec.seed));
    let average = (spec.bytes / spec.files.max(1)).max(1);
    let mut made = Made { files: 0, bytes: 0 };
    let mut buf = Vec::new();
    while made.files < spec.files || made.bytes < spec.bytes {
        let sub = dir.join(format!("d{:03}", made.files / FILES_PER_DIR));
        if made.files.is_multiple_of(FILES_PER_DIR) {
            std::fs::create_dir(&sub).with_context(|| format!("cannot create {}", sub.display()))?;
        }
        let size = (sizes.next() % (2 * average + 1)) as usize;
        buf.resize(size.next_multiple_of(8), 0);
        for word in buf.chunks_exact_mut(8) {
            word.copy_from_slice(&content.next().to_le_bytes());
        }
        let path = sub.join(format!("f{:06}.bin", made.files));
        std::fs::write(&path, &buf[..size]).with_context(|| format!("cannot write {}", path.display()))?;
        made.files += 1;
        made.bytes += size as u64;
    }
    Ok(made)
}

/// SplitMix64: small, fast and good enough for incompressible test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
