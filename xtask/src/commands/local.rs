//! `cargo xtask local`: the local stack that stands in for AWS.

use std::process::ExitCode;

use anyhow::Result;

use crate::{config::LOCAL_STAGE, local::Stack, workspace::Workspace};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the stack (or reuse a healthy one) and make the local base images; waits until
    /// every part answers. Pids, logs and data go under target/local/.
    Up,
    /// Stop what `up` started, and nothing else.
    Down,
    /// Say what runs where.
    Status,
    /// Print the variables another shell needs to reach the stack: `eval "$(cargo xtask local env)"`.
    Env,
    /// Run the registry ↔ ECR sync in the foreground (started by `up`).
    #[command(hide = true)]
    Sync,
}

impl Command {
    pub async fn run(self, ws: &Workspace) -> Result<ExitCode> {
        let stack = Stack::new(ws);
        match self {
            Command::Up => stack.up(ws).await?,
            Command::Down => stack.down()?,
            Command::Status => print!("{}", stack.status(ws).await?),
            Command::Env => {
                let stage = ws.config.stage(LOCAL_STAGE)?;
                print!("{}", stack.env(stage.region.as_deref().unwrap_or("us-east-1")));
            }
            Command::Sync => crate::local::sync::run(ws).await?,
        }
        Ok(ExitCode::SUCCESS)
    }
}
