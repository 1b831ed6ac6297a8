//! `foreman audit JOB [--json]`: the job's trail in its crew's audit log.

use tasker_proto::v1 as pb;

use crate::cli::Ctx;
use crate::cli::output::outln;
use crate::cli::refs::resolve;
use crate::failure::Failure;
use crate::sanitize::Sanitizer;

pub async fn audit(ctx: &Ctx, job: &str, json: bool) -> Result<(), Failure> {
    let (crew, found) = resolve(ctx, job).await?;
    let mut client = crew.client.clone();
    let trail = client
        .audit_trail(pb::AuditTrailRequest {
            job: found.id.clone(),
            limit: 0,
        })
        .await
        .map_err(|s| Failure::from_status(&crew.name, &s))?
        .into_inner();
    if json {
        for r in &trail.records {
            let detail: serde_json::Value = serde_json::from_str(&r.detail_json).unwrap_or_default();
            let line = serde_json::json!({
                "crew": crew.name,
                "job": trail.job,
                "seq": r.seq,
                "at": r.at.as_ref().map(crate::present::rfc3339),
                "call": r.call,
                "subject": r.subject,
                "role": r.role,
                "decision": r.decision,
                "why": r.why,
                "detail": detail,
            });
            outln!("{line}");
        }
        return Ok(());
    }
    if trail.records.is_empty() {
        outln!("{}/{}: no audit records", crew.name, found.handle);
        return Ok(());
    }
    for r in &trail.records {
        outln!("{}", Sanitizer::clean(&crate::present::audit_line(r)));
    }
    Ok(())
}
