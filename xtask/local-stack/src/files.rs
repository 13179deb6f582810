//! Files of the stack written whole or not at all.

use std::{
    io::Write,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use anyhow::{Context, Result};

/// Writes `bytes` to `path` whole or not at all: into a new file of this writer's own beside
/// it (`<name>.<pid>.<n>.partial`), then renamed over `path`. Writers that run side by side
/// (commands of one stack, the threads of one) never write into, or rename away, each
/// other's file; the last rename wins, and a crash mid-write leaves the old file.
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().with_context(|| format!("cannot write {}: it names no file", path.display()))?;
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let partial = path.with_file_name(format!("{}.{}.{n}.partial", name.to_string_lossy(), std::process::id()));
    let written = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}
