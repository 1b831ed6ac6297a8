//! Foreman: the Tasker dashboard and the scriptable CLI, talking to many
//! crews over mutual TLS 1.3.
//!
//! Layout:
//! - `config.rs`: foreman.toml and the flags over it.
//! - `client/`: one connection per crew (TLS that insists on a crew
//!   certificate naming the dialed host), shared by the CLI and dashboard.
//! - `cli/`: clap args → `commands/*.rs` → human or `--json` output.
//! - `present.rs`: the words and formats both the CLI and the dashboard
//!   show (state words, sizes, durations, a command line).
//! - `sanitize.rs`: job output and fields filtered before a terminal sees them.
//! - `tui/`: the dashboard.

pub mod cli;
pub mod client;
pub mod config;
pub mod panic_restore;
pub mod present;
pub mod sanitize;
pub mod tui;
