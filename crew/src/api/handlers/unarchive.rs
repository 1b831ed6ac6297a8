//! UnarchiveJob: the owner or an admin; only an archived job, and only
//! while no other job holds its name.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{Audited, caller, resolve};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

pub fn handle(
    state: &State,
    req: Request<pb::UnarchiveJobRequest>,
) -> Result<Response<pb::UnarchiveJobResponse>, ApiError> {
    let who = caller(&req);
    let mut trail = Audited::new(state, "unarchive", &who);
    let unarchived = (|| {
        let who = who?;
        // A name finds an archived job when no listed job holds it.
        let job = resolve(&state.engine, &state.crew_name, &req.get_ref().job)?;
        trail.job(&job.id);
        authorize(&who, Action::Manage, Some(&job.owner))?;
        let job = state.engine.unarchive(&job.id)?;
        tracing::info!(job = %job.handle, by = ?who.name, "unarchived");
        Ok(Response::new(pb::UnarchiveJobResponse {
            job: Some(convert::job_summary(&job)),
        }))
    })();
    trail.finish(unarchived)
}
