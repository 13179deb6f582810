//! Background processes of the local stack: started detached, remembered by pid,
//! stopped only if they are still the process that was started.

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
    /// The program's file name, checked against `/proc/PID/cmdline` before signalling,
    /// so a recycled pid is never killed.
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
    Ok(Started { pid: child.id(), program })
}

impl Started {
    /// Is the process still running, and still ours?
    pub fn is_alive(&self) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        if is_zombie(self.pid) {
            return false;
        }
        // Any argument: wrappers (pyenv shims, interpreters) put the program further along.
        cmdline.split(|&b| b == 0).any(|arg| String::from_utf8_lossy(arg).contains(self.program.as_str()))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        signal(self.pid, "TERM")?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(self.pid, "KILL")?;
        Ok(())
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let sh = xshell::Shell::new()?;
    let pid = pid.to_string();
    let sig = format!("-{name}");
    let out = xshell::cmd!(sh, "kill {sig} {pid}").quiet().ignore_status().output()?;
    if !out.status.success() && Path::new(&format!("/proc/{pid}")).exists() {
        bail!("cannot signal process {pid}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The last `lines` lines of a log, to show why a process did not come up.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
