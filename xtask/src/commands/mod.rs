//! The commands of `cargo xtask`, one module each with its flags. A command parses,
//! resolves its stage, calls the library and reports; no command calls another.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use clap::{Parser, Subcommand};

use xtask_release::domain::workspace::Workspace;

mod bench;
mod bootstrap;
mod build;
mod check;
mod config;
mod deploy;
mod gc;
mod image_ref;
mod images;
mod local;
mod output;
mod plan;
mod promote;
mod push;
mod retag;
mod rollback;
mod stage_args;
mod tag;
mod test;
mod untag;

/// Release plumbing: take a service from a git commit to a running ECS deployment.
///
/// Images are tagged with the full commit SHA, pushed to ECR, checked before merge,
/// and deployed with `cdk deploy -c imageTag=<sha>`. Settings live in
/// `[workspace.metadata.xtask]` of the workspace Cargo.toml.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true,
    after_help = xtask_release::support::exit::codes_help()
)]
pub struct Cli {
    /// The local stack's directory (ports, pids, logs, data); `target/local` of the workspace
    /// by default. Points another checkout, or a test's throwaway workspace, at a running stack.
    #[arg(long, global = true, env = "XTASK_LOCAL_STACK", value_name = "DIR")]
    local_stack: Option<PathBuf>,
    /// Show the output of the tools run (cdk) in full, even on a terminal; in CI it always is.
    #[arg(long, global = true, env = "XTASK_VERBOSE")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(about = "Print the image tag of a commit: its full 40-hex SHA")]
    Tag(tag::Args),
    #[command(about = "Build images locally through the Docker Engine API, tagged `<repository>:<sha>`")]
    Build(build::Args),
    #[command(about = "Build, tag with the commit and push each image to ECR (CI); never builds twice")]
    Push(push::Args),
    #[command(about = "Prove a commit deployable before merge: images, scans, repositories, synth")]
    Check(check::Args),
    #[command(
        about = "Show what push and deploy would do for a commit (images to build, commits, cdk diff); changes nothing"
    )]
    Plan(plan::Args),
    #[command(about = "Copy a commit's images to a stage that runs what another ran, by digest (no rebuild)")]
    Promote(promote::Args),
    #[command(about = "Deploy a commit (laptop): presence check, `cdk deploy -c imageTag=<sha>`, rollout proof")]
    Deploy(deploy::Args),
    #[command(about = "Roll a stage back to the commit it ran before (or --to REV), as deploy --rev deploys it")]
    Rollback(rollback::Args),
    #[command(about = "List each repository's images: tags, commit, push time, size, scan, which stage runs or ran it")]
    Images(images::Args),
    #[command(
        about = "Add a tag to an image in ECR (BatchGetImage + PutImage); refused if the tag names another image"
    )]
    Retag(retag::Args),
    #[command(
        about = "Remove a tag; refused for deployed images, `deployed-` tags and (without --delete-image) a last tag"
    )]
    Untag(untag::Args),
    #[command(about = "List, and with --apply delete, what the lifecycle policy expires; never a deployed image")]
    Gc(gc::Args),
    #[command(about = "Prepare a stage: `cdk bootstrap`, then the registry stack (ECR repositories)")]
    Bootstrap(bootstrap::Args),
    #[command(about = "Print the settings as resolved for the CDK app (the JSON it reads)")]
    Config(config::Args),
    /// Run the local stack that stands in for AWS (registry, ECR/CloudFormation API).
    ///
    /// A stage the local stack serves (`local`, and any with `local-stack = true`) is deployed
    /// with the same `cargo xtask deploy`, which then runs the whole chain: starts the stack,
    /// bootstraps the stage, pushes the work tree and runs the services' containers here.
    /// There `deploy` also takes `--allow-dirty` (deploy a dirty work tree's
    /// `<sha>-dirty-<hash>` image), `--builder BUILDER` (`XTASK_BUILDER`: the builder the
    /// push uses) and `--debian-mirror URL` (`XTASK_DEBIAN_MIRROR`: where the stand-in base
    /// images fetch Debian's packages).
    #[command(subcommand)]
    Local(local::Command),
    #[command(about = "Run the tidy gate and every test (Rust and infra) against the local stack")]
    Test(test::Args),
    #[command(about = "Measure push, build and deploy against a shell pipeline and plain cdk (not part of `test`)")]
    Bench(bench::Args),
}

impl Cli {
    pub async fn run(self) -> Result<ExitCode> {
        xtask_release::support::progress::set_verbose(self.verbose);
        let ws = Workspace::find(self.local_stack, &xtask_local_stack::settings::IMPLICIT)?;
        xtask_local_stack::settings::check(&ws.config)?;
        match self.command {
            Command::Tag(args) => args.run(&ws),
            Command::Build(args) => args.run(&ws).await,
            Command::Push(args) => args.run(&ws).await,
            Command::Promote(args) => args.run(&ws).await,
            Command::Plan(args) => args.run(&ws).await,
            Command::Check(args) => args.run(&ws).await,
            Command::Deploy(args) => args.run(&ws).await,
            Command::Rollback(args) => args.run(&ws).await,
            Command::Images(args) => args.run(&ws).await,
            Command::Retag(args) => args.run(&ws).await,
            Command::Untag(args) => args.run(&ws).await,
            Command::Gc(args) => args.run(&ws).await,
            Command::Bootstrap(args) => args.run(&ws).await,
            Command::Config(args) => args.run(&ws),
            Command::Local(cmd) => cmd.run(&ws).await,
            Command::Test(args) => args.run(&ws).await,
            Command::Bench(args) => args.run(&ws).await,
        }
    }
}
