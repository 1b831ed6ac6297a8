//! ArchiveJob: the owner or an admin; only an ended job.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{Audited, caller, resolve};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

pub fn handle(
    state: &State,
    req: Request<pb::ArchiveJobRequest>,
) -> Result<Response<pb::ArchiveJobResponse>, ApiError> {
    let who = caller(&req);
    let mut trail = Audited::new(state, "archive", &who);
    let archived = (|| {
        let who = who?;
        let job = resolve(&state.engine, &state.crew_name, &req.get_ref().job)?;
        trail.job(&job.id);
        authorize(&who, Action::Manage, Some(&job.owner))?;
        let job = state.engine.archive(&job.id)?;
        tracing::info!(job = %job.handle, by = ?who.name, "archived");
        Ok(Response::new(pb::ArchiveJobResponse {
            job: Some(convert::job_summary(&job)),
        }))
    })();
    trail.finish(archived)
}
