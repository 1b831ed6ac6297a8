//! Output times: reading `--since`/`--until` and writing each line's time
//! (`--timestamps`), from the marks the crew sends with the output.
//!
//! Times are UTC, as everywhere in foreman: a fleet spans time zones, and
//! one line's time must read the same on every screen.

use tasker_proto::v1 as pb;
use tasker_proto::v1::time_point::At;

/// Reads a time point: a duration before now (`10m`, `90s`, `2h`, `7d`),
/// an RFC 3339 time (`2026-12-04T13:00:00Z`, `…+01:00`), or a time of day
/// today, UTC (`13:05`, `13:05:30`).
///
/// # Errors
///
/// A sentence naming the input and the forms it may take.
pub fn parse_point(s: &str) -> Result<pb::TimePoint, String> {
    let at = if let Ok(d) = tasker_common::parse_duration(s) {
        At::Ago(prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos() as i32,
        })
    } else if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        At::Time(timestamp(t))
    } else if let Some(t) = time_of_day(s) {
        let today = time::OffsetDateTime::now_utc().date();
        At::Time(timestamp(today.with_time(t).assume_utc()))
    } else {
        return Err(
            "not a time: give a duration before now (10m, 2h, 7d), a time of day in UTC \
                    (13:05 or 13:05:30), or an RFC 3339 time (2026-12-04T13:05:00Z)"
                .to_owned(),
        );
    };
    Ok(pb::TimePoint { at: Some(at) })
}

/// [`parse_point`] for an end: a time given includes its millisecond (as
/// `-t` shows it), so the line shown at 13:05:30.123 is in `--until
/// 13:05:30.123`.
///
/// # Errors
///
/// As [`parse_point`].
pub fn parse_until(s: &str) -> Result<pb::TimePoint, String> {
    let mut p = parse_point(s)?;
    if let Some(At::Time(t)) = &mut p.at {
        let ns = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos) + 999_999;
        t.seconds = ns.div_euclid(1_000_000_000) as i64;
        t.nanos = ns.rem_euclid(1_000_000_000) as i32;
    }
    Ok(p)
}

fn timestamp(t: time::OffsetDateTime) -> prost_types::Timestamp {
    let ns = t.unix_timestamp_nanos();
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000) as i64,
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// `HH:MM` or `HH:MM:SS`.
fn time_of_day(s: &str) -> Option<time::Time> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u8>().ok());
    time::Time::from_hms(n(0)?, n(1)?, n(2)?).ok()
}

/// `2026-12-04T13:05:30.123Z`: a mark's time, to the millisecond (the
/// index's grain).
#[must_use]
pub fn format_utc(t: &prost_types::Timestamp) -> String {
    let ns = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    match time::OffsetDateTime::from_unix_timestamp_nanos(ns) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second(),
            d.millisecond()
        ),
        Err(_) => NO_TIME.to_owned(),
    }
}

/// Splits a chunk at `offset` by its marks: each part with the mark that
/// covers it (`None` for bytes no mark covers: stored without times).
pub fn segments<'a>(
    offset: u64,
    data: &'a [u8],
    marks: &'a [pb::Mark],
) -> impl Iterator<Item = (u64, &'a [u8], Option<&'a pb::Mark>)> + 'a {
    let end = offset + data.len() as u64;
    // The mark covering `offset`, then those starting within.
    let first = marks.iter().rposition(|m| m.offset <= offset);
    let covering = first.map(|i| &marks[i]);
    let within = marks[first.map_or(0, |i| i + 1)..]
        .iter()
        .filter(move |m| m.offset > offset && m.offset < end);
    let starts = std::iter::once((offset, covering)).chain(within.map(|m| (m.offset, Some(m))));
    let starts: Vec<(u64, Option<&pb::Mark>)> = starts.collect();
    let ends: Vec<u64> = starts
        .iter()
        .skip(1)
        .map(|(o, _)| *o)
        .chain(std::iter::once(end))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|((from, _), to)| to > from)
        .map(move |((from, mark), to)| {
            let part = &data[(from - offset) as usize..(to - offset) as usize];
            (from, part, mark)
        })
}

/// What a line stored without a time shows instead, as wide as a time.
pub const NO_TIME: &str = "-                       ";

/// Puts each line's time before it: the time of the mark covering the
/// line's first byte. Lines may span chunks; the stamper remembers where
/// it is.
#[derive(Debug)]
pub struct Stamper {
    at_line_start: bool,
    /// The mark covering the next byte, if any.
    current: Option<pb::Mark>,
}

impl Default for Stamper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stamper {
    #[must_use]
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            current: None,
        }
    }

    /// One chunk at stream offset `offset` with its marks, stamped, onto
    /// `out`.
    pub fn stamp(&mut self, offset: u64, data: &[u8], marks: &[pb::Mark], out: &mut Vec<u8>) {
        let mut marks = marks.iter().peekable();
        for (i, &b) in data.iter().enumerate() {
            let at = offset + i as u64;
            while let Some(m) = marks.next_if(|m| m.offset <= at) {
                self.current = Some(*m);
            }
            if self.at_line_start {
                match self.current.as_ref().and_then(|m| m.time.as_ref()) {
                    Some(t) => out.extend_from_slice(format_utc(t).as_bytes()),
                    None => out.extend_from_slice(NO_TIME.as_bytes()),
                }
                out.push(b' ');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(offset: u64, seconds: i64, millis: i32) -> pb::Mark {
        pb::Mark {
            offset,
            time: Some(prost_types::Timestamp {
                seconds,
                nanos: millis * 1_000_000,
            }),
            stream: pb::Stream::Stdout.into(),
        }
    }

    #[test]
    fn points_read_as_durations_times_of_day_and_rfc3339() {
        let Some(At::Ago(d)) = parse_point("10m").unwrap().at else {
            panic!("an ago")
        };
        assert_eq!((d.seconds, d.nanos), (600, 0));
        let Some(At::Time(t)) = parse_point("2026-12-04T13:05:00.5+01:00").unwrap().at else {
            panic!("a time")
        };
        assert_eq!((t.seconds, t.nanos), (1_796_385_900, 500_000_000));
        let Some(At::Time(t)) = parse_point("13:05").unwrap().at else {
            panic!("a time")
        };
        assert_eq!(t.seconds.rem_euclid(86_400), 13 * 3600 + 5 * 60, "today, UTC");
        for bad in ["13:5", "25:00", "1:5", "yesterday", "10 m", "-5m", ""] {
            let e = parse_point(bad).unwrap_err();
            assert!(e.contains("not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn each_line_gets_the_time_of_its_first_byte_across_chunks() {
        let mut s = Stamper::new();
        let mut out = Vec::new();
        // "one\ntw" at offset 0 with a mark at 0 and one at 4 (line two).
        s.stamp(0, b"one\ntw", &[mark(0, 0, 1), mark(4, 60, 2)], &mut out);
        // "o\nthree\n": line two goes on; line three starts at 8, still
        // under the mark at 4, until a mark at 9 (mid-line, ignored).
        s.stamp(6, b"o\nthree\n", &[mark(4, 60, 2), mark(9, 120, 0)], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00.001Z one\n1970-01-01T00:01:00.002Z two\n1970-01-01T00:01:00.002Z three\n"
        );
        let mut out = Vec::new();
        Stamper::new().stamp(0, b"x\n", &[], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{NO_TIME} x\n"));
    }
}
