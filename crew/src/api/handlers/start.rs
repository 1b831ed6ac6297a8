//! StartJob: users and admins; the job runs as the Linux user the caller's
//! CN names, never as root unless the crew allows it.

use tasker_proto::v1 as pb;
use tonic::{Request, Response};

use super::{Audited, caller};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::audit::ARGV_KEPT;
use crate::engine::user::{UserError, lookup};

/// The most bytes of a job's argv a log line holds.
const LOGGED_ARGV: usize = 256;

pub async fn handle(
    state: &State,
    req: Request<pb::StartJobRequest>,
) -> Result<Response<pb::StartJobResponse>, ApiError> {
    let who = caller(&req);
    let mut trail = Audited::new(state, "start", &who);
    let spec = req.into_inner().spec;
    if let Some(spec) = &spec {
        trail.detail(asked(spec));
    }
    let started = async {
        let who = who?;
        authorize(&who, Action::Start, None)?;
        let spec = spec.ok_or_else(|| ApiError::invalid("no job spec given"))?;
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
        trail.job(&job.id);
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
    .await;
    trail.finish(started)
}

/// What a start asked for, for the audit trail: the argv (its first
/// `ARGV_KEPT` bytes; the rest counted), the environment's names but never
/// its values, and the options.
fn asked(spec: &pb::JobSpec) -> serde_json::Value {
    let mut kept = 0usize;
    let mut argv = Vec::new();
    for a in &spec.argv {
        if kept + a.len() > ARGV_KEPT {
            break;
        }
        kept += a.len();
        argv.push(a.as_str());
    }
    let total: usize = spec.argv.iter().map(String::len).sum();
    let env: Vec<&str> = spec.env.iter().map(|e| e.name.as_str()).collect();
    let limits = spec.limits.as_ref().map(|l| {
        serde_json::json!({
            "cpu": l.cpu,
            "memory_bytes": l.memory_bytes,
            "memory_high_bytes": l.memory_high_bytes,
            "pids": l.pids,
            "cpu_weight": l.cpu_weight,
            "io": l.io.iter().map(|io| serde_json::json!({
                "device": io.device,
                "read_bps": io.read_bps,
                "write_bps": io.write_bps,
                "read_iops": io.read_iops,
                "write_iops": io.write_iops,
            })).collect::<Vec<_>>(),
        })
    });
    serde_json::json!({
        "argv": argv,
        "argv_bytes_not_kept": total - kept,
        "env_names": env,
        "name": spec.name,
        "batch": spec.batch,
        "tty": spec.tty.is_some(),
        "network": spec.network,
        "limits": limits,
    })
}
