//! The words and formats that both the CLI and the dashboard show: a job's
//! state, sizes, durations, a command line. Where the two say a job's end
//! differently, on purpose, both are here side by side with the reason, so
//! a change to one is made looking at the other.

use std::time::Duration;

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

// A job's end is said three ways. `--json` gives scripts SPEC §4's exact
// words (`oom_killed`, `stopped_by alice`). `foreman ls` has room for
// SPEC §4's state word and then why, in brackets (`failed (oom)`). The
// dashboard's STATE column is ten cells wide and its colour already tells
// ok from failed, so it says only why (`oom-killed`); its `/` filter
// matches these words too.

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

/// `foreman ls`'s state: "running", "completed", "failed (exit 3)",
/// "failed (oom)", "stopped (timeout)", "failed (start failed)".
pub fn cli_state(j: &pb::Job) -> String {
    use pb::outcome::{Reason, Termination};
    let phase = phase_name(j.phase);
    if phase == "completed" {
        return phase.to_owned();
    }
    let Some(o) = &j.outcome else {
        return phase.to_owned();
    };
    match (&o.reason, o.termination) {
        (Some(Reason::StartFailed(_)), _) => format!("{phase} (start failed)"),
        (Some(Reason::OomKilled(_)), _) => format!("{phase} (oom)"),
        (Some(Reason::TimedOut(_)), _) => format!("{phase} (timeout)"),
        (_, Some(Termination::ExitCode(c))) => format!("{phase} (exit {c})"),
        (_, Some(Termination::Signal(s))) => format!("{phase} (signal {s})"),
        _ => phase.to_owned(),
    }
}

/// The dashboard's state: "running", "exit 3", "signal 9", "stopped",
/// "oom-killed", "timed out", "no start", "lost".
pub fn dashboard_state(j: &pb::Job) -> String {
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
    fn the_cli_and_the_dashboard_say_a_jobs_end_each_their_way() {
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
                "completed",
                "exit 0",
            ),
            (
                job(
                    Failed,
                    Some(Termination::ExitCode(3)),
                    Some(Reason::Finished(Finished {})),
                ),
                "failed (exit 3)",
                "exit 3",
            ),
            (
                job(Failed, Some(Termination::Signal(9)), None),
                "failed (signal 9)",
                "signal 9",
            ),
            (
                job(
                    Failed,
                    Some(Termination::Signal(9)),
                    Some(Reason::OomKilled(OomKilled {})),
                ),
                "failed (oom)",
                "oom-killed",
            ),
            (
                job(
                    Stopped,
                    Some(Termination::Signal(15)),
                    Some(Reason::TimedOut(TimedOut {})),
                ),
                "stopped (timeout)",
                "timed out",
            ),
            (
                job(
                    Stopped,
                    Some(Termination::Signal(15)),
                    Some(Reason::StoppedBy(StoppedBy { who: "alice".into() })),
                ),
                "stopped (signal 15)",
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
                "failed (start failed)",
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
                "failed",
                "lost",
            ),
        ];
        for (j, cli, dashboard) in &cases {
            assert_eq!(cli_state(j), *cli);
            assert_eq!(dashboard_state(j), *dashboard);
        }
        let running = pb::Job {
            phase: pb::JobPhase::Running as i32,
            ..Default::default()
        };
        assert_eq!(cli_state(&running), "running");
        assert_eq!(dashboard_state(&running), "running");
    }
}
