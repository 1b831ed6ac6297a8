//! `foreman ls [--all] [--batch ID] [--json]`: every crew at once. A crew that does not
//! answer is reported on stderr, and the exit code says so (2), after the
//! others' jobs are shown.

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::output::{age, outln, table, view};
use crate::failure::Failure;
use crate::present::{job_command, state_word};
use crate::sanitize::Sanitizer;
use futures_util::future::join_all;

pub async fn ls(ctx: &Ctx, all: bool, batch: Option<&str>, json: bool) -> Result<(), Failure> {
    let asks = ctx
        .crews
        .iter()
        .map(|crew| async move { (crew, list_all(crew, all).await) });
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for (crew, answer) in join_all(asks).await {
        match answer {
            Ok(list) => jobs.extend(
                list.into_iter()
                    .filter(|j| batch.is_none_or(|b| j.batch == b))
                    .map(|j| (crew.name.clone(), j)),
            ),
            Err(s) => failures.push(Failure::from_status(&crew.name, &s)),
        }
    }
    if json {
        let views: Vec<_> = jobs.iter().map(|(c, j)| view(c, j)).collect();
        outln!("{}", serde_json::to_string_pretty(&views).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|(crew, j)| {
                let v = view(crew, j);
                vec![
                    v.reference.clone(),
                    v.name.as_deref().map(Sanitizer::clean).unwrap_or_default(),
                    state_word(j),
                    Sanitizer::clean(&v.owner),
                    j.created_at.as_ref().map(age).unwrap_or_default(),
                    job_command(j),
                ]
            })
            .collect();
        outln!(
            "{}",
            table(&["JOB", "NAME", "STATE", "OWNER", "AGE", "COMMAND"], &rows)
        );
    }
    for f in &failures {
        eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
    }
    match failures.into_iter().next() {
        None => Ok(()),
        Some(_) => Err(Failure::Exit(2)),
    }
}

/// Every page of a crew's jobs.
pub async fn list_all(crew: &crate::client::Crew, all: bool) -> Result<Vec<pb::Job>, tonic::Status> {
    let mut client = crew.client.clone();
    let mut jobs = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_jobs(pb::ListJobsRequest {
                include_archived: all,
                page_size: 0,
                page_token: std::mem::take(&mut token),
            })
            .await?
            .into_inner();
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return Ok(jobs);
        }
        token = page.next_page_token;
    }
}
