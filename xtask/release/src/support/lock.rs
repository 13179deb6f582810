//! Advisory file locks (flock(2)): one `local up`/`down` at a time per local stack, one
//! deploy at a time per stage and workspace. A second caller waits, saying for whom; the
//! lock goes with the process, however it ends.

use std::{
    fs::File,
    io::{Read, Seek, Write},
    os::fd::AsRawFd,
    path::Path,
};

use anyhow::{Context, Result};

pub struct Lock {
    _file: File,
}

impl Lock {
    /// The lock of stage `stage` in the workspace whose target directory is `target`: what
    /// a deploy holds while it runs, and what deletes of the stage's images (`gc --apply`,
    /// `untag --delete-image`) take too, so none of them runs while a deploy of this
    /// workspace rolls an image out.
    pub async fn stage(target: &Path, stage: &str, who: &str) -> Result<Lock> {
        let path = target.join("xtask").join(format!("deploy-{stage}.lock"));
        Lock::acquire(&path, &format!("{who} of stage `{stage}`")).await
    }

    /// Takes the lock at `path`, waiting (without blocking the runtime) while `what`
    /// holds it, and saying so.
    pub async fn acquire(path: &Path, what: &str) -> Result<Lock> {
        Lock::take(path, Some(what)).await
    }

    /// Takes the lock at `path`, waiting without a word: for a short section whose wait
    /// is no news to the person at the terminal.
    pub async fn acquire_quietly(path: &Path) -> Result<Lock> {
        Lock::take(path, None).await
    }

    async fn take(path: &Path, what: Option<&str>) -> Result<Lock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open the lock {}", path.display()))?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { String::new() } else { format!(" (pid {holder})") };
            if let Some(what) = what {
                eprintln!("waiting for {what}{holder} to finish");
            }
            file = tokio::task::spawn_blocking(move || flock(&file, libc::LOCK_EX).map(|_| file))
                .await
                .context("the wait for a lock was cancelled")??;
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        Ok(Lock { _file: file })
    }
}

/// `flock(file, operation)`: `Ok(false)` when a non-blocking request finds it taken.
fn flock(file: &File, operation: libc::c_int) -> Result<bool> {
    // SAFETY: flock(2) on a descriptor this File owns for the duration of the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(err).context("cannot lock")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_second_holder_waits_for_the_first() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let path = dir.path().join("a.lock");
        let first = Lock::acquire(&path, "the first").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), std::process::id().to_string());
        let started = Instant::now();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(first);
        });
        let _second = Lock::acquire(&path, "the first").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250), "the second waited for the first");
        release.await.unwrap();
    }
}
