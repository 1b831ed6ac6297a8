//! `foreman start`: start a job, print its reference.

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::output::outln;
use crate::client::Crew;
use crate::failure::Failure;
use crate::job::{JobArgs, job_spec};

/// The crews `--crew` selects when it may name several (see
/// `crate::select`); None: a plain name or none, one crew as before.
pub fn pick_batch<'a>(ctx: &'a Ctx, named: Option<&str>) -> Result<Option<Vec<&'a Crew>>, Failure> {
    let Some(spec) = named.filter(|s| !crate::select::is_single(s)) else {
        return Ok(None);
    };
    // `@failed:ID`: the crews a batch run here did not succeed on.
    let spec = match spec.strip_prefix("@failed:") {
        Some(batch) => {
            let crews = super::batch::failed_crews(batch).map_err(Failure::Usage)?;
            if crews.is_empty() {
                return Err(Failure::Usage(format!(
                    "batch {batch} failed on no crew: nothing to run again"
                )));
            }
            crews.join(",")
        }
        None => spec.to_owned(),
    };
    let chosen = crate::select::select(&ctx.config.crews, &spec).map_err(Failure::Usage)?;
    Ok(Some(chosen.into_iter().map(|i| &ctx.crews[i]).collect()))
}

/// The crew a new job goes to: the one named, or the only one.
pub fn pick_crew<'a>(ctx: &'a Ctx, named: Option<&str>) -> Result<&'a Crew, Failure> {
    match (named, ctx.crews.as_slice()) {
        (Some(name), _) => ctx.crew(name),
        (None, [only]) => Ok(only),
        (None, crews) => {
            let names: Vec<&str> = crews.iter().map(|c| c.name.as_str()).collect();
            Err(Failure::Usage(format!(
                "several crews are configured ({}): choose one with start --crew NAME",
                names.join(", ")
            )))
        }
    }
}

/// Starts the job; a job that failed to start is an error (exit 1).
pub async fn launch<'a>(ctx: &'a Ctx, a: &JobArgs) -> Result<(&'a Crew, pb::Job), Failure> {
    let crew = pick_crew(ctx, a.crew.as_deref())?;
    let mut client = crew.client.clone();
    let job = client
        .start_job(pb::StartJobRequest {
            spec: Some(job_spec(a)),
        })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner()
        .job
        .ok_or_else(|| Failure::Connection(format!("{}: the crew sent no job", crew.name)))?;
    Ok((crew, job))
}

pub async fn start(ctx: &Ctx, a: JobArgs) -> Result<(), Failure> {
    let a = a.with_preset(&ctx.config.presets).map_err(Failure::Usage)?;
    if let Some(crews) = pick_batch(ctx, a.crew.as_deref())? {
        return super::batch::start(&crews, &a).await;
    }
    let (crew, job) = launch(ctx, &a).await?;
    if let Some(pb::outcome::Reason::StartFailed(f)) = job.outcome.as_ref().and_then(|o| o.reason.clone()) {
        return Err(Failure::Job(format!(
            "{}/{} did not start: {}",
            crew.name, job.handle, f.reason
        )));
    }
    outln!("{}/{} {}", crew.name, job.handle, job.id);
    Ok(())
}
