//! The AWS API stand-in: `moto_server`, installed into a virtualenv under
//! `target/local/` when none is on PATH.
//!
//! moto keeps its state in memory. So that the stack loses nothing when moto stops (a
//! `local down`, a crash), moto's own recorder appends every request it serves to
//! `moto-recording.jsonl`; a moto started on an existing recording replays it first. Of
//! the recording, only requests that change state are kept (reads are dropped before a
//! replay), so it stays small and a replay takes seconds. Chosen over an own snapshot of
//! moto's state because the recorder is moto's documented way to rebuild one, for every
//! service the stack uses (ECR, CloudFormation, S3, SSM, IAM, ECS) alike.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use xshell::cmd;

use super::process::{self, Started};
use crate::prerequisites;
use xtask_release::{clients::http, domain::workspace::Workspace};

/// The moto release the local stack is verified against.
const MOTO: &str = "moto[server]==5.2.5";

/// Starts moto, recording into `recording` (replayed later by [`resume`]).
pub fn start(ws: &Workspace, dir: &Path, port: u16, log: &Path, recording: &Path) -> Result<Started> {
    let server = find_or_install(ws, dir)?;
    let port = port.to_string();
    let sh = &ws.sh;
    process::spawn(cmd!(sh, "{server} -H 127.0.0.1 -p {port}").env("MOTO_RECORDER_FILEPATH", recording), log)
}

/// Brings a moto that just started back to the state `recording` holds, then records
/// what comes next. Returns how many requests were replayed.
pub async fn resume(url: &str, recording: &Path) -> Result<usize> {
    let kept = compact(recording)?;
    let client = http::Client::new(None).with_timeout(Duration::from_secs(600));
    let call = |action: &'static str| {
        let client = client.clone();
        let endpoint = format!("{url}/moto-api/recorder/{action}");
        async move {
            let response = client.send(hyper::Method::POST, &endpoint, &[], bytes::Bytes::new()).await?;
            if !response.status.is_success() {
                bail!("POST {endpoint}: {} {}", response.status, String::from_utf8_lossy(&response.body));
            }
            Ok(())
        }
    };
    if kept > 0 {
        call("replay-recording").await.context("cannot replay the AWS API's recorded state")?;
    }
    call("start-recording").await?;
    Ok(kept)
}

/// Keeps, of the recording, the requests that change state; returns how many.
fn compact(recording: &Path) -> Result<usize> {
    let text = match std::fs::read_to_string(recording) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", recording.display())),
    };
    let kept: Vec<&str> = text.lines().filter(|line| changes_state(line)).collect();
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(recording, out).with_context(|| format!("cannot write {}", recording.display()))?;
    Ok(kept.len())
}

/// Does a recorded request change state? Reads (`Describe*`, `List*`, `Get*`, `BatchGet*`
/// actions, S3 `GET`/`HEAD`) do not.
fn changes_state(line: &str) -> bool {
    let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { return false };
    let headers = entry["headers"].as_object();
    let header = |name: &str| {
        headers.and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))).and_then(|(_, v)| v.as_str())
    };
    let action = match header("x-amz-target") {
        Some(target) => target.rsplit('.').next().unwrap_or_default().to_string(),
        None => {
            let body = entry["body"].as_str().unwrap_or_default();
            let query = entry["url"].as_str().and_then(|u| u.split_once('?')).map_or("", |(_, q)| q);
            let from = |text: &str| text.split('&').find_map(|p| p.strip_prefix("Action=")).map(str::to_string);
            match from(body).or_else(|| from(query)) {
                Some(action) => action,
                // A REST call (S3): reads are GET and HEAD.
                None => return !matches!(entry["method"].as_str(), Some("GET" | "HEAD")),
            }
        }
    };
    !["Describe", "List", "Get", "BatchGet", "BatchCheck"].iter().any(|read| action.starts_with(read))
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

fn find_or_install(ws: &Workspace, dir: &Path) -> Result<PathBuf> {
    let sh = &ws.sh;
    let venv = dir.join("venv");
    let in_venv = venv_server(dir);
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

#[cfg(test)]
mod tests {
    use super::changes_state;

    #[test]
    fn reads_are_dropped_and_writes_kept() {
        let json = |headers: &str, method: &str, url: &str, body: &str| {
            format!(r#"{{"headers": {{{headers}}}, "method": "{method}", "url": "{url}", "body": "{body}"}}"#)
        };
        let target = |t: &str| format!(r#""X-Amz-Target": "{t}""#);
        assert!(!changes_state(&json(
            &target("AmazonEC2ContainerRegistry_V20150921.DescribeImages"),
            "POST",
            "http://h/",
            "{}"
        )));
        assert!(!changes_state(&json(
            &target("AmazonEC2ContainerRegistry_V20150921.BatchGetImage"),
            "POST",
            "http://h/",
            "{}"
        )));
        assert!(!changes_state(&json(
            &target("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"),
            "POST",
            "http://h/",
            "{}"
        )));
        assert!(changes_state(&json(
            &target("AmazonEC2ContainerRegistry_V20150921.PutImage"),
            "POST",
            "http://h/",
            "{}"
        )));
        assert!(changes_state(&json("", "POST", "http://h/", "Action=CreateStack&StackName=x")));
        assert!(!changes_state(&json("", "POST", "http://h/", "Action=DescribeStacks&StackName=x")));
        assert!(!changes_state(&json("", "GET", "http://h/bucket/key", "")));
        assert!(changes_state(&json("", "PUT", "http://h/bucket/key", "")));
        assert!(!changes_state("not json"));
    }
}
