//! Background processes of the local stack: started detached, remembered by pid and
//! start time, and signalled only while that pid still names the process that was started.

use std::{
    fs::File,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// A process `local up` started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    /// When it started, in clock ticks since boot (`/proc/PID/stat` field 22): a recycled
    /// pid has another, so an unrelated process is never signalled.
    pub start_time: u64,
    /// The program's file name, for messages.
    pub program: String,
}

/// Starts `cmd` in its own process group with stdout and stderr appended to `log`.
/// It outlives this process; stdin is closed.
pub fn spawn(cmd: xshell::Cmd<'_>, log: &Path) -> Result<Started> {
    let mut command: Command = cmd.into();
    let program = Path::new(command.get_program())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let err = out.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = child.id();
    let start_time =
        stat(pid).map(|s| s.start_time).with_context(|| format!("{program} (pid {pid}) exited at once"))?;
    Ok(Started { pid, start_time, program })
}

impl Started {
    /// Is the process still running, and still the one that was started?
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }

    /// SIGTERM to its process group, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        self.signal(libc::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL)
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        let pid = libc::pid_t::try_from(self.pid).context("a pid out of range")?;
        // The group: `spawn` made the process a group leader, and wrappers (pyenv shims) fork.
        // SAFETY: kill(2) takes plain integers; the pid was checked to be ours just before.
        if unsafe { libc::kill(-pid, signal) } != 0 && unsafe { libc::kill(pid, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                bail!("cannot signal {} (pid {pid}): {err}", self.program);
            }
        }
        Ok(())
    }
}

struct Stat {
    state: char,
    start_time: u64,
}

/// Fields 3 (state) and 22 (starttime) of `/proc/PID/stat`, read after the `(comm)` field,
/// which may itself hold spaces and parentheses.
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat { state: fields.first()?.chars().next()?, start_time: fields.get(19)?.parse().ok()? })
}

/// The last `lines` lines of a log, to show why a process did not come up.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_pid_is_not_ours() {
        let me = std::process::id();
        let start_time = stat(me).unwrap().start_time;
        let ours = Started { pid: me, start_time, program: "xtask".into() };
        assert!(ours.is_alive());
        let recycled = Started { start_time: start_time + 1, ..ours };
        assert!(!recycled.is_alive());
        // Stopping a process that is not ours signals nothing (this test process survives).
        recycled.stop(Duration::from_millis(10)).unwrap();
    }

    #[test]
    fn stops_what_it_started() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        let started = spawn(xshell::cmd!(sh, "sleep 30"), &dir.path().join("log")).unwrap();
        assert!(started.is_alive());
        started.stop(Duration::from_secs(5)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while started.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!started.is_alive());
    }
}
