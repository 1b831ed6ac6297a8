//! Info: the crew, and the caller as the crew sees it.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::reader;
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;

pub fn handle(state: &State, req: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, ApiError> {
    let who = reader(state, &req, "info")?;
    let runs_as = crate::engine::user::lookup(&who.name)
        .map(|u| format!("{} (uid {})", u.user, u.uid))
        .unwrap_or_default();
    Ok(Response::new(pb::InfoResponse {
        crew_name: state.crew_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cgroup_mode: state.engine.cgroup_mode().as_str().to_owned(),
        cgroup_detail: state.engine.cgroup_description(),
        identity: who.name.clone(),
        role: who.role.as_ou().to_owned(),
        runs_as,
        started_at: Some(convert::timestamp(state.started_at)),
        quota: Some(quota(&state.engine.quota_of(&who.name))),
    }))
}

fn quota(q: &crate::engine::QuotaUse) -> pb::Quota {
    pb::Quota {
        pids: q.caps.pids,
        memory_bytes: q.caps.memory,
        cpu: q.caps.cpu,
        jobs: q.caps.jobs,
        running_jobs: q.running,
        tasks: q.tasks,
        memory_used_bytes: q.memory,
    }
}
