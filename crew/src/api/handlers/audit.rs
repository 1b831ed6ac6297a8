//! AuditTrail: a job's records in the crew's audit trail; anyone who may
//! read jobs may read them (they hold what `GetJob` shows, and environment
//! names, never values).

use std::time::{Duration, UNIX_EPOCH};

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{reader, resolve};
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::audit::Record;

/// Records per answer unless fewer are asked for.
const DEFAULT_LIMIT: usize = 1000;

pub fn handle(
    state: &State,
    req: Request<pb::AuditTrailRequest>,
) -> Result<Response<pb::AuditTrailResponse>, ApiError> {
    reader(state, &req, "audit")?;
    let req = req.into_inner();
    let Some(log) = state.engine.audit() else {
        return Err(ApiError(tonic::Status::failed_precondition(format!(
            "crew {} keeps no audit trail (its records are in memory)",
            state.crew_name
        ))));
    };
    // A job whose record retention has removed is still asked for by its
    // whole id.
    let id = match resolve(&state.engine, &state.crew_name, &req.job) {
        Ok(job) => job.id.to_string(),
        Err(_) if req.job.len() == 32 && req.job.bytes().all(|b| b.is_ascii_hexdigit()) => {
            req.job.to_ascii_lowercase()
        }
        Err(e) => return Err(e),
    };
    let limit = match req.limit {
        0 => DEFAULT_LIMIT,
        n => (n as usize).min(DEFAULT_LIMIT),
    };
    let records = log.trail(&id, limit)?;
    Ok(Response::new(pb::AuditTrailResponse {
        job: id,
        records: records.into_iter().map(record).collect(),
    }))
}

fn record(r: Record) -> pb::AuditRecord {
    let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(r.at_ns).unwrap_or(0));
    let decision = serde_json::to_value(r.decision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    pb::AuditRecord {
        seq: r.seq,
        at: Some(at.into()),
        call: r.call,
        subject: r.subject,
        role: r.role,
        decision,
        why: r.why.unwrap_or_default(),
        detail_json: if r.detail.is_null() {
            String::new()
        } else {
            r.detail.to_string()
        },
    }
}
