//! The `cdk` CLI of `infra/` (pinned in its package.json), run with the same
//! profile and region the SDK uses, so the two never disagree.

use std::{
    path::PathBuf,
    process::{Command, ExitStatus},
};

use anyhow::{Context, Result, bail};
use xshell::{Cmd, Shell, cmd};

use crate::{aws::Target, config::Stage, workspace::Workspace};

/// What cdk needs to deploy on the local stack: its CloudFormation (moto) cannot delete
/// change sets, so a deploy through one can hang; stacks are deployed directly, with the
/// bootstrap version parameter given explicitly (moto cannot reuse a previous value).
pub const LOCAL_STACK_CDK_ARGS: [&str; 3] =
    ["--method=direct", "--parameters", "BootstrapVersion=/cdk-bootstrap/hnb659fds/version"];

pub struct Cdk<'a> {
    sh: &'a Shell,
    infra: PathBuf,
    out: PathBuf,
    stage: &'a Stage,
    target: &'a Target,
}

/// Context that selects the deployed image.
pub struct ImageContext {
    pub tag: String,
    /// `name=sha256:...` pairs, when deploys pin digests.
    pub digests: Vec<(String, String)>,
}

impl<'a> Cdk<'a> {
    /// Installs infra's packages on first use (`npm ci`).
    pub fn new(ws: &'a Workspace, stage: &'a Stage, target: &'a Target) -> Result<Cdk<'a>> {
        let infra = ws.root.join("infra");
        let sh = &ws.sh;
        if !infra.join("node_modules/.bin/cdk").exists() {
            let _dir = sh.push_dir(&infra);
            eprintln!("installing infra/'s packages (npm ci)");
            cmd!(sh, "npm ci --no-audit --no-fund")
                .run()
                .context("`npm ci` in infra/ failed; install Node.js 20 or newer and retry")?;
        }
        // One assembly directory per stage and process, so concurrent runs never share one.
        let out = ws.target_dir().join("cdk.out").join(format!("{}-{}", stage.name, std::process::id()));
        Ok(Cdk { sh, infra, out, stage, target })
    }

    /// `cdk <args>` in infra/, with the stage's account settings in its environment.
    fn cdk(&self, args: &[String]) -> Cmd<'a> {
        let bin = self.infra.join("node_modules/.bin/cdk");
        let out = &self.out;
        let stage = format!("stage={}", self.stage.name);
        let profile: Vec<String> = match &self.target.profile {
            Some(p) => vec!["--profile".into(), p.clone()],
            None => vec![],
        };
        let sh = self.sh;
        let mut cmd = cmd!(sh, "{bin} {args...} -c {stage} --output {out} {profile...}")
            .env("AWS_REGION", &self.target.region)
            .env("AWS_DEFAULT_REGION", &self.target.region)
            .env("CDK_DISABLE_VERSION_CHECK", "1");
        if let Some(endpoint) = &self.target.endpoint {
            // The local stack: its endpoint and its dummy credentials (they grant nothing elsewhere).
            let key = crate::aws::LOCAL_ACCESS_KEY;
            cmd = cmd
                .env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", key)
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN");
        }
        cmd
    }

    /// Runs cdk with its output streaming live; returns its exit status.
    fn stream(&self, args: &[String]) -> Result<ExitStatus> {
        let cmd = self.cdk(args);
        let line = format!("cdk {}", args.join(" "));
        eprintln!("$ {line}");
        let mut command: Command = cmd.into();
        command.current_dir(&self.infra);
        command.status().with_context(|| format!("cannot run {line}; is Node.js installed?"))
    }

    fn run(&self, args: &[String]) -> Result<()> {
        let status = self.stream(args)?;
        if !status.success() {
            bail!("`cdk {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }

    pub fn bootstrap(&self) -> Result<()> {
        let mut args = vec!["bootstrap".to_string()];
        if let (Some(account), region) = (&self.stage.account, &self.target.region) {
            args.push(format!("aws://{account}/{region}"));
        }
        self.run(&args)
    }

    /// Deploys `stack`; `extra` goes to cdk as is. Returns cdk's exit status.
    pub fn deploy(&self, stack: &str, image: Option<&ImageContext>, approve: bool, extra: &[String]) -> Result<ExitStatus> {
        let mut args = vec!["deploy".to_string(), stack.to_string()];
        args.extend(image_context(image));
        if self.target.endpoint.is_some() {
            args.extend(LOCAL_STACK_CDK_ARGS.map(String::from));
        }
        if approve {
            args.extend(["--require-approval".to_string(), "never".to_string()]);
        }
        args.extend(extra.iter().cloned());
        self.stream(&args)
    }

    /// `cdk destroy --force` of `stack`; returns cdk's exit status.
    pub fn destroy(&self, stack: &str) -> Result<ExitStatus> {
        self.stream(&["destroy".to_string(), stack.to_string(), "--force".to_string()])
    }

    /// `cdk synth` of `stack`, quietly; the error carries cdk's output.
    pub fn synth(&self, stack: &str, image: Option<&ImageContext>) -> Result<PathBuf> {
        let mut args = vec!["synth".to_string(), stack.to_string(), "--quiet".to_string()];
        args.extend(image_context(image));
        let _dir = self.sh.push_dir(&self.infra);
        let out = self.cdk(&args).quiet().ignore_status().output()?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            bail!("`cdk synth {stack}` failed: {}", lines[lines.len().saturating_sub(5)..].join(" | "));
        }
        Ok(self.out.join(format!("{stack}.template.json")))
    }
}

fn image_context(image: Option<&ImageContext>) -> Vec<String> {
    let Some(image) = image else { return vec![] };
    let mut args = vec!["-c".to_string(), format!("imageTag={}", image.tag)];
    if !image.digests.is_empty() {
        let pairs: Vec<String> = image.digests.iter().map(|(name, digest)| format!("{name}={digest}")).collect();
        args.extend(["-c".to_string(), format!("imageDigest={}", pairs.join(","))]);
    }
    args
}
