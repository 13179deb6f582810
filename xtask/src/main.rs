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
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(err) => {
            let (code, print) = exit::classify(&err);
            if print {
                // One line: what failed, then each cause (`{:#}` joins them with ": ").
                eprintln!("error: {err:#}");
            }
            code
        }
    }
}
