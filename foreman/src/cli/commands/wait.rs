//! `foreman wait JOB` / `foreman wait --batch ID`: until the job (or every
//! job of the batch, on every crew) has ended; one line per job as it ends,
//! and the exit code `run` would have given (the worst of a batch's).

use std::time::Duration;

use futures_util::future::join_all;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::open::{From, Now};
use tasker_proto::v1::attach_job_response::Msg as Out;

use super::stream::open;
use crate::cli::Ctx;
use crate::cli::output::exit_code_of;
use crate::cli::refs::resolve;
use crate::client::Crew;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;

pub async fn wait(
    ctx: &Ctx,
    job: Option<&str>,
    batch: Option<&str>,
    timeout: Option<Duration>,
) -> Result<(), Failure> {
    let mut worst = 0;
    let members: Vec<(&Crew, pb::Job)> = match (job, batch) {
        (Some(job), _) => vec![resolve(ctx, job).await?],
        (None, Some(batch)) => {
            let (members, unreachable) = super::batch::members_of(ctx, batch).await;
            for (_, f) in &unreachable {
                eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
                worst = worst.max(f.code());
            }
            if members.is_empty() && unreachable.is_empty() {
                return Err(Failure::Job(format!("no job of batch {batch:?} on any crew")));
            }
            members
        }
        (None, None) => return Err(Failure::Usage("wait: give a JOB or --batch ID".into())),
    };
    let all = join_all(members.iter().map(|(crew, job)| until_ended(crew, job)));
    let ends = match timeout {
        None => all.await,
        Some(t) => tokio::time::timeout(t, all)
            .await
            .map_err(|_| Failure::Job(format!("not every job had ended after {t:?}")))?,
    };
    for ((crew, _), end) in members.iter().zip(ends) {
        match end {
            Ok(j) => {
                super::stream::print_end(&crew.name, &j)?;
                worst = worst.max(exit_code_of(&j));
            }
            Err(f) => {
                eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
                worst = worst.max(f.code());
            }
        }
    }
    Failure::exit_with(worst)
}

/// The job's final record: at once if it has ended, else from an attach
/// that starts at the end of its output and reads on to the job's end.
async fn until_ended(crew: &Crew, job: &pb::Job) -> Result<pb::Job, Failure> {
    if job.outcome.is_some() {
        return Ok(job.clone());
    }
    let mut opened = open(crew, &job.id, From::Now(Now {}), false).await?;
    loop {
        match opened.stream.message().await {
            Ok(Some(pb::AttachJobResponse {
                msg: Some(Out::Ended(j)),
            })) => return Ok(j),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(Failure::Connection(format!(
                    "{}/{}: the stream ended before the job did (did the crew restart?)",
                    crew.name, job.handle
                )));
            }
            Err(s) => return Err(Failure::from_status(&crew.name, &s)),
        }
    }
}
