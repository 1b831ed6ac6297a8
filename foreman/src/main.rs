//! `foreman`: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = foreman::cli::args::Cli::parse();
    foreman::cli::run(cli).await
}
