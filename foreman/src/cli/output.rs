//! What the CLI prints: human tables and `--json` (the words and formats
//! it shares with the dashboard are in `present.rs`). Every string that came
//! from a job (names, argv, reasons) is filtered before it reaches a
//! terminal; JSON carries them as they are, escaped by JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tasker_proto::v1 as pb;

use crate::present::{phase_name, reason_name, short_duration};

/// A job as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub crew: String,
    pub id: String,
    pub handle: String,
    pub reference: String,
    pub name: Option<String>,
    /// The batch it is one of (`foreman run --crew` on several crews).
    pub batch: Option<String>,
    pub owner: String,
    pub state: &'static str,
    pub argv: Vec<String>,
    /// `argv` holds only the command's first words (`foreman status` has
    /// them all).
    pub argv_cut: bool,
    pub user: String,
    pub uid: u32,
    pub cwd: String,
    pub tty: bool,
    pub network: &'static str,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub outcome: Option<String>,
    pub peak_memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub limits: LimitsView,
    pub output_error: Option<String>,
    pub archived: bool,
}

#[derive(Debug, Serialize)]
pub struct LimitsView {
    pub cpu: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_high_bytes: Option<u64>,
    pub cpu_weight: Option<u32>,
    pub pids: Option<u64>,
    pub io: Vec<IoView>,
    pub timeout_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct IoView {
    pub device: String,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

pub fn view(crew: &str, j: &pb::Job) -> JobView {
    use pb::outcome::Termination;
    let (exit_code, signal) = match j.outcome.as_ref().and_then(|o| o.termination) {
        Some(Termination::ExitCode(c)) => (Some(c), None),
        Some(Termination::Signal(s)) => (None, Some(s)),
        None => (None, None),
    };
    let limits = j.limits.clone().unwrap_or_default();
    JobView {
        crew: crew.to_owned(),
        id: j.id.clone(),
        handle: j.handle.clone(),
        reference: format!("{crew}/{}", j.handle),
        name: (!j.name.is_empty()).then(|| j.name.clone()),
        batch: (!j.batch.is_empty()).then(|| j.batch.clone()),
        owner: j.owner.clone(),
        state: phase_name(j.phase),
        argv: j.argv.clone(),
        argv_cut: j.argv_cut,
        user: j.user.clone(),
        uid: j.uid,
        cwd: j.cwd.clone(),
        tty: j.tty.is_some(),
        network: if j.network == pb::Network::Host as i32 {
            "host"
        } else {
            "isolated"
        },
        created_at: j.created_at.as_ref().map(rfc3339),
        started_at: j.started_at.as_ref().map(rfc3339),
        ended_at: j.ended_at.as_ref().map(rfc3339),
        pid: (j.pid != 0).then_some(j.pid),
        exit_code,
        signal,
        reason: j.outcome.as_ref().and_then(reason_name),
        outcome: j.outcome.as_ref().map(|o| o.summary.clone()),
        peak_memory_bytes: j.totals.as_ref().and_then(|t| t.peak_memory_bytes),
        cpu_usec: j.totals.as_ref().and_then(|t| t.cpu_usec),
        limits: LimitsView {
            cpu: limits.cpu,
            memory_bytes: limits.memory_bytes,
            memory_high_bytes: limits.memory_high_bytes,
            cpu_weight: limits.cpu_weight,
            pids: limits.pids,
            io: limits
                .io
                .iter()
                .map(|l| IoView {
                    device: l.device.clone(),
                    read_bps: l.read_bps,
                    write_bps: l.write_bps,
                    read_iops: l.read_iops,
                    write_iops: l.write_iops,
                })
                .collect(),
            timeout_secs: j
                .timeout
                .as_ref()
                .map(|d| d.seconds as f64 + f64::from(d.nanos) / 1e9),
        },
        output_error: (!j.output_error.is_empty()).then(|| j.output_error.clone()),
        archived: j.archived,
    }
}

/// The exit code a job's end maps to, as a shell would: the code, or
/// 128 + the signal; 127 for a command that never started.
pub fn exit_code_of(j: &pb::Job) -> u8 {
    use pb::outcome::{Reason, Termination};
    let Some(o) = &j.outcome else { return 1 };
    match (o.termination, &o.reason) {
        (Some(Termination::ExitCode(c)), _) => u8::try_from(c.clamp(0, 255)).unwrap_or(1),
        (Some(Termination::Signal(s)), _) => u8::try_from((128 + s).clamp(0, 255)).unwrap_or(1),
        (None, Some(Reason::StartFailed(_))) => 127,
        _ => 1,
    }
}

/// `2026-11-23T01:02:03Z`.
pub fn rfc3339(t: &prost_types::Timestamp) -> String {
    let secs = t.seconds;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `4s`, `3m`, `2h`, `5d`.
pub fn age(t: &prost_types::Timestamp) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    short_duration(Duration::from_secs(now.saturating_sub(t.seconds).max(0) as u64))
}

/// Rows of cells as a left-aligned table; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::present::bytes;

    #[test]
    fn times_format_as_rfc3339() {
        let t = |s| prost_types::Timestamp { seconds: s, nanos: 0 };
        assert_eq!(rfc3339(&t(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(&t(1_795_398_956)), "2026-11-23T01:55:56Z");
        assert_eq!(rfc3339(&t(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(short_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(bytes(1536), "1.5K");
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let job = |t, r| pb::Job {
            outcome: Some(pb::Outcome {
                termination: t,
                reason: r,
                summary: String::new(),
            }),
            ..Default::default()
        };
        use pb::outcome::{Reason, StartFailed, Termination};
        assert_eq!(exit_code_of(&job(Some(Termination::ExitCode(3)), None)), 3);
        assert_eq!(exit_code_of(&job(Some(Termination::Signal(9)), None)), 137);
        assert_eq!(
            exit_code_of(&job(
                None,
                Some(Reason::StartFailed(StartFailed { reason: "x".into() }))
            )),
            127
        );
    }
}
