//! Job output is untrusted: before it reaches the operator's terminal, the
//! sequences that could do harm there are taken out.
//!
//! Two strengths:
//! - [`Mode::Plain`], for logs and job fields printed to a terminal: text,
//!   newlines, tabs, carriage returns and colours (SGR), nothing else.
//! - [`Mode::Terminal`], for `foreman attach` to a tty job, where the job
//!   must drive the screen (vim, top): cursor movement, erasing, modes and
//!   colours pass; anything that talks *to* the terminal does not: OSC
//!   (title, clipboard OSC 52, hyperlinks), DCS/APC/PM/SOS strings, queries
//!   the terminal would answer on our stdin (device status, device
//!   attributes, window reports), full reset, C1 controls, and
//!   right-to-left overrides that can disguise text.
//!
//! The filter is a state machine fed chunk by chunk, so a sequence split
//! across two chunks is handled like one in a single chunk. Invalid UTF-8
//! becomes U+FFFD.

/// How much a [`Sanitizer`] lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Terminal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    Escape,
    /// `ESC (` and friends: one more byte names a character set.
    Charset(u8),
    Csi,
    /// OSC, DCS, APC, PM, SOS: skipped to their terminator.
    Str {
        osc: bool,
        esc: bool,
    },
}

/// The longest CSI sequence kept; longer ones are dropped whole.
const MAX_CSI: usize = 64;

#[derive(Debug)]
pub struct Sanitizer {
    mode: Mode,
    state: State,
    csi: Vec<u8>,
    csi_overflow: bool,
    /// An incomplete UTF-8 character from the previous chunk.
    utf8: Vec<u8>,
}

impl Sanitizer {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            state: State::Ground,
            csi: Vec::new(),
            csi_overflow: false,
            utf8: Vec::new(),
        }
    }

    /// Filters one chunk, appending what may pass to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// Filters a whole text at once (for job fields such as names and argv).
    pub fn clean(text: &str) -> String {
        let mut s = Self::new(Mode::Plain);
        let mut out = Vec::with_capacity(text.len());
        s.feed(text.as_bytes(), &mut out);
        s.finish(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Flushes an incomplete UTF-8 character at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.utf8.is_empty() {
            self.utf8.clear();
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Escape => self.escape(b, out),
            State::Charset(intro) => {
                self.state = State::Ground;
                if self.mode == Mode::Terminal && (0x20..0x7f).contains(&b) {
                    out.extend_from_slice(&[0x1b, intro, b]);
                }
            }
            State::Csi => self.csi_byte(b, out),
            State::Str { osc, esc } => {
                self.state = match (b, esc) {
                    // ST (ESC \) or BEL (OSC) ends it; CAN/SUB abort it.
                    (b'\\', true) | (0x18 | 0x1a, _) => State::Ground,
                    (0x07, _) if osc => State::Ground,
                    // In plain mode an unterminated string must not swallow
                    // the rest of the log.
                    (b'\n', _) if self.mode == Mode::Plain => {
                        out.push(b'\n');
                        State::Ground
                    }
                    (0x1b, _) => State::Str { osc, esc: true },
                    _ => State::Str { osc, esc: false },
                };
            }
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        if !self.utf8.is_empty() || b >= 0x80 {
            return self.utf8_byte(b, out);
        }
        match b {
            0x1b => self.state = State::Escape,
            b'\n' | b'\t' | b'\r' => out.push(b),
            // Backspace and bell are how terminal programs work; in a log
            // they can only hide what was printed.
            0x08 | 0x07 if self.mode == Mode::Terminal => out.push(b),
            0x00..=0x1f | 0x7f => {}
            _ => out.push(b),
        }
    }

    fn utf8_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.utf8.is_empty() {
            let len = match b {
                0xc2..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf4 => 4,
                _ => {
                    out.extend_from_slice("\u{fffd}".as_bytes());
                    return;
                }
            };
            self.utf8.reserve(len);
            self.utf8.push(b);
            return;
        }
        if b & 0xc0 != 0x80 {
            // Not a continuation: the pending character was invalid.
            self.utf8.clear();
            out.extend_from_slice("\u{fffd}".as_bytes());
            return self.ground(b, out);
        }
        self.utf8.push(b);
        let want = match self.utf8[0] {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        if self.utf8.len() < want {
            return;
        }
        let bytes = std::mem::take(&mut self.utf8);
        match std::str::from_utf8(&bytes).ok().and_then(|s| s.chars().next()) {
            Some(c) if is_hidden_control(c) => {}
            Some(_) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice("\u{fffd}".as_bytes()),
        }
    }

    fn escape(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = State::Ground;
        match b {
            b'[' => {
                self.csi.clear();
                self.csi_overflow = false;
                self.state = State::Csi;
            }
            b']' => {
                self.state = State::Str {
                    osc: true,
                    esc: false,
                }
            }
            b'P' | b'_' | b'^' | b'X' => {
                self.state = State::Str {
                    osc: false,
                    esc: false,
                }
            }
            // Save/restore cursor, keypad modes, index, next line, tab set.
            b'7' | b'8' | b'=' | b'>' | b'M' | b'D' | b'E' | b'H' if self.mode == Mode::Terminal => {
                out.extend_from_slice(&[0x1b, b]);
            }
            b'(' | b')' | b'*' | b'+' => self.state = State::Charset(b),
            // ESC ESC: the first was a lone escape; start over.
            0x1b => self.state = State::Escape,
            // RIS (ESC c) and everything else: dropped.
            _ => {}
        }
    }

    fn csi_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            0x40..=0x7e => {
                self.state = State::Ground;
                if !self.csi_overflow && self.csi_allowed(b) {
                    out.extend_from_slice(b"\x1b[");
                    out.extend_from_slice(&self.csi);
                    out.push(b);
                }
            }
            0x20..=0x3f => {
                if self.csi.len() < MAX_CSI {
                    self.csi.push(b);
                } else {
                    self.csi_overflow = true;
                }
            }
            // CAN/SUB abort; ESC starts a new sequence; other controls
            // inside a CSI are dropped.
            0x18 | 0x1a => self.state = State::Ground,
            0x1b => self.state = State::Escape,
            _ => {}
        }
    }

    fn csi_allowed(&self, fin: u8) -> bool {
        let params = &self.csi;
        let private = params
            .first()
            .is_some_and(|p| matches!(p, b'?' | b'>' | b'<' | b'='));
        let intermediate = params.iter().any(|p| (0x20..=0x2f).contains(p));
        match self.mode {
            Mode::Plain => {
                fin == b'm'
                    && !private
                    && params
                        .iter()
                        .all(|p| p.is_ascii_digit() || *p == b';' || *p == b':')
            }
            Mode::Terminal => match fin {
                // Queries and reports the terminal would answer on stdin:
                // device status, device attributes, window ops, version,
                // mode and parameter requests.
                b'n' | b'c' | b't' | b'x' => false,
                b'q' => intermediate && !private,
                b'p' => false,
                b'u' => !private,
                _ => true,
            },
        }
    }
}

