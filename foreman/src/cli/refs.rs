//! Which job a reference names, across every crew: `[crew/]ref`, where ref
//! is an id, an id prefix, a `job-N` handle or a name. Asked of every crew
//! at once; more than one answer is an error that lists them.

use futures_util::future::join_all;
use tasker_proto::v1 as pb;

use super::Ctx;
use crate::client::Crew;
use crate::failure::Failure;
use crate::job::split_reference;

/// The crew holding the job, and the job.
pub async fn resolve<'a>(ctx: &'a Ctx, reference: &str) -> Result<(&'a Crew, pb::Job), Failure> {
    if reference.is_empty() {
        return Err(Failure::Usage("no job given".into()));
    }
    if let (Some(crew), rest) = split_reference(reference) {
        let crew = ctx.crew(crew)?;
        let job = get(crew, rest)
            .await
            .map_err(|s| Failure::from_status(&crew.name, &s))?;
        return Ok((crew, job));
    }
    let asks = ctx
        .crews
        .iter()
        .map(|c| async move { (c, get(c, reference).await) });
    let answers = join_all(asks).await;
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for (crew, answer) in answers {
        match answer {
            Ok(job) => found.push((crew, job)),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => {
                let f = Failure::from_status(&crew.name, &s);
                match f {
                    Failure::Connection(msg) => unreachable.push(msg),
                    // Ambiguous on that crew, or refused: say so.
                    other => return Err(other),
                }
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 if unreachable.is_empty() => {
            let names: Vec<&str> = ctx.crews.iter().map(|c| c.name.as_str()).collect();
            Err(Failure::Job(format!(
                "no job {reference:?} on {}",
                names.join(", ")
            )))
        }
        0 => Err(Failure::Connection(format!(
            "no job {reference:?} on the crews that answered; {}",
            unreachable.join("; ")
        ))),
        _ => {
            let names: Vec<String> = found
                .iter()
                .map(|(c, j)| format!("{}/{}", c.name, j.handle))
                .collect();
            // As on one crew (the crew answers FAILED_PRECONDITION): not
            // one job found, exit 1.
            Err(Failure::Job(format!(
                "{reference:?} names jobs on several crews: {}; say which with CREW/JOB",
                names.join(", ")
            )))
        }
    }
}

async fn get(crew: &Crew, reference: &str) -> Result<pb::Job, tonic::Status> {
    let mut client = crew.client.clone();
    let job = client
        .get_job(pb::GetJobRequest {
            job: reference.to_owned(),
        })
        .await?
        .into_inner()
        .job;
    job.ok_or_else(|| tonic::Status::internal("the crew sent no job"))
}
