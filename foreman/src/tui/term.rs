//! The emulated terminal a job's output is drawn into, and the bytes a key
//! becomes on its way to a job.
//!
//! Job output never reaches the operator's terminal as bytes: it drives a
//! VT100/xterm model (the `vt100` crate), and the dashboard draws the
//! model's cells. Titles, clipboard writes (OSC 52), hyperlinks and queries
//! that answer back have nowhere to go; cells are filtered once more when
//! drawn (see `view::terminal`).

use std::num::NonZeroU16;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Rows of scrollback kept per attached job.
pub const SCROLLBACK: usize = 3000;

/// One job's screen.
pub struct Emulator {
    parser: vt100::Parser,
    /// A pipe job's output has bare newlines; a terminal's line discipline
    /// (ONLCR) would have made them CR LF.
    crlf: bool,
    /// Bytes processed, for the pane title.
    pub bytes: u64,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rows, cols) = self.size();
        f.debug_struct("Emulator")
            .field("rows", &rows)
            .field("cols", &cols)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n.max(1)).unwrap_or(NonZeroU16::MIN)
}

impl Emulator {
    /// A tty job's screen (`crlf` false), or a pipe job's (true).
    pub fn new(rows: u16, cols: u16, crlf: bool) -> Self {
        Self {
            parser: vt100::Parser::new(nz(rows), nz(cols), SCROLLBACK),
            crlf,
            bytes: 0,
        }
    }

    /// Feeds the job's output. Scrolled-back views stay where they are.
    pub fn process(&mut self, bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        if !self.crlf {
            self.parser.process(bytes);
            return;
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.parser.process(&rest[..i]);
            self.parser.process(b"\r\n");
            rest = &rest[i + 1..];
        }
        self.parser.process(rest);
    }

    pub fn size(&self) -> (u16, u16) {
        let (r, c) = self.parser.screen().size();
        (r.get(), c.get())
    }

    pub fn resize(&mut self, rows: u16, cols: u16) {
        if self.size() != (rows.max(1), cols.max(1)) {
            self.parser.set_size(nz(rows), nz(cols));
        }
    }

    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// Rows scrolled back from the live screen (0: live).
    pub fn scrolled(&self) -> usize {
        self.parser.screen().scrollback()
    }

    /// Scrolls back (positive) or forward (negative), clamped.
    pub fn scroll_by(&mut self, rows: isize) {
        let now = self.scrolled();
        let to = now.saturating_add_signed(rows);
        self.parser.screen_mut().set_scrollback(to);
    }

    pub fn scroll_to_live(&mut self) {
        self.parser.screen_mut().set_scrollback(0);
    }

    /// The text of the screen (tests, and the e2e checks).
    pub fn contents(&self) -> String {
        self.parser.screen().contents()
    }
}

/// What a key sends to a job: xterm's encoding for a tty job (cursor keys
/// follow the job's application-cursor mode), the plain bytes for a pipe job
/// (Enter is a newline: there is no terminal to translate it).
pub fn key_bytes(key: &KeyEvent, tty: bool, app_cursor: bool) -> Option<Vec<u8>> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut out = Vec::new();
    if alt {
        out.push(0x1b);
    }
    let csi = |s: &str| -> Vec<u8> { format!("\x1b[{s}").into_bytes() };
    let cursor = |c: char| -> Vec<u8> {
        if app_cursor {
            format!("\x1bO{c}").into_bytes()
        } else {
            format!("\x1b[{c}").into_bytes()
        }
    };
    let bytes: Vec<u8> = match key.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            c @ 'a'..='z' => vec![c as u8 & 0x1f],
            '@' | ' ' | '2' => vec![0],
            '[' | '3' => vec![0x1b],
            '\\' | '4' => vec![0x1c],
            ']' | '5' => vec![0x1d],
            '^' | '6' => vec![0x1e],
            '_' | '7' | '/' => vec![0x1f],
            '8' | '?' => vec![0x7f],
            _ => return None,
        },
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => {
            if tty {
                vec![b'\r']
            } else {
                vec![b'\n']
            }
        }
        KeyCode::Tab => vec![b'\t'],
        KeyCode::BackTab => csi("Z"),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up if tty => cursor('A'),
        KeyCode::Down if tty => cursor('B'),
        KeyCode::Right if tty => cursor('C'),
        KeyCode::Left if tty => cursor('D'),
        KeyCode::Home if tty => cursor('H'),
        KeyCode::End if tty => cursor('F'),
        KeyCode::Insert if tty => csi("2~"),
        KeyCode::Delete if tty => csi("3~"),
        KeyCode::PageUp if tty => csi("5~"),
        KeyCode::PageDown if tty => csi("6~"),
        KeyCode::F(n) if tty => match n {
            1 => b"\x1bOP".to_vec(),
            2 => b"\x1bOQ".to_vec(),
            3 => b"\x1bOR".to_vec(),
            4 => b"\x1bOS".to_vec(),
            5 => csi("15~"),
            6 => csi("17~"),
            7 => csi("18~"),
            8 => csi("19~"),
            9 => csi("20~"),
            10 => csi("21~"),
            11 => csi("23~"),
            12 => csi("24~"),
            _ => return None,
        },
        _ => return None,
    };
    out.extend(bytes);
    Some(out)
}

