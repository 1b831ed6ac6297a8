//! StartJob: users and admins; the job runs as the Linux user the caller's
//! CN names, never as root unless the crew allows it.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::caller;
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::user::{UserError, lookup};

/// The most bytes of a job's argv a log line holds.
const LOGGED_ARGV: usize = 256;

pub async fn handle(
    state: &State,
    req: Request<pb::StartJobRequest>,
) -> Result<Response<pb::StartJobResponse>, ApiError> {
    let who = caller(&req)?;
    authorize(&who, Action::Start, None)?;
    let spec = req
        .into_inner()
        .spec
        .ok_or_else(|| ApiError::invalid("no job spec given"))?;
    let run_as = lookup(&who.name).map_err(|e| match e {
        UserError::Unknown(name) => ApiError::denied(format!(
            "no Linux user {name:?} on crew {}: jobs run as the user your certificate names",
            state.crew_name
        )),
        other => ApiError::denied(other.to_string()),
    })?;
    if run_as.uid == 0 && !state.allow_root {
        return Err(ApiError::denied(format!(
            "{who} maps to uid 0, and crew {} does not run jobs as root (start it with --allow-root to allow that)",
            state.crew_name
        )));
    }
    let spec = convert::spec(spec, run_as, &who.name)?;
    let job = state.engine.start(spec).await?;
    // Untrusted strings through Debug: a newline in an argument cannot
    // forge a log record. At most a few hundred bytes of the argv: a log
    // line must not cost what a request chose.
    let (argv, cut) = job.argv_summary(LOGGED_ARGV);
    let argc = job.argv.len();
    tracing::info!(job = %job.handle, id = %job.id, by = ?who.name, ?argv, argc, cut, "started");
    Ok(Response::new(pb::StartJobResponse {
        job: Some(convert::job_summary(&job)),
    }))
}
