//! Foreman: the dashboard and the scriptable CLI. Filled by later issues.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("foreman: not built yet (see the API and dashboard issues)");
    ExitCode::from(2)
}
