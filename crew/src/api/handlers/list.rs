//! ListJobs: anyone may look; archived jobs only on request.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::caller;
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

pub fn handle(
    state: &State,
    req: Request<pb::ListJobsRequest>,
) -> Result<Response<pb::ListJobsResponse>, ApiError> {
    authorize(&caller(&req)?, Action::Read, None)?;
    let jobs = state.engine.list(req.get_ref().include_archived);
    Ok(Response::new(pb::ListJobsResponse {
        jobs: jobs.iter().map(convert::job).collect(),
    }))
}
