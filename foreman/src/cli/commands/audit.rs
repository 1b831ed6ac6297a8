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
        outln!("{}", Sanitizer::clean(&line(r)));
    }
    Ok(())
}

/// `2026-12-04T10:01:02.123Z  alice (user)  stop  allowed  grace 1s`.
pub fn line(r: &pb::AuditRecord) -> String {
    let at = r.at.as_ref().map(crate::present::rfc3339).unwrap_or_default();
    let who = if r.subject.is_empty() {
        "(no identity)".to_owned()
    } else {
        format!("{} ({})", r.subject, r.role)
    };
    let mut text = format!("{at}  {who}  {}  {}", r.call, r.decision);
    let said = said(&r.call, &r.detail_json);
    if !said.is_empty() {
        text.push_str(&format!("  {said}"));
    }
    if !r.why.is_empty() {
        text.push_str(&format!(": {}", r.why));
    }
    text
}

/// The detail a person wants of each call.
fn said(call: &str, detail: &str) -> String {
    let d: serde_json::Value = serde_json::from_str(detail).unwrap_or_default();
    let n = |k: &str| d.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    match call {
        "start" => {
            let argv: Vec<String> = d
                .get("argv")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect())
                .unwrap_or_default();
            let mut s = crate::present::command_line(&argv);
            if n("argv_bytes_not_kept") > 0 {
                s.push_str(&format!(" [+{} bytes]", n("argv_bytes_not_kept")));
            }
            let env: Vec<&str> = d
                .get("env_names")
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if !env.is_empty() {
                s.push_str(&format!(" (env {})", env.join(",")));
            }
            s
        }
        "stop" => match d.get("grace_ms").and_then(serde_json::Value::as_u64) {
            Some(ms) => format!(
                "grace {}",
                crate::present::short_duration(std::time::Duration::from_millis(ms))
            ),
            None => String::new(),
        },
        "input" if d.get("refused").is_some() => {
            format!("{} refused", d["refused"].as_str().unwrap_or_default())
        }
        "input" => {
            let mut s = format!(
                "{} bytes of stdin in {} writes",
                n("stdin_bytes"),
                n("stdin_writes")
            );
            if n("resizes") > 0 {
                s.push_str(&format!(", {} resizes", n("resizes")));
            }
            if d.get("eof").and_then(serde_json::Value::as_bool) == Some(true) {
                s.push_str(", EOF");
            }
            s
        }
        "attach" => "for writing".to_owned(),
        _ => String::new(),
    }
}
