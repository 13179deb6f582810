//! A Docker daemon of its own, on a socket and data root of its own beside the machine's:
//! what a fresh CI runner has (an empty data root), or a remote daemon (TLS). The bench and
//! the tests start theirs through this one helper; CI's own engines come from `.ci/run`.

use std::{
    os::unix::{ffi::OsStringExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// A running private dockerd, stopped (and its directory removed) on drop.
pub struct PrivateDaemon {
    child: Child,
    dir: PathBuf,
    /// Its `DOCKER_HOST`.
    pub host: String,
}

/// What dockerd logs once its API answers.
const LISTENING: &str = "API listen on";

impl PrivateDaemon {
    /// A daemon on the unix socket `<dir>/docker.sock`, in a new directory made by
    /// [`private_dir`] with `prefix` (keep it short: a socket's path holds at most 107
    /// bytes, and the daemon makes more sockets below it).
    pub fn unix(prefix: &str) -> Result<PrivateDaemon> {
        let dir = private_dir(prefix)?;
        let host = format!("unix://{}/docker.sock", dir.display());
        PrivateDaemon::start(dir, host, &[])
    }

    /// A daemon listening at `host`, with `args` (TLS flags, say) before its own; its data
    /// root, exec root, pidfile and log (`dockerd.log`) live in `dir`, which must be this
    /// user's alone (as [`private_dir`] makes it): a directory another user made or can
    /// write to could hand the daemon their socket, data root or certificates. Waits, 60 s
    /// at most, until it logs that its API listens. Needs root, as dockerd does.
    pub fn start(dir: PathBuf, host: String, args: &[String]) -> Result<PrivateDaemon> {
        check_private(&dir)?;
        let log = dir.join("dockerd.log");
        let file = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = Command::new("dockerd")
            .args(args)
            .args(["--host", &host, "--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start dockerd (install docker.io; it needs root)")?;
        let mut daemon = PrivateDaemon { child, dir, host };
        let started = Instant::now();
        while !daemon.log().contains(LISTENING) {
            if let Some(status) = daemon.child.try_wait()? {
                bail!("dockerd at {} exited ({status}); its log ends with:\n{}", daemon.host, daemon.log_tail());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "dockerd at {} did not listen within 60 s; its log ends with:\n{}",
                    daemon.host,
                    daemon.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// Its directory: data root, exec root, pidfile, log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        crate::process::log_tail(&self.dir.join("dockerd.log"), 15)
    }
}

/// A new directory under `/tmp` named `<prefix>` and six random characters, made as
/// mkdtemp(3) makes one: never one that existed before (a name another user got there
/// first with is passed over), mode 0700. `/tmp` rather than `$TMPDIR`: a daemon's socket
/// path must stay short.
pub fn private_dir(prefix: &str) -> Result<PathBuf> {
    let template = std::ffi::CString::new(format!("/tmp/{prefix}XXXXXX"))
        .with_context(|| format!("the directory prefix {prefix:?} holds a NUL byte"))?;
    let mut template = template.into_bytes_with_nul();
    // SAFETY: mkdtemp(3) rewrites the six `X`s of the NUL-terminated buffer it is given, in place.
    let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if made.is_null() {
        let err = std::io::Error::last_os_error();
        bail!("cannot make a private directory /tmp/{prefix}XXXXXX: {err}; is /tmp writable?");
    }
    template.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(template)))
}

/// Refuses `dir` unless it is a directory (not a symlink) of this user that no one else
/// can enter (mode 0700 or narrower).
fn check_private(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).with_context(|| {
        format!("cannot use {} for a private Docker daemon; make it with dockerd::private_dir", dir.display())
    })?;
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        bail!(
            "refusing to run a private Docker daemon in {}: it is not a directory of this user that only this user can enter (mode {:o}, owner {}); make it with dockerd::private_dir",
            dir.display(),
            meta.mode() & 0o7777,
            meta.uid()
        );
    }
    Ok(())
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the pid of the daemon this value started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Removes the directory on drop, when the test fails too.
    struct Removed(PathBuf);

    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_private_dir_is_new_each_time_and_only_ours() {
        let made = [Removed(private_dir("xtask-test-").unwrap()), Removed(private_dir("xtask-test-").unwrap())];
        let (a, b) = (&made[0].0, &made[1].0);
        assert_ne!(a, b);
        for dir in [a, b] {
            let meta = std::fs::symlink_metadata(dir).unwrap();
            assert!(meta.is_dir() && meta.mode() & 0o777 == 0o700, "{}: {:o}", dir.display(), meta.mode());
            check_private(dir).unwrap();
        }
        // What a predictable name could find there first: a directory others can enter, a
        // symlink to a directory of ours. Neither gets a daemon (and should one be started,
        // the unknown flag stops it before it mounts anything there).
        std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = b.join("link");
        std::os::unix::fs::symlink(b, &link).unwrap();
        let args = ["--no-such-flag".to_string()];
        for dir in [a, &link] {
            let err = PrivateDaemon::start(dir.clone(), "unix:///nonexistent/docker.sock".into(), &args).err().unwrap();
            assert!(err.to_string().contains("refusing to run a private Docker daemon"), "{err:#}");
        }
    }
}
