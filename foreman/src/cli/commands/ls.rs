//! `foreman ls [-a] [--batch ID] [--state S] [--owner O] [--crew CREWS]
//! [--name GLOB] [-q | --json]`: every crew (or those --crew selects) at
//! once. A crew that does not answer is reported on stderr, and the exit
//! code says so (2), after the others' jobs are shown.

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::args::JobFilter;
use crate::cli::output::{age, outln, table, view};
use crate::failure::Failure;
use crate::present::{bytes, cpu_time, job_command, phase_name, state_word};
use crate::sanitize::Sanitizer;
use futures_util::future::join_all;

/// How `ls` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Print {
    Table,
    Json,
    /// `CREW/job-N`, one a line.
    References,
}

/// A filter made ready: the crews to ask, and the name's glob.
struct Ready<'a> {
    filter: &'a JobFilter,
    crews: Vec<&'a crate::client::Crew>,
    name: Option<glob::Pattern>,
}

impl<'a> Ready<'a> {
    fn new(ctx: &'a Ctx, filter: &'a JobFilter) -> Result<Self, Failure> {
        let crews = match &filter.crew {
            Some(spec) => crate::select::select(&ctx.config.crews, spec).map_err(Failure::Usage)?,
            None => (0..ctx.crews.len()).collect(),
        };
        let name = filter
            .name
            .as_deref()
            .map(|g| glob::Pattern::new(g).map_err(|e| Failure::Usage(format!("--name {g:?}: {e}"))))
            .transpose()?;
        Ok(Self {
            filter,
            crews: crews.iter().filter_map(|i| ctx.crews.get(*i)).collect(),
            name,
        })
    }

    fn keeps(&self, j: &pb::Job) -> bool {
        let f = self.filter;
        f.batch.as_ref().is_none_or(|b| j.batch == *b)
            && (f.owner.is_empty() || f.owner.contains(&j.owner))
            && self.name.as_ref().is_none_or(|p| p.matches(&j.name))
            && (f.state.is_empty() || f.state.iter().any(|s| in_state(j, s)))
    }
}

/// A job is in `state` when it names its STATE word, its phase, or one
/// of running / ended.
fn in_state(j: &pb::Job, state: &str) -> bool {
    let state = state.trim().to_lowercase();
    let ended = j.outcome.is_some();
    state == state_word(j)
        || state == phase_name(j.phase)
        || (state == "ended" && ended)
        || (state == "running" && !ended)
}

pub async fn ls(ctx: &Ctx, all: bool, filter: &JobFilter, how: Print) -> Result<(), Failure> {
    let ready = Ready::new(ctx, filter)?;
    let asks = ready
        .crews
        .iter()
        .map(|crew| async move { (*crew, list_all(crew, all).await) });
    let mut jobs = Vec::new();
    let mut failures = Vec::new();
    for (crew, answer) in join_all(asks).await {
        match answer {
            Ok(list) => jobs.extend(
                list.into_iter()
                    .filter(|j| ready.keeps(j))
                    .map(|j| (crew.name.clone(), j)),
            ),
            Err(s) => failures.push(Failure::from_status(&crew.name, &s)),
        }
    }
    match how {
        Print::Json => {
            let views: Vec<_> = jobs.iter().map(|(c, j)| view(c, j)).collect();
            outln!("{}", serde_json::to_string_pretty(&views).unwrap_or_default());
        }
        Print::References => {
            for (crew, j) in &jobs {
                outln!("{crew}/{}", j.handle);
            }
        }
        Print::Table => {
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
                        v.cpu_usec.map(cpu_time).unwrap_or_default(),
                        // Now while it runs, its peak once it has ended.
                        v.memory_bytes
                            .or(v.peak_memory_bytes)
                            .map(bytes)
                            .unwrap_or_default(),
                        job_command(j),
                    ]
                })
                .collect();
            outln!(
                "{}",
                table(
                    &["JOB", "NAME", "STATE", "OWNER", "AGE", "CPU", "MEM", "COMMAND"],
                    &rows
                )
            );
        }
    }
    for f in &failures {
        eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
    }
    match failures.into_iter().next() {
        None => Ok(()),
        Some(_) => Err(Failure::Exit(2)),
    }
}

/// `foreman clean`: archives every ended job the filter keeps, on every
/// crew at once; says what it archived, and what it could not.
pub async fn clean(ctx: &Ctx, filter: &JobFilter, dry_run: bool) -> Result<(), Failure> {
    let ready = Ready::new(ctx, filter)?;
    let asks = ready.crews.iter().map(|crew| {
        let ready = &ready;
        async move {
            let jobs = match list_all(crew, false).await {
                Ok(jobs) => jobs,
                Err(s) => return (crew, Err(Failure::from_status(&crew.name, &s)), Vec::new()),
            };
            let ended: Vec<pb::Job> = jobs
                .into_iter()
                .filter(|j| j.outcome.is_some() && ready.keeps(j))
                .collect();
            let mut done = Vec::new();
            for j in ended {
                let label = format!("{}/{}", crew.name, j.handle);
                let result = if dry_run {
                    Ok(())
                } else {
                    let mut c = crew.client.clone();
                    c.archive_job(pb::ArchiveJobRequest { job: j.id.clone() })
                        .await
                        .map(|_| ())
                        .map_err(|s| Failure::from_status(&crew.name, &s))
                };
                done.push((label, result));
            }
            (crew, Ok(()), done)
        }
    });
    let mut worst = 0;
    let mut archived = 0;
    for (_, listed, done) in join_all(asks).await {
        if let Err(f) = listed {
            eprintln!("foreman: {}", Sanitizer::clean(&f.to_string()));
            worst = worst.max(f.code());
        }
        for (label, result) in done {
            match result {
                Ok(()) => {
                    archived += 1;
                    outln!("{label}");
                }
                Err(f) => {
                    eprintln!("foreman: {label}: {}", Sanitizer::clean(&f.to_string()));
                    worst = worst.max(f.code());
                }
            }
        }
    }
    let verb = if dry_run { "would archive" } else { "archived" };
    eprintln!("foreman: {verb} {archived} ended jobs");
    Failure::exit_with(worst)
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
