//! `foreman stop`, `foreman archive` and `foreman unarchive`.

use std::time::Duration;

use tasker_proto::v1 as pb;

use super::stream::print_end;

use crate::cli::Ctx;
use crate::cli::confirm::others_job;
use crate::cli::output::outln;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;

pub async fn stop(ctx: &Ctx, job: &str, grace: Option<Duration>, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    if let Some(o) = &job.outcome {
        // Nothing to stop: say so, rather than print an end as if we made it.
        outln!(
            "{}/{} had already ended ({}); nothing stopped",
            crew.name,
            job.handle,
            Sanitizer::clean(&o.summary)
        );
        return Ok(());
    }
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
    print_end(&crew.name, &ended)?;
    Ok(())
}

/// Stops every running job of `batch` on every crew, at once; another
/// user's asks first (or needs --yes), as `stop` does. A crew that does not
/// answer is named, and the exit code says so (2).
pub async fn stop_batch(ctx: &Ctx, batch: &str, grace: Option<Duration>, yes: bool) -> Result<(), Failure> {
    let asks = ctx.crews.iter().map(|crew| async move {
        let jobs = super::ls::list_all(crew, false).await;
        (crew, jobs)
    });
    let mut members = Vec::new();
    let mut worst = 0;
    for (crew, jobs) in futures_util::future::join_all(asks).await {
        match jobs {
            Ok(jobs) => members.extend(
                jobs.into_iter()
                    .filter(|j| j.batch == batch && j.outcome.is_none())
                    .map(|j| (crew, j)),
            ),
            Err(s) => {
                let f = Failure::from_status(&crew.name, &s);
                eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
                worst = worst.max(f.code());
            }
        }
    }
    if members.is_empty() && worst == 0 {
        return Err(Failure::Job(format!(
            "no running job of batch {batch:?} on any crew"
        )));
    }
    for (crew, job) in &members {
        others_job(crew, job, "stop", yes).await?;
    }
    let stops = members.iter().map(|(crew, job)| async move {
        let mut client = crew.client.clone();
        let ended = client
            .stop_job(pb::StopJobRequest {
                job: job.id.clone(),
                grace: grace.and_then(|g| prost_types::Duration::try_from(g).ok()),
            })
            .await;
        (crew, job, ended)
    });
    for (crew, job, ended) in futures_util::future::join_all(stops).await {
        match ended {
            Ok(r) => {
                let ended = r.into_inner().job.unwrap_or_else(|| job.clone());
                print_end(&crew.name, &ended)?;
            }
            Err(s) => {
                let f = Failure::from_status(&crew.name, &s);
                eprintln!(
                    "foreman: {}/{}: {}",
                    crew.name,
                    job.handle,
                    Sanitizer::clean(&f.to_string())
                );
                worst = worst.max(f.code());
            }
        }
    }
    Failure::exit_with(worst)
}

pub async fn archive(ctx: &Ctx, job: &str, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    if job.archived {
        // Nothing to do: say so, rather than claim an act.
        outln!("{}/{} was already archived; nothing to do", crew.name, job.handle);
        return Ok(());
    }
    others_job(crew, &job, "archive", yes).await?;
    let mut client = crew.client.clone();
    client
        .archive_job(pb::ArchiveJobRequest { job: job.id.clone() })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?;
    outln!("{}/{} archived", crew.name, job.handle);
    Ok(())
}

/// Each job in turn; one that fails is said on stderr and the others go
/// on; the exit code is the worst.
pub async fn unarchive(ctx: &Ctx, jobs: &[String], yes: bool) -> Result<(), Failure> {
    if let [one] = jobs {
        return unarchive_one(ctx, one, yes).await;
    }
    let mut worst = 0;
    for reference in jobs {
        match unarchive_one(ctx, reference, yes).await {
            Ok(()) => {}
            Err(Failure::Exit(c)) => worst = worst.max(c),
            Err(f) => {
                eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
                worst = worst.max(f.code());
            }
        }
    }
    Failure::exit_with(worst)
}

async fn unarchive_one(ctx: &Ctx, job: &str, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, job).await?;
    if !job.archived {
        outln!("{}/{} is not archived; nothing to do", crew.name, job.handle);
        return Ok(());
    }
    others_job(crew, &job, "unarchive", yes).await?;
    let mut client = crew.client.clone();
    client
        .unarchive_job(pb::UnarchiveJobRequest { job: job.id.clone() })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?;
    outln!("{}/{} unarchived", crew.name, job.handle);
    Ok(())
}