/// Characters that change how text around them looks without being seen:
/// C1 controls and bidirectional overrides and isolates.
fn is_hidden_control(c: char) -> bool {
    matches!(c, '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: Mode, input: &[u8]) -> Vec<u8> {
        let mut s = Sanitizer::new(mode);
        let mut out = Vec::new();
        s.feed(input, &mut out);
        s.finish(&mut out);
        out
    }

    /// Payloads from the adversarial plan (H.47) and friends.
    const HOSTILE: &[&[u8]] = &[
        b"\x1b]52;c;aGVsbG8=\x07",
        b"\x1b]0;pwned title\x07",
        b"\x1b]2;pwned\x1b\\",
        b"\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\",
        b"\x1bP$q\"p\x1b\\",
        b"\x1b_apc payload\x1b\\",
        b"\x1b^pm\x1b\\",
        b"\x1bXsos\x1b\\",
        b"\x1b[6n",
        b"\x1b[c",
        b"\x1b[>c",
        b"\x1b[14t",
        b"\x1b[>q",
        b"\x1b[?1049$p",
        b"\x1bc",
        b"\xc2\x9b6n",
        b"\xc2\x9d0;x\x07",
        b"\xe2\x80\xae",
        b"\x0e\x0f\x00\x7f",
    ];

    #[test]
    fn nothing_that_talks_to_the_terminal_passes_in_either_mode() {
        for mode in [Mode::Plain, Mode::Terminal] {
            for payload in HOSTILE {
                let out = run(mode, payload);
                let text = String::from_utf8_lossy(&out);
                assert!(
                    !out.contains(&0x1b) || mode == Mode::Terminal,
                    "{mode:?} {payload:?} -> {text:?}"
                );
                for bad in [
                    "]52", "]0;", "]2;", "]8;", "P$q", "[6n", "[c", "[>c", "[14t", "[>q", "$p", "\x1bc",
                    "\u{202e}", "\u{9b}",
                ] {
                    assert!(
                        !text.contains(bad),
                        "{mode:?} {payload:?} let {bad:?} through: {text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_mode_keeps_text_and_colours_only() {
        assert_eq!(
            run(Mode::Plain, b"a\x1b[31mred\x1b[0m\tb\r\n"),
            b"a\x1b[31mred\x1b[0m\tb\r\n"
        );
        assert_eq!(run(Mode::Plain, b"x\x1b[2Jy\x1b[10Az\x08\x07"), b"xyz");
        // An unterminated OSC ends at the line's end, not the log's.
        assert_eq!(run(Mode::Plain, b"\x1b]0;never ends\nvisible\n"), b"\nvisible\n");
        assert_eq!(Sanitizer::clean("job\u{1b}]0;t\u{7}\u{202e}name"), "jobname");
    }

    #[test]
    fn terminal_mode_keeps_what_screen_programs_need() {
        let screen = b"\x1b[?1049h\x1b[2J\x1b[H\x1b[1;31mtop\x1b[0m\x1b[5;10H\x1b7\x1b8\x1b(B\x1b[?25l\x1b[2 q\x1b[?1049l";
        assert_eq!(run(Mode::Terminal, screen), screen);
        assert_eq!(run(Mode::Terminal, b"a\x08b\x07"), b"a\x08b\x07");
    }

    #[test]
    fn sequences_split_across_chunks_are_handled_the_same() {
        let input = b"ok\x1b]52;c;abc\x07\x1b[31mred\xe2\x82\xac\x1b[6n end";
        let whole = run(Mode::Terminal, input);
        for split in 1..input.len() {
            let mut s = Sanitizer::new(Mode::Terminal);
            let mut out = Vec::new();
            s.feed(&input[..split], &mut out);
            s.feed(&input[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, whole, "split at {split}");
        }
        assert_eq!(whole, "ok\x1b[31mred€ end".as_bytes());
    }

    #[test]
    fn invalid_utf8_becomes_the_replacement_character() {
        assert_eq!(
            run(Mode::Plain, b"a\xffb\xe2\x82"),
            "a\u{fffd}b\u{fffd}".as_bytes()
        );
        assert_eq!(run(Mode::Plain, b"\xe2\x82x"), "\u{fffd}x".as_bytes());
    }

    #[test]
    fn overlong_csi_is_dropped_whole() {
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 500));
        long.extend_from_slice(b"mtext");
        assert_eq!(run(Mode::Terminal, &long), b"text");
    }
}
