//! What the CLI prints: human tables and `--json` (the words and formats
//! it shares with the dashboard are in `present.rs`). Every string that came
//! from a job (names, argv, reasons) is filtered before it reaches a
//! terminal; JSON carries them as they are, escaped by JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::failure::Failure;
use crate::present::short_duration;
pub use crate::present::{JobView, exit_code as exit_code_of, rfc3339, view};

/// `println!` for the CLI's stdout, returning from the function with the
/// failure: a reader that went away (`| head`, `| grep -q`) ends the
/// command quietly with success, never a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

/// One line to stdout (see [`outln!`]).
pub fn write_line(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Exit(0)),
        Err(e) => Err(Failure::Connection(format!("writing the output: {e}"))),
    }
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
    use tasker_proto::v1 as pb;

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
