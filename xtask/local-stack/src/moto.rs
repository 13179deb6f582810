//! The AWS API stand-in: `moto_server`, installed into a virtualenv under
//! `target/local/` when none is on PATH, and its state kept across restarts.
//!
//! moto keeps its state in memory. So that the stack loses nothing when moto stops (a
//! `local down`, a `kill -9`), moto runs through a small entry point of the stack's own
//! ([`ENTRY_POINT`], `moto_state.py`): moto's own server, which after each request that
//! changes state pickles moto's backends to `moto-state.pickle` before it answers, and at
//! start loads them back and says in `moto-state.json` what it restored or why it could not.
//!
//! Chosen over replaying moto's recorder (`/moto-api/recorder/replay-recording`, which the
//! stack used before) because a replay re-runs requests against a moto that generates new
//! ids and key material: a change set, stack or KMS key gets a new id, so a recorded
//! `DeleteChangeSet` or `ExecuteChangeSet` by the old id fails (moto 5.2.5 and 5.2.6 answer
//! `DeleteChangeSet` of an unknown change set with an HTTP 500, `UnboundLocalError` in
//! `delete_change_set`); an assumed role gets a new access key, so the requests recorded
//! under the old one land in the default account; and a KMS key gets new key material, so
//! every signature made before stops verifying. A snapshot brings back the objects
//! themselves, ids, accounts and keys included, whatever the history, in one load. What
//! it costs: one pickle per change (milliseconds for the stack's state), and a snapshot
//! is read only by the moto release that wrote it (a change of the pin starts empty and
//! says so).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use xshell::cmd;

use super::process::{self, Started};
use crate::prerequisites;
use xtask_release::domain::workspace::Workspace;

/// The moto release the local stack is verified against.
const MOTO: &str = "moto[server]==5.2.5";

/// The entry point moto runs through: moto's own server, saving and restoring its state.
const ENTRY_POINT: &str = include_str!("moto_state.py");

/// Where the AWS API keeps its state, under the stack's directory.
pub const STATE: &str = "moto-state.pickle";
/// What the AWS API restored at its last start.
const STATUS: &str = "moto-state.json";
/// The recording an older local stack kept (moto's recorder), never replayed now.
const OLD_RECORDING: &str = "moto-recording.jsonl";

/// Starts moto on `port`, with the state saved under `dir` (see [`restored`]).
pub fn start(ws: &Workspace, dir: &Path, port: u16, log: &Path) -> Result<Started> {
    let python = find_or_install(ws, dir)?;
    let script = dir.join("moto_state.py");
    std::fs::write(&script, ENTRY_POINT).with_context(|| format!("cannot write {}", script.display()))?;
    let status = dir.join(STATUS);
    match std::fs::remove_file(&status) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("cannot remove {}", status.display()));
        }
        _ => {}
    }
    let state = dir.join(STATE);
    let port = port.to_string();
    let sh = &ws.sh;
    process::spawn(cmd!(sh, "{python} {script} {state} {status} 127.0.0.1 {port}"), log)
}

/// What a moto that [`start`] started found of the state saved before, once it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Nothing was saved: an empty start.
    Nothing,
    /// The state came back: how many accounts hold some, its size, how long the load took.
    State { accounts: usize, bytes: u64, millis: u64 },
    /// Saved state that could not be loaded, with why and where it was moved.
    Lost { error: String, kept_at: String },
}

#[derive(Deserialize)]
struct Status {
    restored: bool,
    #[serde(default)]
    services: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    seconds: f64,
    error: Option<String>,
    kept_at: Option<String>,
    save_error: Option<String>,
}

