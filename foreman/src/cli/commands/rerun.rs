//! `foreman rerun JOB [--name N] [--env K=V]...`: the same job again.

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::output::outln;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;

pub async fn rerun(
    ctx: &Ctx,
    job: &str,
    name: Option<String>,
    env: Vec<(String, String)>,
) -> Result<(), Failure> {
    let (crew, old) = resolve(ctx, job).await?;
    let label = format!("{}/{}", crew.name, old.handle);
    if old.argv_cut {
        return Err(Failure::Job(format!(
            "{label}'s command was not sent whole; nothing started"
        )));
    }
    let mut client = crew.client.clone();
    let name = match name {
        Some(n) => n,
        None if old.name.is_empty() || old.archived => old.name.clone(),
        None if old.outcome.is_none() => {
            return Err(Failure::Job(format!(
                "{label} ({}) is still running: stop it first, or give the new run another --name",
                Sanitizer::clean(&old.name)
            )));
        }
        // An ended job holds the name: archived, so that the new run takes it.
        None => {
            client
                .archive_job(pb::ArchiveJobRequest { job: old.id.clone() })
                .await
                .map_err(|s| Failure::from_status(&crew.name, &s))?;
            eprintln!(
                "foreman: archived {label}, so that the new run takes its name {}",
                Sanitizer::clean(&old.name)
            );
            old.name.clone()
        }
    };
    let spec = pb::JobSpec {
        argv: old.argv.clone(),
        env: env
            .into_iter()
            .map(|(name, value)| pb::EnvVar { name, value })
            .collect(),
        cwd: old.cwd.clone(),
        limits: old.limits.clone(),
        tty: old.tty.as_ref().map(|_| crate::job::tty_here()),
        network: old.network,
        timeout: old.timeout,
        name,
        ..Default::default()
    };
    let new = client
        .start_job(pb::StartJobRequest { spec: Some(spec) })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner()
        .job
        .ok_or_else(|| Failure::Connection(format!("{}: the crew sent no job", crew.name)))?;
    if let Some(pb::outcome::Reason::StartFailed(f)) = new.outcome.as_ref().and_then(|o| o.reason.clone()) {
        return Err(Failure::Job(format!(
            "{}/{} did not start: {}",
            crew.name,
            new.handle,
            Sanitizer::clean(&f.reason)
        )));
    }
    outln!("{}/{} {}", crew.name, new.handle, new.id);
    Ok(())
}
