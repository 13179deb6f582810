//! A Docker daemon of its own, on a socket and data root of its own beside the machine's:
//! what a fresh CI runner has (an empty data root), or a remote daemon (TLS). The bench and
//! the tests start theirs through this one helper; CI's own engines come from `.ci/run`.

use std::{
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
    /// A daemon on the unix socket `<dir>/docker.sock`. Keep `dir` short: a socket's path
    /// holds at most 107 bytes, and the daemon makes more sockets below it.
    pub fn unix(dir: PathBuf) -> Result<PrivateDaemon> {
        let host = format!("unix://{}/docker.sock", dir.display());
        PrivateDaemon::start(dir, host, &[])
    }

    /// A daemon listening at `host`, with `args` (TLS flags, say) before its own; its data
    /// root, exec root, pidfile and log (`dockerd.log`) live in `dir`. Waits, 60 s at most,
    /// until it logs that its API listens. Needs root, as dockerd does.
    pub fn start(dir: PathBuf, host: String, args: &[String]) -> Result<PrivateDaemon> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
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

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the pid of the daemon this value started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