impl Restored {
    /// Reads what the running moto wrote at its start (`dir/moto-state.json`).
    pub fn read(dir: &Path) -> Result<Restored> {
        let path = dir.join(STATUS);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read {}, which the AWS API writes at start; see moto.log beside it", path.display())
        })?;
        let status: Status = serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
        Ok(match (status.restored, status.error) {
            (true, _) => {
                let accounts: std::collections::BTreeSet<&String> = status.services.values().flatten().collect();
                Restored::State {
                    accounts: accounts.len(),
                    bytes: status.bytes,
                    millis: (status.seconds * 1000.0) as u64,
                }
            }
            (false, Some(error)) => Restored::Lost { error, kept_at: status.kept_at.unwrap_or_default() },
            (false, None) => Restored::Nothing,
        })
    }

    /// The one line `local up` prints about it, if any.
    pub fn line(&self) -> Option<String> {
        match self {
            Restored::Nothing => None,
            Restored::State { accounts, bytes, millis } => Some(format!(
                "AWS API state restored: {accounts} account{} ({} KiB, loaded in {millis} ms)",
                if *accounts == 1 { "" } else { "s" },
                bytes.div_ceil(1024)
            )),
            Restored::Lost { error, kept_at } => Some(format!(
                "AWS API state LOST: the saved state could not be loaded ({error}; kept at {kept_at}), so the AWS API starts empty (no repositories, stacks, images in ECR or keys); run `cargo xtask local down --purge` to start clean"
            )),
        }
    }
}

/// An error the running moto met saving its state since it started, if any: what a
/// restart would lose.
pub fn save_error(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(STATUS)).ok()?;
    serde_json::from_str::<Status>(&text).ok()?.save_error
}

/// The one line `local up` prints when an older local stack's recording is found (and
/// moved aside, so it is said once): its state is not replayed.
pub fn retire_old_recording(dir: &Path) -> Result<Option<String>> {
    let old = dir.join(OLD_RECORDING);
    if !old.exists() {
        return Ok(None);
    }
    let aside = dir.join(format!("{OLD_RECORDING}.not-replayed"));
    std::fs::rename(&old, &aside).with_context(|| format!("cannot move {} aside", old.display()))?;
    Ok(Some(format!(
        "AWS API state LOST: an older local stack recorded it as requests ({}), which moto cannot replay faithfully, so the repositories, stacks and images in ECR it made are gone; run `cargo xtask local down --purge` to start clean",
        aside.display()
    )))
}

/// Is `name` (a file in the stack's directory) the AWS API's saved state?
pub fn is_state(name: &str) -> bool {
    name.starts_with("moto-state") || name.starts_with(OLD_RECORDING)
}

/// Must [`start`] install moto into a virtualenv (with python3)? Not when `moto_server`
/// is in the stack's virtualenv (`dir/venv`) or on PATH.
pub fn must_install(ws: &Workspace, dir: &Path) -> bool {
    let path = ws.sh.var_os("PATH").unwrap_or_default();
    !venv_server(dir).exists() && prerequisites::find_program("moto_server", &path).is_none()
}

/// The `moto_server` of the stack's virtualenv.
fn venv_server(dir: &Path) -> PathBuf {
    dir.join("venv/bin/moto_server")
}

