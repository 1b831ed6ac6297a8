//! A job's output as an asciicast v2 recording (`foreman logs
//! --asciicast`), playable by asciinema: a JSON header line, then one
//! `[seconds, "o", text]` event per marked part of the output, its time
//! from the job's time index.
//!
//! Format: <https://docs.asciinema.org/manual/asciicast/v2/>. Event text
//! is UTF-8; a character split between two parts is carried to the next,
//! and bytes that are not UTF-8 become U+FFFD (as a terminal shows them).
//! JSON escapes every control character, so a recording printed to a
//! terminal cannot drive it.

use tasker_proto::v1 as pb;

/// Writes a recording, part by part.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The first part's time (the recording's start), ns since the epoch.
    start_ns: Option<i128>,
    /// The last event's time: events never go back, even if the wall
    /// clock did.
    last: f64,
    /// The start of a character cut at the end of the last part.
    carry: Vec<u8>,
    /// Newlines as `\r\n`: a pipe job's output, which no terminal's
    /// `onlcr` translated.
    onlcr: bool,
}

/// The header line: the terminal's size and the recording's start.
#[must_use]
pub fn header(cols: u32, rows: u32, start_ns: Option<i128>, title: &str) -> String {
    let mut h = serde_json::json!({
        "version": 2,
        "width": cols,
        "height": rows,
        "title": title,
    });
    if let Some(ns) = start_ns {
        h["timestamp"] = serde_json::json!(ns.div_euclid(1_000_000_000) as i64);
    }
    h.to_string()
}

/// A mark's wall time, ns since the epoch.
#[must_use]
pub fn mark_ns(m: &pb::Mark) -> Option<i128> {
    m.time
        .as_ref()
        .map(|t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
}

impl Recorder {
    /// `onlcr`: the output did not come through a terminal (a pipe job's).
    #[must_use]
    pub fn new(onlcr: bool) -> Self {
        Self {
            onlcr,
            ..Self::default()
        }
    }

    /// The event line for one part stored at `at_ns` (its mark's time;
    /// `None` for output stored without one, which takes the last time),
    /// or nothing if the part holds no whole character yet.
    pub fn event(&mut self, at_ns: Option<i128>, data: &[u8]) -> Option<String> {
        let start = *self.start_ns.get_or_insert(at_ns.unwrap_or(0));
        let t = at_ns.map_or(self.last, |ns| ((ns - start) as f64 / 1e9).max(self.last));
        self.last = t;
        self.carry.extend_from_slice(data);
        let mut text = self.take_text();
        if self.onlcr {
            text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        if text.is_empty() {
            return None;
        }
        // Microseconds, as asciinema writes them.
        let t = (t * 1e6).round() / 1e6;
        Some(serde_json::json!([t, "o", text]).to_string())
    }

    /// The carried bytes as text, leaving a cut character's start carried.
    fn take_text(&mut self) -> String {
        let mut text = String::new();
        let mut rest: &[u8] = &self.carry;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(good).expect("valid up to here"));
                    match e.error_len() {
                        Some(n) => {
                            text.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                        // Cut at the end: the rest comes with the next part.
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.carry = rest.to_vec();
        text
    }

    /// What is still carried at the end (a character never finished).
    pub fn finish(&mut self) -> Option<String> {
        if self.carry.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned();
        Some(serde_json::json!([self.last, "o", text]).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_relative_never_go_back_and_carry_cut_characters() {
        let mut r = Recorder::default();
        let s = 1_000_000_000i128;
        assert_eq!(
            r.event(Some(100 * s), b"a\x1b[1m").unwrap(),
            r#"[0.0,"o","a\u001b[1m"]"#
        );
        // "é" (c3 a9) cut in two.
        assert_eq!(
            r.event(Some(100 * s + s / 2), b"x\xc3"),
            Some(r#"[0.5,"o","x"]"#.into())
        );
        assert_eq!(r.event(Some(101 * s), b"\xa9"), Some(r#"[1.0,"o","é"]"#.into()));
        // A clock set back: the event keeps the last time.
        assert_eq!(
            r.event(Some(50 * s), b"\xffz"),
            Some("[1.0,\"o\",\"\u{FFFD}z\"]".into())
        );
        assert_eq!(r.event(None, b"\xe2\x82"), None);
        assert_eq!(r.finish(), Some("[1.0,\"o\",\"\u{FFFD}\"]".into()));
        // A pipe job's lines, as a terminal shows them.
        let mut pipe = Recorder::new(true);
        assert_eq!(
            pipe.event(Some(0), b"a\nb\r\n"),
            Some(r#"[0.0,"o","a\r\nb\r\n"]"#.into())
        );
        let h: serde_json::Value =
            serde_json::from_str(&header(80, 24, Some(100 * s + 7), "a/job-1")).unwrap();
        assert_eq!(
            (
                h["version"].as_u64(),
                h["width"].as_u64(),
                h["height"].as_u64(),
                h["timestamp"].as_i64()
            ),
            (Some(2), Some(80), Some(24), Some(100))
        );
    }
}
