//! The dashboard: comes with its own issue. Until then, `foreman` with no
//! command says so.

use crate::cli::Failure;
use crate::config::Overrides;

pub async fn run(_over: Overrides) -> Result<(), Failure> {
    Err(Failure::Usage(
        "the dashboard is not built yet; see `foreman --help` for the commands".into(),
    ))
}
