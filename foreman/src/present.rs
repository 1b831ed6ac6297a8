//! The words and formats that both the CLI and the dashboard show: a job's
//! state, sizes, durations, a command line. Where the two say a job's end
//! differently, on purpose, both are here side by side with the reason, so
//! a change to one is made looking at the other.

use std::time::Duration;

use serde::Serialize;
use tasker_proto::v1 as pb;

use crate::sanitize::Sanitizer;

/// The state words of SPEC §4: `starting`, `running`, `completed`,
/// `failed`, `stopped`.
pub fn phase_name(phase: i32) -> &'static str {
    match pb::JobPhase::try_from(phase) {
        Ok(pb::JobPhase::Starting) => "starting",
        Ok(pb::JobPhase::Running) => "running",
        Ok(pb::JobPhase::Completed) => "completed",
        Ok(pb::JobPhase::Failed) => "failed",
        Ok(pb::JobPhase::Stopped) => "stopped",
        _ => "unknown",
    }
}

// A job's end is said two ways. `--json` gives scripts SPEC §4's exact
// words (`phase`: `failed`; `reason`: `oom_killed`, `stopped_by alice`).
// People, in `foreman ls`, the dashboard and every message, get one
// vocabulary (`state_word`): what happened, in a word or two (`exit 3`,
// `oom-killed`, `stopped`), the colour or the summary saying the rest; the
// crew's summary uses the same words (`stopped by alice (signal 15
// (SIGTERM))`). The dashboard's `/` filter matches these words too.

/// Why a job ended, in SPEC §4's words, for `--json`.
pub fn reason_name(o: &pb::Outcome) -> Option<String> {
    use pb::outcome::Reason;
    Some(match o.reason.as_ref()? {
        Reason::Finished(_) => "finished".to_owned(),
        Reason::OomKilled(_) => "oom_killed".to_owned(),
        Reason::TimedOut(_) => "timed_out".to_owned(),
        Reason::StoppedBy(s) => format!("stopped_by {}", s.who),
        Reason::StartFailed(s) => format!("start_failed: {}", s.reason),
        Reason::Lost(s) => format!("lost: {}", s.reason),
    })
}

/// A job's state for people, in the CLI and the dashboard alike:
/// "starting", "running", "exit 0", "exit 3", "signal 9", "stopped",
/// "oom-killed", "timed out", "no start", "lost".
pub fn state_word(j: &pb::Job) -> String {
    use pb::outcome::{Reason, Termination};
    let Some(o) = &j.outcome else {
        return phase_name(j.phase).to_owned();
    };
    match (&o.reason, o.termination) {
        (Some(Reason::StoppedBy(_)), _) => "stopped".into(),
        (Some(Reason::OomKilled(_)), _) => "oom-killed".into(),
        (Some(Reason::TimedOut(_)), _) => "timed out".into(),
        (Some(Reason::StartFailed(_)), _) => "no start".into(),
        (Some(Reason::Lost(_)), _) => "lost".into(),
        (_, Some(Termination::ExitCode(c))) => format!("exit {c}"),
        (_, Some(Termination::Signal(s))) => format!("signal {s}"),
        _ => phase_name(j.phase).to_owned(),
    }
}

/// Cpu time in a few characters: `0.42s`, `12s`, `3m`, `2h`.
pub fn cpu_time(usec: u64) -> String {
    let secs = usec as f64 / 1e6;
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else {
        short_duration(Duration::from_secs_f64(secs))
    }
}

/// `4s`, `3m`, `2h`, `5d`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `512B`, `1.5K`, `2.0G` (powers of 1024).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A job's command as one line; `…` at the end when the crew sent only
/// its first words (`argv_cut`: lists and watches carry at most 4 KiB).
pub fn job_command(job: &tasker_proto::v1::Job) -> String {
    let mut line = command_line(&job.argv);
    if job.argv_cut {
        line.push_str(" …");
    }
    line
}

