use std::process::ExitCode;

use clap::Parser;
use xtask::{commands::Cli, exit};

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
        tokio::select! {
            result = cli.run() => Ok(result),
            signal = exit::interrupted() => Err(signal),
        }
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
