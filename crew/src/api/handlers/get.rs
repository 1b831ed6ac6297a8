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
    answer.usage = super::using_now(state, &job);
    Ok(Response::new(pb::GetJobResponse { job: Some(answer) }))
}
