//! Foreman: the Tasker dashboard and the scriptable CLI, talking to many
//! crews over mutual TLS 1.3.
//!
//! Layout:
//! - `config.rs`: foreman.toml and the flags over it.
//! - `client/`: one connection per crew (TLS that insists on a crew
//!   certificate naming the dialed host), and opening an attach stream;
//!   shared by the CLI and dashboard.
//! - `asciicast.rs`: a job's output as an asciicast v2 recording.
//! - `cli/`: clap args → `commands/*.rs` → human or `--json` output.
//! - `tui/`: the dashboard.
//! - Shared by the two, so that neither imports the other:
//!   - `failure.rs`: why foreman failed, and so its exit code.
//!   - `job.rs`: a new job's options and spec, and a job reference's form.
//!   - `gather.rs`: a batch's identical outputs grouped under their crews.
//!   - `present.rs`: the words and formats both show (state words, sizes,
//!     durations, a command line).
//!   - `terminal.rs`: are stdin and stdout terminals, and the size.
//!   - `sanitize.rs`: job output and fields filtered before a terminal
//!     sees them.
//!   - `panic_restore.rs`: terminal restores run on a panic.
//!   - `times.rs`: output times: `--since`/`--until` read, lines stamped.
//! - here: `run`, which opens the dashboard or runs the command.

pub mod asciicast;
pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod failure;
pub mod gather;
pub mod job;
pub mod panic_restore;
pub mod present;
pub mod sanitize;
pub mod select;
pub mod terminal;
pub mod times;
pub mod tui;

use std::process::ExitCode;

use crate::cli::args::Cli;
use crate::config::Overrides;

/// Runs a parsed command line: the dashboard when no command is given,
/// else the command. Returns the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let over = Overrides {
        config: cli.config,
        context: cli.context,
        crews: cli.crews,
        user: cli.user,
        certs: cli.certs,
    };
    let result = match cli.command {
        None => tui::run(over).await,
        // Made from the command line's own definition: no config, no crew.
        Some(cli::args::Command::Completions { shell }) => cli::docs::completions(shell),
        Some(cli::args::Command::Man { dir }) => cli::docs::man_pages(&dir),
        Some(command) => cli::run(over, command).await,
    };
    failure::finish(result)
}
