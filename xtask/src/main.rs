use std::process::ExitCode;

use clap::Parser;
use xtask::commands::Cli;
use xtask_release::support::exit;

fn main() -> ExitCode {
    // Usage errors exit 2, `--help` and `--version` 0 (clap's own codes).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // A signal drops the command where it is awaiting: its child processes die with it
    // (kill on drop) and the daemon stops the build or push whose connection closed.
    let result = runtime.block_on(async {
        let mut signals = exit::Signals::listen();
        let outcome = tokio::select! {
            biased;
            signal = signals.recv() => return Err(signal),
            result = cli.run() => result,
        };
        // Ctrl-C reaches the whole process group: a child it killed (cdk) can end the
        // command with a failure before the signal is seen here. A failure waits a moment
        // for it, so an interrupted command says so.
        if !matches!(&outcome, Ok(code) if *code == ExitCode::SUCCESS)
            && let Ok(signal) = tokio::time::timeout(std::time::Duration::from_millis(300), signals.recv()).await
        {
            return Err(signal);
        }
        Ok(outcome)
    });
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            let (code, print) = exit::classify(&err);
            if print {
                // One line: what failed, then each cause (`{:#}` joins them with ": ").
                eprintln!("error: {err:#}");
            }
            code
        }
        Err((name, code)) => {
            eprintln!(
                "interrupted by {name}: stopped with its children; what was complete stays, run the command again to finish"
            );
            ExitCode::from(code)
        }
    }
}
