//! `foreman status JOB [--json]`.

use crate::cli::Ctx;
use crate::cli::output::{outln, view};
use crate::cli::refs::resolve;
use crate::failure::Failure;

pub async fn status(ctx: &Ctx, job: &str, json: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    let v = view(&crew.name, &job);
    if json {
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let lines = crate::present::details(&v);
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, val) in lines {
        outln!("{k:<width$}  {val}");
    }
    Ok(())
}
