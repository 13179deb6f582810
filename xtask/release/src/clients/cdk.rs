//! The `cdk` CLI of `infra/` (pinned in its package.json), run with the same profile and
//! region the SDK uses, so the two never disagree, and with the settings xtask resolved
//! (`-c xtaskConfig=<file>`): the CDK app reads nothing else.

use std::{
    path::PathBuf,
    process::{Command, ExitStatus},
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::{Context, Result, bail};
use xshell::{Cmd, cmd};

use crate::{
    domain::{config::Stage, workspace::Workspace},
    support::progress::{self, Progress},
};

/// cdk's profile, environment and flags for one stage: plain data the stage is opened with.
#[derive(Debug, Clone, Default)]
pub struct CdkEnv {
    /// `--profile`: the one the SDK uses.
    pub profile: Option<String>,
    /// Variables set in cdk's environment (beyond the region).
    pub vars: Vec<(String, String)>,
    /// Variables removed from cdk's environment.
    pub removed: Vec<String>,
    /// Flags every `cdk deploy` gets.
    pub deploy_args: Vec<String>,
    /// Flags every `cdk diff` gets.
    pub diff_args: Vec<String>,
    /// cdk never asks to approve security-sensitive changes.
    pub never_ask: bool,
}

/// Whether `cdk deploy` may stop to ask a person to approve security-sensitive changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// cdk asks (its default, `--require-approval broadening`); it needs the terminal.
    Ask,
    /// `--require-approval never`.
    Never,
}

pub struct Cdk<'a> {
    ws: &'a Workspace,
    /// The stage's name, region and account.
    stage: &'a Stage,
    region: String,
    env: &'a CdkEnv,
    infra: PathBuf,
    /// This run's cloud assembly, removed when the run is done.
    out: PathBuf,
    config: PathBuf,
}

/// Context that selects the deployed image.
pub struct ImageContext {
    pub tag: String,
    /// `name=sha256:...` pairs, when deploys pin digests.
    pub digests: Vec<(String, String)>,
    /// The images are in the pull-request repositories (`pr/<repository>`), not main's:
    /// `-c imageChannel=pr`.
    pub pr_repositories: bool,
}

