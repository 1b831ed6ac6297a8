//! `foreman`: parse the command line, run it, exit with its code.

use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match foreman::cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
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

/// clap's message (and its exit code: 0 for --help and --version, 2 for
/// a usage error), with what a newcomer most often needs: the command of
/// `run` or `start` goes after `--`.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = args.iter().find(|a| matches!(a.as_str(), "run" | "start"));
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(verb) = verb
        && !args.iter().any(|a| a == "--")
    {
        eprintln!(
            "\nforeman: the job's command goes after `--`: foreman {verb} [OPTIONS] -- CMD [ARGS...], \
             e.g. foreman {verb} -- uname -a"
        );
    }
    ExitCode::from(2)
}
