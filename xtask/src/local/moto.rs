//! The AWS API stand-in: `moto_server`, installed into a virtualenv under
//! `target/local/` when none is on PATH.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::cmd;

use super::process::{self, Started};
use crate::workspace::Workspace;

/// The moto release the local stack is verified against.
const MOTO: &str = "moto[server]==5.2.5";

pub(super) fn start(ws: &Workspace, dir: &Path, port: u16, log: &Path) -> Result<Started> {
    let server = find_or_install(ws, dir)?;
    let port = port.to_string();
    let sh = &ws.sh;
    process::spawn(cmd!(sh, "{server} -H 127.0.0.1 -p {port}"), log)
}

fn find_or_install(ws: &Workspace, dir: &Path) -> Result<PathBuf> {
    let sh = &ws.sh;
    let venv = dir.join("venv");
    let in_venv = venv.join("bin/moto_server");
    if in_venv.exists() {
        return Ok(in_venv);
    }
    if cmd!(sh, "moto_server --help").quiet().ignore_stdout().ignore_stderr().run().is_ok() {
        return Ok(PathBuf::from("moto_server"));
    }
    eprintln!("moto_server not found on PATH; installing {MOTO} into {}", venv.display());
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