impl<'a> Cdk<'a> {
    /// Installs infra's packages on first use (`npm ci`) and writes the resolved settings.
    pub fn new(ws: &'a Workspace, stage: &'a Stage, region: &str, env: &'a CdkEnv) -> Result<Cdk<'a>> {
        let infra = ws.root.join("infra");
        let sh = &ws.sh;
        if !infra.join("node_modules/.bin/cdk").exists() {
            let _dir = sh.push_dir(&infra);
            eprintln!("installing infra/'s packages (npm ci)");
            cmd!(sh, "npm ci --no-audit --no-fund")
                .run()
                .context("`npm ci` in infra/ failed; install Node.js 20 or newer and retry")?;
        }
        // Files of this `Cdk` alone (stage, process, instance), so concurrent runs, and two
        // stages in one process, never share or remove each other's.
        static INSTANCES: AtomicUsize = AtomicUsize::new(0);
        let id = format!("{}-{}-{}", stage.name, std::process::id(), INSTANCES.fetch_add(1, Ordering::Relaxed));
        let dir = ws.target_dir().join("xtask");
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let config = dir.join(format!("config-{id}.json"));
        std::fs::write(&config, crate::domain::resolved::json(&ws.config))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let out = ws.target_dir().join("cdk.out").join(id);
        Ok(Cdk { ws, stage, region: region.to_string(), env, infra, out, config })
    }

    /// `cdk <args>` in infra/, with the stage's account settings in its environment.
    fn cdk(&self, args: &[String]) -> Cmd<'a> {
        let sh = &self.ws.sh;
        let bin = self.infra.join("node_modules/.bin/cdk");
        let (out, config) = (&self.out, format!("xtaskConfig={}", self.config.display()));
        let stage = format!("stage={}", self.stage.name);
        let profile: Vec<String> = match &self.env.profile {
            Some(p) => vec!["--profile".into(), p.to_string()],
            None => vec![],
        };
        let region = &self.region;
        let mut cmd = cmd!(sh, "{bin} {args...} -c {stage} -c {config} --output {out} {profile...}")
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region)
            .env("CDK_DISABLE_VERSION_CHECK", "1");
        // Node.js's runtime warnings (the AWS SDK's notice about Node versions) are shown by
        // the first cdk of a command, not repeated by each one after it.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if WARNED.swap(true, Ordering::Relaxed) {
            cmd = cmd.env("NODE_NO_WARNINGS", "1");
        }
        for (key, value) in &self.env.vars {
            cmd = cmd.env(key, value);
        }
        for key in &self.env.removed {
            cmd = cmd.env_remove(key);
        }
        cmd
    }

    /// cdk as a child that dies with this run: an interrupted command leaves no cdk behind.
    fn child(&self, args: &[String]) -> tokio::process::Command {
        let mut command: Command = self.cdk(args).into();
        command.current_dir(&self.infra);
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        command
    }

    /// Runs cdk with its output streaming live; returns its exit status.
    /// cdk's stdout goes to this program's stderr: stdout carries only a command's result
    /// (`--json`). On a terminal (not in CI, not `--verbose`), a cdk that asks nothing is
    /// one progress line with its latest event, and its output is shown only if it fails.
    async fn stream(&self, args: &[String], approval: Approval) -> Result<ExitStatus> {
        let line = format!("cdk {}", args.join(" "));
        let progress = Progress::detect();
        // Approval prompts need the terminal.
        if progress.is_live() && !progress::verbose() && approval == Approval::Never {
            return self.stream_condensed(args, &line, &progress).await;
        }
        eprintln!("$ {line}");
        let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
            .try_clone_to_owned()
            .context("cannot hand this program's stderr to cdk")?;
        self.child(args)
            .stdout(std::process::Stdio::from(stderr))
            .status()
            .await
            .with_context(|| format!("cannot run {line}; is Node.js installed?"))
    }

    async fn stream_condensed(&self, args: &[String], line: &str, progress: &Progress) -> Result<ExitStatus> {
        use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
        let task = progress.task(&format!("cdk {}", args.iter().take(2).cloned().collect::<Vec<_>>().join(" ")));
        let mut child = self
            .child(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {line}; is Node.js installed?"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let readers: [Option<Box<dyn AsyncRead + Unpin + Send>>; 2] = [
            child.stdout.take().map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
            child.stderr.take().map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        ];
        for reader in readers.into_iter().flatten() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(reader).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut kept = std::collections::VecDeque::new();
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() || is_node_warning(&line) {
                continue;
            }
            task.detail(line.trim());
            kept.push_back(line);
            if kept.len() > 60 {
                kept.pop_front();
            }
        }
        let status = child.wait().await.with_context(|| format!("cannot wait for {line}"))?;
        // The live line goes; what stays is one plain line (later output starts on its own line).
        task.abandon();
        if status.success() {
            progress.println(format!("{line}: done"));
        } else {
            progress.println(format!("{line} failed ({status}); its output ends with:"));
            for kept in kept {
                progress.println(kept);
            }
        }
        Ok(status)
    }

    async fn run(&self, args: &[String]) -> Result<()> {
        let status = self.stream(args, Approval::Never).await?;
        if !status.success() {
            bail!("`cdk {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }

    pub async fn bootstrap(&self) -> Result<()> {
        let mut args = vec!["bootstrap".to_string()];
        if let Some(account) = &self.stage.account {
            args.push(format!("aws://{account}/{}", self.region));
        }
        self.run(&args).await
    }

    /// Deploys `stack` with the stage's deploy flags; `extra` goes to cdk as is.
    /// Returns cdk's exit status.
    pub async fn deploy(
        &self,
        stack: &str,
        image: Option<&ImageContext>,
        approve: bool,
        extra: &[String],
    ) -> Result<ExitStatus> {
        let mut args = vec!["deploy".to_string(), stack.to_string()];
        args.extend(["--outputs-file".to_string(), self.outputs_file().display().to_string()]);
        args.extend(image_context(image));
        args.extend(self.env.deploy_args.iter().cloned());
        let approval = if approve || self.env.never_ask { Approval::Never } else { Approval::Ask };
        if approval == Approval::Never {
            args.extend(["--require-approval".to_string(), "never".to_string()]);
        }
        args.extend(extra.iter().cloned());
        self.stream(&args, approval).await
    }

    fn outputs_file(&self) -> PathBuf {
        self.out.with_extension("outputs.json")
    }

    /// The outputs of `stack`, as the last `deploy` of this `Cdk` wrote them.
    pub fn outputs(&self, stack: &str) -> Result<std::collections::BTreeMap<String, String>> {
        let path = self.outputs_file();
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read cdk's outputs {}", path.display()))?;
        let mut all: std::collections::BTreeMap<String, std::collections::BTreeMap<String, serde_json::Value>> =
            serde_json::from_str(&text).with_context(|| format!("{} is not cdk's outputs JSON", path.display()))?;
        let outputs = all.remove(stack).with_context(|| format!("cdk wrote no outputs of {stack}"))?;
        Ok(outputs.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
    }

    /// Runs cdk with its output kept rather than shown, and nothing on its stdin.
    async fn quietly(&self, args: &[String]) -> Result<std::process::Output> {
        let line = format!("cdk {}", args.iter().take(2).cloned().collect::<Vec<_>>().join(" "));
        self.child(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {line}; is Node.js installed?"))
    }

    /// `cdk destroy --force` of `stack`, its output kept rather than shown; returns cdk's
    /// exit status and output.
    pub async fn destroy_quietly(&self, stack: &str) -> Result<(ExitStatus, String)> {
        let out = self.quietly(&["destroy".to_string(), stack.to_string(), "--force".to_string()]).await?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status, text))
    }

    /// `cdk diff` of `stack` against what the stage runs: cdk's report, as text.
    pub async fn diff(&self, stack: &str, image: &ImageContext) -> Result<String> {
        let mut args = vec!["diff".to_string(), stack.to_string()];
        args.extend(image_context(Some(image)));
        args.extend(self.env.diff_args.iter().cloned());
        let out = self.quietly(&args).await?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // cdk diff exits 0 (no differences) or 1 (differences, with `--fail`); other codes fail.
        if !matches!(out.status.code(), Some(0 | 1)) {
            bail!("`cdk diff {stack}` failed: {}", last_lines(&text, 5));
        }
        // Node.js's own warnings are not part of the diff.
        let kept: Vec<&str> = text.lines().filter(|l| !is_node_warning(l)).collect();
        Ok(kept.join("\n"))
    }

    /// The template of `stack` as this `Cdk`'s last `deploy` or `synth` synthesized it, if
    /// one did (valid while this `Cdk` lives): what was deployed, without a second synth.
    pub fn synthesized(&self, stack: &str) -> Option<PathBuf> {
        Some(self.out.join(format!("{stack}.template.json"))).filter(|path| path.is_file())
    }

    /// `cdk synth` of `stack`, quietly; the error carries the end of cdk's output.
    /// Returns the template's path (valid while this `Cdk` lives).
    pub async fn synth(&self, stack: &str, image: Option<&ImageContext>) -> Result<PathBuf> {
        let mut args = vec!["synth".to_string(), stack.to_string(), "--quiet".to_string()];
        args.extend(image_context(image));
        let out = self.quietly(&args).await?;
        if !out.status.success() {
            bail!("`cdk synth {stack}` failed: {}", last_lines(&String::from_utf8_lossy(&out.stderr), 5));
        }
        Ok(self.out.join(format!("{stack}.template.json")))
    }
}

impl Drop for Cdk<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
        let _ = std::fs::remove_file(self.outputs_file());
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The last `n` lines of `text` that are not blank, on one line (for an error).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A line of a Node.js runtime warning (the AWS SDK's notice about Node versions), not cdk's.
fn is_node_warning(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("(node:")
        || line.starts_with("(Use `node --trace-warnings")
        || line.contains("NodeVersionSupportWarning")
        || line.starts_with("versions published after")
        || line.starts_with("will require node")
        || line.starts_with("To continue receiving updates")
        || line.starts_with("and security updates please upgrade")
        || line.starts_with("More information can be found at: https://a.co/")
}

fn image_context(image: Option<&ImageContext>) -> Vec<String> {
    let Some(image) = image else { return vec![] };
    let mut args = vec!["-c".to_string(), format!("imageTag={}", image.tag)];
    if !image.digests.is_empty() {
        let pairs: Vec<String> = image.digests.iter().map(|(name, digest)| format!("{name}={digest}")).collect();
        args.extend(["-c".to_string(), format!("imageDigest={}", pairs.join(","))]);
    }
    if image.pr_repositories {
        args.extend(["-c".to_string(), "imageChannel=pr".to_string()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_of_the_pull_request_repositories_are_named_to_the_app() {
        let tag = "0123456789abcdef0123456789abcdef01234567".to_string();
        let main = ImageContext { tag: tag.clone(), digests: vec![], pr_repositories: false };
        assert_eq!(image_context(Some(&main)), ["-c", &format!("imageTag={tag}")]);
        let pr =
            ImageContext { tag: tag.clone(), digests: vec![("web".into(), "sha256:aa".into())], pr_repositories: true };
        assert_eq!(
            image_context(Some(&pr)),
            ["-c", &format!("imageTag={tag}"), "-c", "imageDigest=web=sha256:aa", "-c", "imageChannel=pr"]
        );
        assert!(image_context(None).is_empty());
    }
}
