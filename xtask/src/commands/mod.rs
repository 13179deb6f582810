//! The commands of `cargo xtask`, one module each with its flags.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::workspace::Workspace;

pub mod bench;
pub mod bootstrap;
pub mod build;
pub mod check;
pub mod deploy;
pub mod local;
pub mod push;
pub mod stage_args;
pub mod tag;
pub mod test;

/// Release plumbing: take a service from a git commit to a running ECS deployment.
///
/// Images are tagged with the full commit SHA, pushed to ECR, checked before merge,
/// and deployed with `cdk deploy -c imageTag=<sha>`. Settings live in
/// `[workspace.metadata.xtask]` of the workspace Cargo.toml.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, propagate_version = true)]
pub struct Cli {
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
    #[command(about = "Deploy a commit (laptop): presence check, then `cdk deploy -c imageTag=<sha>`")]
    Deploy(deploy::Args),
    #[command(about = "Prepare a stage: `cdk bootstrap`, then the registry stack (ECR repositories)")]
    Bootstrap(bootstrap::Args),
    /// Run the local stack that stands in for AWS (registry, ECR/CloudFormation API).
    #[command(subcommand)]
    Local(local::Command),
    #[command(about = "Run every test (Rust and infra) against the local stack, starting it if needed")]
    Test(test::Args),
    #[command(about = "Measure push, build and deploy against a shell pipeline and plain cdk (not part of `test`)")]
    Bench(bench::Args),
}

impl Cli {
    pub async fn run(self) -> Result<ExitCode> {
        let ws = Workspace::find()?;
        match self.command {
            Command::Tag(args) => args.run(&ws),
            Command::Build(args) => args.run(&ws).await,
            Command::Push(args) => args.run(&ws).await,
            Command::Check(args) => args.run(&ws).await,
            Command::Deploy(args) => args.run(&ws).await,
            Command::Bootstrap(args) => args.run(&ws).await,
            Command::Local(cmd) => cmd.run(&ws).await,
            Command::Test(args) => args.run(&ws).await,
            Command::Bench(args) => args.run(&ws).await,
        }
    }
}
