//! `cargo xtask bench`: the pipeline's speed and memory beside the alternatives.

use std::{process::ExitCode, time::Instant};

use anyhow::{Context, Result};

use crate::commands::{output, stage_args::LocalStackArgs};
use xtask_bench::{self as bench, Bench, report};
use xtask_local_stack::Stack;
use xtask_release::domain::workspace::Workspace;

/// Measure push, build and deploy side by side with a `docker build && docker push`
/// pipeline and plain `cdk deploy`, on the local stack; writes target/bench/report.md.
///
/// Rows: 1 push of a commit already in ECR, 2 push of a new commit with unchanged
/// inputs, 3 build of a big generated context (and a 100 MiB one) vs the classic builder,
/// 3b its first BuildKit build vs `docker buildx build`, 3c the build after one file
/// changed vs buildx's, 4 deploy, 5 promotion of a 300 MiB image between the local
/// stack's two accounts vs `docker pull` + `docker tag` + `docker push`, 6 `push --jobs 2`
/// of two images vs `--jobs 1`, 7 `push` of a one-line app change on a daemon with an
/// empty data root with ECR's build cache vs `--no-build-cache`, 8 `build` of that change
/// on a warm daemon with app/Dockerfile vs a naive `COPY . .` Dockerfile.
/// Not part of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Measured runs per row, after one warm-up (at least 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..))]
    runs: u32,
    /// Rows to run, comma-separated (`--only 1,3`); all by default.
    #[arg(long, value_delimiter = ',', value_name = "ROWS", value_parser = clap::value_parser!(u8).range(1..=8))]
    only: Vec<u8>,
    /// Size of row 3's big context in MiB (about 50,000 files per GiB).
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u64).range(101..))]
    size_mib: u64,
    /// Keep the fixtures and generated contexts under target/bench (the next run reuses the contexts).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    local: LocalStackArgs,
}

impl Args {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let started = Instant::now();
        let dir = ws.target_dir().join("bench");
        std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("cannot create {}", dir.display()))?;
        let stack = Stack::new(ws);
        let ports = stack.up(ws, &self.local.debian_mirror).await?;
        let b = Bench {
            ws,
            ports,
            stack_dir: stack.dir().to_path_buf(),
            dir: dir.clone(),
            runs: self.runs as usize,
            exe: std::env::current_exe().context("cannot find this program's path")?,
        };
        let machine = report::machine(&ws.sh)?;
        let rows = self.rows(&b).await;
        if !self.keep {
            for generated in ["push", "build", "deploy", "promote", "jobs", "cache", "naive", "data", "docker-config"] {
                let path = dir.join(generated);
                if path.exists() {
                    std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                }
            }
        }
        let rows = rows?;

        let notes = [
            format!(
                "Ours is this binary run as a child process in throwaway git workspaces under target/bench; \
                 each round runs ours, then the baseline. Times are wall clock from spawn to exit; logs of the \
                 last run of each command are in {}.",
                dir.join("logs").strip_prefix(&ws.root).unwrap_or(&dir).display()
            ),
            "Baselines run the docker CLI with the classic builder (`DOCKER_BUILDKIT=0`), except rows 3b and 3c, which \
             run `docker buildx build` (BuildKit, the same session protocol as ours); logged in to the local registry through a temporary `DOCKER_CONFIG`, removed at the end."
                .to_string(),
            "Build requests: ours talks to the daemon through a socket that forwards every byte and counts \
             `POST /[vX.Y/]build` request lines; the commit's first push (before the warm-up) must count exactly 1."
                .to_string(),
            "Registry bytes added: growth of the local registry's blob storage during the run (layers, configs \
             and manifests it did not have); the first push must grow it."
                .to_string(),
            format!(
                "Row 3: ours builds with the builder the tool picks (`XTASK_BUILDER` {}). Each round writes a \
                 file unique to it into the context, so no builder's cache has the `COPY`, and removes the images \
                 and BuildKit cache records its builds made: every run sends the whole context and builds. The \
                 tree is in the page cache, so `tar -c` (stdout read to the end) is a read floor, not disk speed. \
                 Peak RSS: `VmHWM` of the client process, read every 10 ms.",
                std::env::var("XTASK_BUILDER").map_or("unset: auto".to_string(), |v| format!("= {v}"))
            ),
        ];
        let took = started.elapsed().as_secs_f64();
        let text = report::markdown(&machine, b.runs, took, &rows, &notes);
        output::text(&text)?;
        let path = dir.join("report.md");
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
        Ok(ExitCode::SUCCESS)
    }

    async fn rows(&self, b: &Bench<'_>) -> Result<Vec<bench::Row>> {
        let wanted = |row: u8| self.only.is_empty() || self.only.contains(&row);
        let mut rows = vec![];
        if wanted(1) || wanted(2) {
            rows.extend(bench::push::rows(b, wanted(1), wanted(2)).await?);
        }
        if wanted(3) {
            rows.extend(bench::build::rows(b, self.size_mib)?);
        }
        if wanted(4) {
            rows.push(bench::deploy::row(b)?);
        }
        if wanted(5) {
            rows.push(bench::promote::row(b).await?);
        }
        if wanted(6) {
            rows.push(bench::jobs::row(b).await?);
        }
        if wanted(7) {
            rows.push(bench::cache::cache_row(b).await?);
        }
        if wanted(8) {
            rows.push(bench::cache::naive_row(b)?);
        }
        Ok(rows)
    }
}
