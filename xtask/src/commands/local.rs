//! `cargo xtask local`: the local stack that stands in for AWS.

use std::process::ExitCode;

use anyhow::Result;

use crate::commands::{output, stage_args::LocalStackArgs};
use xtask_local_stack::settings::LOCAL_STAGE;
use xtask_local_stack::{Ports, Stack};
use xtask_release::domain::workspace::Workspace;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the stack (or reuse a healthy one) and make the local base images; waits until
    /// every part answers. Ports are picked free unless [workspace.metadata.xtask.local]
    /// sets them; ports, pids, logs and data go under target/local/ (or --local-stack).
    Up(LocalStackArgs),
    /// Stop what `up` started, and nothing else. The registry's storage and the AWS API's
    /// recorded state stay for the next `up`.
    Down {
        /// Also remove the stack's data: the next `up` starts empty.
        #[arg(long)]
        purge: bool,
    },
    /// Say what runs where, and what is wrong.
    Status,
    /// Print the variables another shell needs to reach the stack: `eval "$(cargo xtask local env)"`.
    Env,
    /// Run the registry ↔ ECR sync in the foreground (started by `up`).
    #[command(hide = true)]
    Sync(SyncArgs),
    /// Print the stack's dummy credentials for `credential_process` (cdk's local profile).
    #[command(hide = true)]
    Credentials,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[arg(long)]
    aws_port: u16,
    #[arg(long)]
    registry_port: u16,
    #[arg(long)]
    registry_backend_port: u16,
    #[arg(long)]
    listen_port: u16,
    #[arg(long)]
    region: String,
    /// The emulated account whose registry this is, when not moto's own.
    #[arg(long)]
    account: Option<String>,
}

impl Command {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stack = Stack::new(ws);
        match self {
            Command::Up(args) => drop(stack.up(ws, &args.debian_mirror).await?),
            Command::Down { purge } => stack.down(purge).await?,
            Command::Status => output::text(&stack.status(&ws.config).await?)?,
            Command::Env => {
                let ports = stack.attach().await?;
                let region = ws.config.stage(LOCAL_STAGE)?.region.clone().unwrap_or_default();
                output::text(&stack.env_exports(&ports, &region)?)?;
            }
            Command::Credentials => output::text(&format!("{}\n", xtask_local_stack::credentials_json()))?,
            Command::Sync(args) => {
                let ports = Ports {
                    moto: args.aws_port,
                    registry: args.registry_port,
                    registry_backend: args.registry_backend_port,
                    sync: args.listen_port,
                    accounts: Default::default(),
                };
                xtask_local_stack::sidecar::run(&ports, &args.region, args.account.as_deref()).await?
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
