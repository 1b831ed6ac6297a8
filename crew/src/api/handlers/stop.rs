//! StopJob: the owner or an admin. Returns the final state.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{Audited, caller, resolve};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

/// The longest grace period a caller may ask for.
const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

pub async fn handle(
    state: &State,
    req: Request<pb::StopJobRequest>,
) -> Result<Response<pb::StopJobResponse>, ApiError> {
    let who = caller(&req);
    let mut trail = Audited::new(state, "stop", &who);
    let req = req.into_inner();
    let stopped = async {
        let who = who?;
        let job = resolve(&state.engine, &state.crew_name, &req.job)?;
        trail.job(&job.id);
        authorize(&who, Action::Manage, Some(&job.owner))?;
        let grace = req
            .grace
            .as_ref()
            .map(|g| convert::from_duration(g, "grace"))
            .transpose()?;
        trail.detail(serde_json::json!({ "grace_ms": grace.map(|g| g.as_millis()) }));
        if grace.is_some_and(|g| g > MAX_GRACE) {
            return Err(ApiError::invalid("grace must be at most an hour"));
        }
        tracing::info!(job = %job.handle, by = ?who.name, ?grace, "stop");
        let job = state.engine.stop(&job.id, grace, &who.name).await?;
        Ok(Response::new(pb::StopJobResponse {
            job: Some(convert::job_summary(&job)),
        }))
    }
    .await;
    trail.finish(stopped)
}
