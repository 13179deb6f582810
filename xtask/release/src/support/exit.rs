//! Exit codes, the same for every command (documented in `--help` and the README):
//!
//! - `0`: success;
//! - `1`: a verdict: `check` found the commit not deployable, `deploy` refused (an image
//!   is not in ECR) or `cdk deploy` failed;
//! - `2`: a usage, configuration or environment error: a bad flag, an unknown stage, no
//!   Docker daemon, no credentials, a failed build;
//! - `130`/`143`: interrupted by SIGINT (Ctrl-C) or SIGTERM. The command stops at once:
//!   its children (cdk) are killed, the daemon drops the build or push whose connection
//!   closed, and nothing is tagged that was not complete.

use std::{fmt, process::ExitCode};

/// Every exit code with what it means, as `--help` and the README's table say it.
pub const CODES: [(&str, &str); 4] = [
    ("0", "success"),
    (
        "1",
        "a verdict (`check` found the commit not deployable, `deploy` refused or `cdk deploy` failed, `retag` or `untag` refused)",
    ),
    (
        "2",
        "a usage, configuration or environment error (bad flag, unknown stage, no Docker daemon, no credentials, a failed build)",
    ),
    ("130 or 143", "interrupted (Ctrl-C, SIGTERM): the command stops with its children and tags nothing incomplete"),
];

/// The exit codes as one paragraph of `--help`.
pub fn codes_help() -> String {
    let codes: Vec<String> = CODES.iter().map(|(code, meaning)| format!("{code} {meaning}")).collect();
    format!("Exit codes: {}.", codes.join("; "))
}

pub const VERDICT: u8 = 1;
pub const ERROR: u8 = 2;

/// An error that is a verdict on the commit or the deploy (exit 1), not a failure to run.
#[derive(Debug)]
pub struct Verdict(pub String);

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Verdict {}

/// What ends the process for `err`, and whether it is worth printing: a closed stdout
/// (`cargo xtask tag | head -c1`) is how a reader says it has read enough.
pub fn classify(err: &anyhow::Error) -> (ExitCode, bool) {
    let broken_pipe = err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        (ExitCode::SUCCESS, false)
    } else if err.chain().any(|cause| cause.is::<Verdict>()) {
        (ExitCode::from(VERDICT), true)
    } else {
        (ExitCode::from(ERROR), true)
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to from the start of a command.
pub struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Signals {
    /// Listens from now on (inside the runtime).
    pub fn listen() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals(signal(SignalKind::interrupt()).ok().zip(signal(SignalKind::terminate()).ok()))
    }

    /// Waits for a signal; returns its name and the exit code it gives (128 + its number, as
    /// shells report it). Never returns where signals cannot be listened to.
    pub async fn recv(&mut self) -> (&'static str, u8) {
        let Some((interrupt, terminate)) = &mut self.0 else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => ("SIGINT", 130),
            _ = terminate.recv() => ("SIGTERM", 143),
        }
    }
}
