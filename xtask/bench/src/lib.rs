//! `cargo xtask bench`: the real binary timed beside the alternatives a user would
//! otherwise pick, on the local stack. Each row runs ours and its baseline in turn,
//! one discarded warm-up round, then the measured rounds.
//!
//! - [`push`]: rows 1 and 2, `push` with nothing to do vs `docker build` + `docker push`;
//! - [`build`]: row 3, streaming a big context vs the classic builder, with peak RSS;
//! - [`deploy`]: row 4, `deploy --stage local` vs plain `cdk deploy`;
//! - [`promote`]: row 5, `promote` of a 300 MiB image between two accounts vs `docker pull` + `tag` + `push`;
//! - [`jobs`]: row 6, `push --jobs 2` of two images vs `--jobs 1`;
//! - [`cache`]: row 7, a one-line app change on an empty daemon with ECR's build cache vs
//!   without, and row 8, the same change on a warm daemon with app/Dockerfile vs a naive one.
//!
//! Around them: [`measure`] (one timed child), [`counter`] (build requests a client
//! sends the daemon), [`tree`] (generated contexts), [`fixture`] (throwaway git
//! workspaces), [`docker_cli`] (the baseline's logged-in docker CLI), [`report`].

pub mod build;
pub mod cache;
mod counter;
pub mod deploy;
mod docker_cli;
mod fixture;
pub mod jobs;
mod measure;
pub mod promote;
pub mod push;
pub mod report;
mod tree;

use std::path::PathBuf;

use anyhow::Result;
use xshell::Cmd;

use xtask_local_stack::Ports;
use xtask_release::domain::workspace::Workspace;

pub struct Bench<'w> {
    pub ws: &'w Workspace,
    /// The running local stack's ports and directory, which "ours" is pointed at.
    pub ports: Ports,
    pub stack_dir: PathBuf,
    /// target/bench: fixtures, generated data, logs and the report.
    pub dir: PathBuf,
    /// Measured rounds per row, after the warm-up.
    pub runs: usize,
    /// This program, run as "ours".
    pub exe: PathBuf,
}

/// One line of the table: two series of seconds and what else was measured.
pub struct Row {
    pub id: String,
    pub what: String,
    pub baseline: String,
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
    /// Other measurements, each a short phrase.
    pub also: Vec<String>,
}

impl Bench<'_> {
    /// Where the stderr of a command `name` goes (the last run's).
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// `cargo xtask ARGS` as the child "ours": this binary, on this workspace's local
    /// stack, without the settings from the environment that would change what it does.
    pub fn ours<'a>(&self, cmd: Cmd<'a>) -> Cmd<'a> {
        cmd.env_remove("XTASK_STAGE")
            .env_remove("XTASK_PROFILE")
            .env_remove("GITHUB_OUTPUT")
            .env("XTASK_LOCAL_STACK", &self.stack_dir)
    }

    /// Calls `round` once as a warm-up (discarded), then `runs` times.
    pub fn rounds<T>(&self, what: &str, mut round: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
        let mut kept = Vec::with_capacity(self.runs);
        for i in 0..=self.runs {
            let which = if i == 0 { "warm-up".to_string() } else { format!("run {i}/{}", self.runs) };
            eprintln!("bench: {what}: {which}");
            let result = round()?;
            if i > 0 {
                kept.push(result);
            }
        }
        Ok(kept)
    }
}

/// `0 in every run`, or `median (min–max)`.
pub fn counts(values: &[u64], unit: fn(f64) -> String) -> String {
    match values {
        [first, rest @ ..] if rest.iter().all(|v| v == first) => format!("{} in every run", unit(*first as f64)),
        _ => measure::Stats::of(&values.iter().map(|v| *v as f64).collect::<Vec<_>>()).show(unit),
    }
}

/// Creates an ECR repository on the local stack for a bench row.
pub async fn create_repository(
    client: &aws_sdk_ecr::Client,
    name: &str,
    mutability: aws_sdk_ecr::types::ImageTagMutability,
) -> Result<()> {
    use xtask_release::clients::aws::SdkResultExt;
    client
        .create_repository()
        .repository_name(name)
        .image_tag_mutability(mutability)
        .send()
        .await
        .sdk_context(|| format!("cannot create ECR repository {name} on the local stack"))?;
    Ok(())
}
