use std::process::ExitCode;

use clap::Parser;
use xtask::commands::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(err) => {
            // One line: what failed, then each cause (`{:#}` joins them with ": ").
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