/// The bytes a terminal sends a program that asked for the mouse, for a
/// mouse event at `col`, `row` (0-based, in the program's screen), in the
/// program's reporting `mode` and `encoding`: X10 (presses only), VT200
/// (and releases, the wheel), button motion, any motion; default, UTF-8 or
/// SGR (1006) encoding. `None` for an event the mode does not report, or
/// a position the encoding cannot express.
pub fn mouse_bytes(
    m: &crossterm::event::MouseEvent,
    col: u16,
    row: u16,
    mode: vt100::MouseProtocolMode,
    encoding: vt100::MouseProtocolEncoding,
) -> Option<Vec<u8>> {
    use crossterm::event::{MouseButton as B, MouseEventKind as K};
    use vt100::MouseProtocolEncoding as E;
    use vt100::MouseProtocolMode as M;
    let button = |b: B| match b {
        B::Left => 0u32,
        B::Middle => 1,
        B::Right => 2,
    };
    let vt200 = matches!(mode, M::PressRelease | M::ButtonMotion | M::AnyMotion);
    let drags = matches!(mode, M::ButtonMotion | M::AnyMotion);
    let (mut code, release) = match m.kind {
        _ if mode == M::None => return None,
        K::Down(b) => (button(b), false),
        K::Up(b) if vt200 => (button(b), true),
        K::Drag(b) if drags => (button(b) + 32, false),
        K::Moved if mode == M::AnyMotion => (3 + 32, false),
        K::ScrollUp if vt200 => (64, false),
        K::ScrollDown if vt200 => (65, false),
        _ => return None,
    };
    // X10 reports no modifiers.
    if mode != M::Press {
        let held = m.modifiers;
        for (key, bit) in [
            (KeyModifiers::SHIFT, 4),
            (KeyModifiers::ALT, 8),
            (KeyModifiers::CONTROL, 16),
        ] {
            if held.contains(key) {
                code += bit;
            }
        }
    }
    let (x, y) = (u32::from(col) + 1, u32::from(row) + 1);
    if encoding == E::Sgr {
        let end = if release { 'm' } else { 'M' };
        return Some(format!("\x1b[<{code};{x};{y}{end}").into_bytes());
    }
    // The older encodings say "a button was released", not which.
    if release {
        code = (code & !3) | 3;
    }
    let mut out = b"\x1b[M".to_vec();
    for v in [code, x, y] {
        let v = v + 32;
        match encoding {
            E::Utf8 => {
                let c = char::from_u32(v).filter(|_| v < 2048)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => out.push(u8::try_from(v).ok()?),
        }
    }
    Some(out)
}

/// Pasted text for a job: bracketed when the job asked for it (so an editor
/// does not run it as keys), with the end marker removed from the text so a
/// paste cannot break out of its brackets.
pub fn paste_bytes(text: &str, bracketed: bool) -> Vec<u8> {
    if bracketed {
        let inner = text.replace("\x1b[201~", "");
        format!("\x1b[200~{inner}\x1b[201~").into_bytes()
    } else {
        text.as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn mouse_events_become_what_the_program_asked_for() {
        use crossterm::event::{MouseButton as B, MouseEvent, MouseEventKind as K};
        use vt100::MouseProtocolEncoding as E;
        use vt100::MouseProtocolMode as M;
        let ev = |kind, modifiers| MouseEvent {
            kind,
            column: 0,
            row: 0,
            modifiers,
        };
        let (none, shift) = (KeyModifiers::NONE, KeyModifiers::SHIFT);
        // The event, its column, the program's mode and encoding, the bytes.
        type Case<'a> = (MouseEvent, u16, M, E, Option<&'a [u8]>);
        let cases: &[Case] = &[
            // Nothing asked for, nothing sent.
            (ev(K::Down(B::Left), none), 0, M::None, E::Sgr, None),
            // SGR: 1-based, release says 'm' and which button.
            (
                ev(K::Down(B::Right), shift),
                9,
                M::PressRelease,
                E::Sgr,
                Some(b"\x1b[<6;10;1M"),
            ),
            (
                ev(K::Up(B::Right), none),
                9,
                M::PressRelease,
                E::Sgr,
                Some(b"\x1b[<2;10;1m"),
            ),
            (
                ev(K::ScrollDown, none),
                0,
                M::PressRelease,
                E::Sgr,
                Some(b"\x1b[<65;1;1M"),
            ),
            // Motion only in the modes that report it.
            (ev(K::Drag(B::Left), none), 0, M::PressRelease, E::Sgr, None),
            (
                ev(K::Drag(B::Left), none),
                0,
                M::ButtonMotion,
                E::Sgr,
                Some(b"\x1b[<32;1;1M"),
            ),
            (ev(K::Moved, none), 0, M::ButtonMotion, E::Sgr, None),
            (
                ev(K::Moved, none),
                0,
                M::AnyMotion,
                E::Sgr,
                Some(b"\x1b[<35;1;1M"),
            ),
            // X10: presses only, no modifiers, no wheel.
            (
                ev(K::Down(B::Left), shift),
                0,
                M::Press,
                E::Default,
                Some(b"\x1b[M !!"),
            ),
            (ev(K::Up(B::Left), none), 0, M::Press, E::Default, None),
            (ev(K::ScrollUp, none), 0, M::Press, E::Default, None),
            // The default encoding: a release is button 3; bytes end at 223.
            (
                ev(K::Up(B::Middle), none),
                0,
                M::PressRelease,
                E::Default,
                Some(b"\x1b[M#!!"),
            ),
            (
                ev(K::Down(B::Left), none),
                222,
                M::PressRelease,
                E::Default,
                Some(b"\x1b[M \xff!"),
            ),
            (ev(K::Down(B::Left), none), 223, M::PressRelease, E::Default, None),
            // UTF-8 goes further, as characters.
            (
                ev(K::Down(B::Left), none),
                223,
                M::PressRelease,
                E::Utf8,
                Some("\x1b[M \u{100}!".as_bytes()),
            ),
        ];
        for (m, col, mode, encoding, want) in cases {
            assert_eq!(
                mouse_bytes(m, *col, 0, *mode, *encoding).as_deref(),
                *want,
                "{m:?} at column {col} in {mode:?}/{encoding:?}"
            );
        }
    }

    #[test]
    fn keys_become_xterm_bytes_for_tty_jobs() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        let cases: &[(KeyEvent, bool, &[u8])] = &[
            (key(KeyCode::Char('a'), none), false, b"a"),
            (key(KeyCode::Char('é'), none), false, "é".as_bytes()),
            (key(KeyCode::Char('c'), ctrl), false, b"\x03"),
            (key(KeyCode::Char('d'), ctrl), false, b"\x04"),
            (key(KeyCode::Char('x'), KeyModifiers::ALT), false, b"\x1bx"),
            (key(KeyCode::Enter, none), false, b"\r"),
            (key(KeyCode::Backspace, none), false, b"\x7f"),
            (key(KeyCode::Up, none), false, b"\x1b[A"),
            (key(KeyCode::Up, none), true, b"\x1bOA"),
            (key(KeyCode::PageDown, none), false, b"\x1b[6~"),
            (key(KeyCode::F(1), none), false, b"\x1bOP"),
            (key(KeyCode::F(12), none), false, b"\x1b[24~"),
        ];
        for (k, app_cursor, want) in cases {
            assert_eq!(key_bytes(k, true, *app_cursor).as_deref(), Some(*want), "{k:?}");
        }
    }

    #[test]
    fn pipe_jobs_get_newlines_and_no_cursor_keys() {
        let enter = key(KeyCode::Enter, KeyModifiers::NONE);
        assert_eq!(key_bytes(&enter, false, false).as_deref(), Some(&b"\n"[..]));
        let up = key(KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(key_bytes(&up, false, false), None);
    }

    #[test]
    fn a_paste_cannot_close_its_own_brackets() {
        let p = paste_bytes("ls\x1b[201~rm -rf /\n", true);
        assert_eq!(p, b"\x1b[200~lsrm -rf /\n\x1b[201~".to_vec());
        assert_eq!(paste_bytes("x", false), b"x".to_vec());
    }

    #[test]
    fn the_emulator_keeps_colours_cursor_and_the_alternate_screen() {
        let mut e = Emulator::new(5, 20, false);
        e.process(b"\x1b[31mred\x1b[0m\r\nline2");
        let s = e.screen();
        assert_eq!(s.cell(0, 0).unwrap().contents(), "r");
        assert_eq!(s.cell(0, 0).unwrap().fgcolor(), vt100::Color::Idx(1));
        assert_eq!(s.cursor_position(), (1, 5));
        e.process(b"\x1b[?1049h\x1b[2Jtop");
        assert!(e.screen().alternate_screen());
        assert!(e.contents().starts_with("top"));
        e.process(b"\x1b[?1049l");
        assert!(e.contents().starts_with("red\nline2"));
    }

    #[test]
    fn a_pipe_jobs_newlines_start_new_lines() {
        let mut e = Emulator::new(4, 20, true);
        e.process(b"one\ntwo\r\nthree");
        assert_eq!(e.contents(), "one\ntwo\nthree");
    }

    #[test]
    fn scrollback_is_bounded_and_scrollable() {
        let mut e = Emulator::new(3, 10, false);
        for i in 0..(SCROLLBACK + 100) {
            e.process(format!("{i}\r\n").as_bytes());
        }
        e.scroll_by(isize::MAX / 2);
        assert_eq!(e.scrolled(), SCROLLBACK);
        e.scroll_by(-10);
        assert_eq!(e.scrolled(), SCROLLBACK - 10);
        e.scroll_to_live();
        assert_eq!(e.scrolled(), 0);
    }
}
