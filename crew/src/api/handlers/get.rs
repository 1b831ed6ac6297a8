//! GetJob: anyone may look.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{reader, resolve};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

pub fn handle(
    state: &State,
    req: Request<pb::GetJobRequest>,
) -> Result<Response<pb::GetJobResponse>, ApiError> {
    reader(state, &req, "get")?;
    let job = resolve(&state.engine, &state.crew_name, &req.get_ref().job)?;
    let mut answer = convert::job(&job);
    answer.usage = using_now(state, &job);
    Ok(Response::new(pb::GetJobResponse { job: Some(answer) }))
}

/// A running job's figures now (None once it has ended).
pub fn using_now(state: &State, job: &crate::engine::JobInfo) -> Option<pb::Usage> {
    if !matches!(job.state, crate::engine::JobState::Running { .. }) {
        return None;
    }
    let u = state.engine.usage(&job.id)?;
    Some(convert::usage(job.id.as_str(), u, 0.0))
}
