//! `foreman stop` and `foreman archive`.

use std::time::Duration;

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::confirm::others_job;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::present::phase_name;
use crate::sanitize::Sanitizer;

pub async fn stop(ctx: &Ctx, job: &str, grace: Option<Duration>, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    others_job(crew, &job, "stop", yes).await?;
    let mut client = crew.client.clone();
    let ended = client
        .stop_job(pb::StopJobRequest {
            job: job.id.clone(),
            grace: grace.and_then(|g| prost_types::Duration::try_from(g).ok()),
        })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner()
        .job
        .unwrap_or(job);
    let outcome = ended.outcome.map(|o| o.summary).unwrap_or_default();
    println!(
        "{}/{} {}: {}",
        crew.name,
        ended.handle,
        phase_name(ended.phase),
        Sanitizer::clean(&outcome)
    );
    Ok(())
}

pub async fn archive(ctx: &Ctx, job: &str, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    others_job(crew, &job, "archive", yes).await?;
    let mut client = crew.client.clone();
    client
        .archive_job(pb::ArchiveJobRequest { job: job.id.clone() })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?;
    println!("{}/{} archived", crew.name, job.handle);
    Ok(())
}