/// The argv as one line, each argument filtered and quoted if it needs to.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let a = Sanitizer::clean(a);
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An audit record for people:
/// `2026-12-04T10:01:02Z  alice (user)  stop  allowed  grace 1s`.
pub fn audit_line(r: &tasker_proto::v1::AuditRecord) -> String {
    let at = r.at.as_ref().map(rfc3339).unwrap_or_default();
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
            let mut s = command_line(&argv);
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
            Some(ms) => format!("grace {}", short_duration(std::time::Duration::from_millis(ms))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_and_filtered() {
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            "echo 'hi'\u{1b}]0;x\u{7}".to_owned(),
        ];
        assert_eq!(command_line(&argv), "sh -c 'echo '\\''hi'\\'''");
    }

    #[test]
    fn people_read_one_word_for_a_jobs_end_in_the_cli_and_the_dashboard() {
        use pb::outcome::{Finished, Lost, OomKilled, Reason, StartFailed, StoppedBy, Termination, TimedOut};
        let job = |phase: pb::JobPhase, termination, reason| pb::Job {
            phase: phase as i32,
            outcome: Some(pb::Outcome {
                termination,
                reason,
                summary: String::new(),
            }),
            ..Default::default()
        };
        use pb::JobPhase::{Completed, Failed, Stopped};
        let cases = [
            (
                job(
                    Completed,
                    Some(Termination::ExitCode(0)),
                    Some(Reason::Finished(Finished {})),
                ),
                "exit 0",
            ),
            (
                job(
                    Failed,
                    Some(Termination::ExitCode(3)),
                    Some(Reason::Finished(Finished {})),
                ),
                "exit 3",
            ),
            (job(Failed, Some(Termination::Signal(9)), None), "signal 9"),
            (
                job(
                    Failed,
                    Some(Termination::Signal(9)),
                    Some(Reason::OomKilled(OomKilled {})),
                ),
                "oom-killed",
            ),
            (
                job(
                    Stopped,
                    Some(Termination::Signal(15)),
                    Some(Reason::TimedOut(TimedOut {})),
                ),
                "timed out",
            ),
            (
                job(
                    Stopped,
                    Some(Termination::Signal(15)),
                    Some(Reason::StoppedBy(StoppedBy { who: "alice".into() })),
                ),
                "stopped",
            ),
            (
                job(
                    Failed,
                    None,
                    Some(Reason::StartFailed(StartFailed {
                        reason: "no such file".into(),
                    })),
                ),
                "no start",
            ),
            (
                job(
                    Failed,
                    None,
                    Some(Reason::Lost(Lost {
                        reason: "gone".into(),
                    })),
                ),
                "lost",
            ),
        ];
        for (j, word) in &cases {
            assert_eq!(state_word(j), *word);
        }
        let running = pb::Job {
            phase: pb::JobPhase::Running as i32,
            ..Default::default()
        };
        assert_eq!(state_word(&running), "running");
    }
}

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
    /// A running job's memory now.
    pub memory_bytes: Option<u64>,
    /// Its cpu time: so far while it runs, in all once it has ended.
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
        memory_bytes: j.usage.as_ref().map(|u| u.memory_bytes),
        cpu_usec: j
            .totals
            .as_ref()
            .and_then(|t| t.cpu_usec)
            .or_else(|| j.usage.as_ref().map(|u| u.cpu_usec)),
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