/// The Python that runs moto: the stack's virtualenv's, else the one `moto_server` on
/// PATH runs with (its script's interpreter, or `python3`), else a new virtualenv's.
fn find_or_install(ws: &Workspace, dir: &Path) -> Result<PathBuf> {
    let sh = &ws.sh;
    let venv = dir.join("venv");
    let in_venv = venv.join("bin/python3");
    if venv_server(dir).exists() {
        return Ok(in_venv);
    }
    let path = sh.var_os("PATH").unwrap_or_default();
    if let Some(server) = prerequisites::find_program("moto_server", &path) {
        let shebang = std::fs::read_to_string(&server).ok().and_then(|text| {
            let interpreter = text.lines().next()?.strip_prefix("#!")?.trim().to_string();
            interpreter.contains("python").then(|| PathBuf::from(interpreter))
        });
        let python = shebang.filter(|p| p.is_absolute() && p.exists()).unwrap_or_else(|| PathBuf::from("python3"));
        if cmd!(sh, "{python} -c 'import moto.server'").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
            return Ok(python);
        }
    }
    eprintln!("no moto_server on PATH whose Python imports moto; installing {MOTO} into {}", venv.display());
    cmd!(sh, "python3 --version").quiet().ignore_stdout().run().context(
        "python3 is missing; install it (Debian: apt-get install python3 python3-venv) or put moto_server on PATH",
    )?;
    cmd!(sh, "python3 -m venv {venv}")
        .quiet()
        .run()
        .context("cannot create a virtualenv; install python3-venv (Debian: apt-get install python3-venv)")?;
    let pip = venv.join("bin/pip");
    cmd!(sh, "{pip} install --quiet --disable-pip-version-check {MOTO}")
        .run()
        .with_context(|| format!("cannot install {MOTO} into {}", venv.display()))?;
    Ok(in_venv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(status: &str) -> Restored {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        std::fs::write(dir.path().join(STATUS), status).unwrap();
        Restored::read(dir.path()).unwrap()
    }

    #[test]
    fn a_start_says_in_one_line_what_came_back_or_what_was_lost() {
        assert_eq!(read(r#"{"restored": false, "reason": "no saved state"}"#).line(), None);
        let restored = read(
            r#"{"restored": true, "services": {"ecr": ["111111111111", "123456789012"], "kms": ["123456789012"]}, "bytes": 20000, "seconds": 0.25}"#,
        );
        assert_eq!(restored, Restored::State { accounts: 2, bytes: 20000, millis: 250 });
        assert_eq!(restored.line().unwrap(), "AWS API state restored: 2 accounts (20 KiB, loaded in 250 ms)");
        let lost = read(
            r#"{"restored": false, "error": "ValueError: it was saved by moto 5.2.4, this is moto 5.2.5", "kept_at": "/s/moto-state.pickle.unrestorable"}"#,
        )
        .line()
        .unwrap();
        assert!(!lost.contains('\n'), "{lost}");
        assert!(
            lost.starts_with(
                "AWS API state LOST: the saved state could not be loaded (ValueError: it was saved by moto 5.2.4"
            ),
            "{lost}"
        );
        assert!(lost.ends_with("run `cargo xtask local down --purge` to start clean"), "{lost}");
    }

    #[test]
    fn a_failed_save_is_read_back_for_local_status() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        assert_eq!(save_error(dir.path()), None);
        std::fs::write(dir.path().join(STATUS), r#"{"restored": false, "reason": "no saved state"}"#).unwrap();
        assert_eq!(save_error(dir.path()), None);
        let failed = r#"{"restored": false, "save_error": "the saved state would not load: TypeError: x"}"#;
        std::fs::write(dir.path().join(STATUS), failed).unwrap();
        assert_eq!(save_error(dir.path()).as_deref(), Some("the saved state would not load: TypeError: x"));
    }

    /// STATUS is written by a request's save and by the check thread, side by side.
    #[test]
    fn the_entry_points_writers_side_by_side_never_fail() {
        let sh = xshell::Shell::new().unwrap();
        if cmd!(sh, "python3 -c 'import moto'").quiet().ignore_stdout().ignore_stderr().run().is_err() {
            eprintln!("skipped: python3 cannot import moto (pip install moto[server])");
            return;
        }
        let dir = sh.create_temp_dir().unwrap();
        std::fs::write(dir.path().join("moto_state.py"), ENTRY_POINT).unwrap();
        let script = r#"
import json, os, sys, threading
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
import moto_state
path = os.path.join(sys.argv[1], "moto-state.json")
errors = []
def write(writer):
    try:
        for n in range(300):
            moto_state.write_json(path, {"writer": writer, "n": n, "padding": "x" * 20000})
    except Exception as err:
        errors.append(repr(err))
threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors[0] if errors else json.load(open(path))["n"])
"#;
        let dir_arg = dir.path();
        let out = cmd!(sh, "python3 -c {script} {dir_arg}").read().unwrap();
        assert_eq!(out, "299");
        let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, ["moto-state.json", "moto_state.py"]);
    }

    #[test]
    fn an_older_recording_is_reported_once_and_purged_with_the_state() {
        let sh = xshell::Shell::new().unwrap();
        let dir = sh.create_temp_dir().unwrap();
        assert_eq!(retire_old_recording(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(OLD_RECORDING), "{}\n").unwrap();
        let line = retire_old_recording(dir.path()).unwrap().unwrap();
        assert!(line.contains("run `cargo xtask local down --purge` to start clean"), "{line}");
        assert_eq!(retire_old_recording(dir.path()).unwrap(), None, "said once");
        for name in ["moto-state.pickle", "moto-state.json", "moto-recording.jsonl.not-replayed"] {
            assert!(is_state(name), "{name}");
        }
        assert!(!is_state("moto.log") && !is_state("moto_state.py"));
    }
}
