//! `foreman`: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = foreman::cli::args::Cli::parse();
    // A subcommand is one client on one thread: no work stealing, no
    // cross-thread wake-ups on the output path (less CPU per GiB through
    // `logs -f`: docs/benchmarks.md). The dashboard keeps a pool, so that
    // drawing and a busy crew never wait for each other.
    let runtime = if cli.command.is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    match runtime {
        Ok(rt) => rt.block_on(foreman::run(cli)),
        Err(e) => {
            eprintln!("foreman: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}