/// A job's details, a line each (what `foreman status` prints and the
/// dashboard's detail view shows), filtered for a terminal.
pub fn details(v: &JobView) -> Vec<(&'static str, String)> {
    let clean = |s: &str| Sanitizer::clean(s);
    let mut lines = vec![
        ("job", format!("{} ({})", v.reference, v.id)),
        ("state", v.state.to_owned()),
        ("command", command_line(&v.argv)),
        ("owner", clean(&v.owner)),
        ("runs as", format!("{} (uid {})", clean(&v.user), v.uid)),
        ("cwd", clean(&v.cwd)),
    ];
    if let Some(n) = &v.name {
        lines.push(("name", clean(n)));
    }
    if let Some(b) = &v.batch {
        lines.push(("batch", clean(b)));
    }
    if v.tty {
        lines.push(("tty", "yes".into()));
    }
    lines.push(("network", v.network.to_owned()));
    if let Some(t) = &v.created_at {
        lines.push(("created", t.clone()));
    }
    if let Some(t) = &v.started_at {
        lines.push(("started", t.clone()));
    }
    if let Some(p) = v.pid {
        lines.push(("pid", p.to_string()));
    }
    if let Some(t) = &v.ended_at {
        lines.push(("ended", t.clone()));
    }
    if let Some(o) = &v.outcome {
        lines.push(("outcome", clean(o)));
    }
    if let Some(m) = v.memory_bytes {
        lines.push(("memory now", bytes(m)));
    }
    if let Some(m) = v.peak_memory_bytes {
        lines.push(("peak memory", bytes(m)));
    }
    if let Some(c) = v.cpu_usec {
        lines.push(("cpu time", format!("{:.3}s", c as f64 / 1e6)));
    }
    let l = &v.limits;
    let mut limits = Vec::new();
    if let Some(c) = l.cpu {
        limits.push(format!("cpu {c}"));
    }
    if let Some(w) = l.cpu_weight {
        limits.push(format!("cpu weight {w}"));
    }
    if let Some(m) = l.memory_bytes {
        limits.push(format!("memory {}", bytes(m)));
    }
    if let Some(m) = l.memory_high_bytes {
        limits.push(format!("soft memory {}", bytes(m)));
    }
    if let Some(p) = l.pids {
        limits.push(format!("pids {p}"));
    }
    for io in &l.io {
        let rates = [
            ("read", io.read_bps.map(|b| format!("{}/s", bytes(b)))),
            ("write", io.write_bps.map(|b| format!("{}/s", bytes(b)))),
            ("read", io.read_iops.map(|n| format!("{n} ops/s"))),
            ("write", io.write_iops.map(|n| format!("{n} ops/s"))),
        ];
        for (what, rate) in rates {
            if let Some(rate) = rate {
                limits.push(format!("{} {what} {rate}", clean(&io.device)));
            }
        }
    }
    if let Some(t) = l.timeout_secs {
        limits.push(format!("timeout {t}s"));
    }
    if !limits.is_empty() {
        lines.push(("limits", limits.join(", ")));
    }
    if let Some(e) = &v.output_error {
        lines.push(("output error", clean(e)));
    }
    if v.archived {
        lines.push(("archived", "yes".into()));
    }
    lines
}

/// The exit code a job's end maps to, as a shell would: the code, or
/// 128 + the signal; 127 for a command that never started.
pub fn exit_code(j: &pb::Job) -> u8 {
    use pb::outcome::{Reason, Termination};
    let Some(o) = &j.outcome else { return 1 };
    match (o.termination, &o.reason) {
        (Some(Termination::ExitCode(c)), _) => u8::try_from(c.clamp(0, 255)).unwrap_or(1),
        (Some(Termination::Signal(s)), _) => u8::try_from((128 + s).clamp(0, 255)).unwrap_or(1),
        (None, Some(Reason::StartFailed(_))) => 127,
        _ => 1,
    }
}

/// `alpha/job-3 ended: stopped by alice (signal 15 (SIGTERM))`,
/// `alpha/job-1 ended: exit 0`: how a job ended, in one line, filtered.
pub fn end_line(crew: &str, job: &pb::Job) -> String {
    let summary = job
        .outcome
        .as_ref()
        .map(|o| o.summary.as_str())
        .unwrap_or_default();
    format!("{crew}/{} ended: {}", job.handle, Sanitizer::clean(summary))
}
