//! The log view (`L`): a job's stored output, whole-window and read-only,
//! as `less` shows a file: scroll, search (`/`, `n`, `N`), each line's
//! time (`t`), jump to a time (`@`), save to a file (`w`).
//!
//! The output is read once when the view opens (`r` reads it again), at
//! most [`LOG_LIMIT`] bytes from its end, with the marks of the time index.
//! Lines are filtered for the terminal (`Sanitizer::clean`); the file `w`
//! writes holds the bytes as stored.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tasker_proto::v1 as pb;

use super::action::{Effect, Notice};
use crate::sanitize::Sanitizer;

/// The most of a job's output the view reads: its last 8 MiB.
pub const LOG_LIMIT: u64 = 8 << 20;

/// What was read of a job's output.
#[derive(Debug, Default)]
pub struct LogRead {
    /// The bytes as stored, from `offset`.
    pub bytes: Vec<u8>,
    pub offset: u64,
    pub marks: Vec<pb::Mark>,
    /// Bytes before `offset` that the crew no longer keeps, or that the
    /// view did not read (past `LOG_LIMIT`).
    pub before: u64,
}

/// One line as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub text: String,
    /// Wall time of the mark covering its first byte (ns since the epoch).
    pub time: Option<i128>,
    pub stderr: bool,
}

/// A prompt at the foot of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Search(String),
    Save(String),
    /// A time: `13:05`, `13:05:30`, or RFC 3339.
    Jump(String),
}

#[derive(Debug)]
pub struct LogView {
    pub crew: usize,
    pub job: String,
    /// `crew/job-N`, for the title and the default file name.
    pub label: String,
    /// `None` until read; an error says why it could not be.
    pub read: Option<Result<LogRead, String>>,
    pub lines: Vec<LogLine>,
    /// The first line shown.
    pub top: usize,
    pub times: bool,
    pub search: Option<String>,
    pub prompt: Option<Prompt>,
    /// A line for the foot: the last search's count, a save's result.
    pub said: Option<Notice>,
    /// The window's text rows, as last drawn (for paging).
    pub rows: std::cell::Cell<usize>,
}

impl LogView {
    #[must_use]
    pub fn new(crew: usize, job: String, label: String) -> Self {
        Self {
            crew,
            job,
            label,
            read: None,
            lines: Vec::new(),
            top: 0,
            times: false,
            search: None,
            prompt: None,
            said: None,
            rows: std::cell::Cell::new(20),
        }
    }

    /// The output arrived: lines made, the view at its end (as `less +G`).
    pub fn on_read(&mut self, read: Result<LogRead, String>) {
        self.lines = match &read {
            Ok(r) => lines_of(r),
            Err(_) => Vec::new(),
        };
        self.read = Some(read);
        self.top = self.last_top();
    }

    fn last_top(&self) -> usize {
        self.lines.len().saturating_sub(self.rows.get().max(1))
    }

    fn scroll_to(&mut self, top: usize) {
        self.top = top.min(self.last_top());
    }

    /// A key. `Some(effects)` when it asks for I/O; `close` when the view
    /// is done.
    pub fn on_key(&mut self, code: KeyCode, fx: &mut Vec<Effect>) -> Closed {
        if let Some(prompt) = self.prompt.take() {
            self.on_prompt_key(prompt, code, fx);
            return Closed::No;
        }
        let page = self.rows.get().max(2) - 1;
        match code {
            KeyCode::Esc | KeyCode::Char('q') => return Closed::Yes,
            KeyCode::Down | KeyCode::Char('j') => self.scroll_to(self.top + 1),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_to(self.top.saturating_sub(1)),
            KeyCode::PageDown | KeyCode::Char(' ') => self.scroll_to(self.top + page),
            KeyCode::PageUp => self.scroll_to(self.top.saturating_sub(page)),
            KeyCode::Home | KeyCode::Char('g') => self.top = 0,
            KeyCode::End | KeyCode::Char('G') => self.top = self.last_top(),
            KeyCode::Char('t') => self.times = !self.times,
            KeyCode::Char('/') => self.prompt = Some(Prompt::Search(String::new())),
            KeyCode::Char('@') => self.prompt = Some(Prompt::Jump(String::new())),
            KeyCode::Char('w') => self.prompt = Some(Prompt::Save(self.default_file())),
            KeyCode::Char('n') => self.find(true, false),
            KeyCode::Char('N') => self.find(false, false),
            KeyCode::Char('r') => {
                self.read = None;
                fx.push(Effect::ReadLog {
                    crew: self.crew,
                    job: self.job.clone(),
                });
            }
            _ => {}
        }
        Closed::No
    }

    fn on_prompt_key(&mut self, prompt: Prompt, code: KeyCode, fx: &mut Vec<Effect>) {
        let (mut text, make): (String, fn(String) -> Prompt) = match prompt {
            Prompt::Search(t) => (t, Prompt::Search),
            Prompt::Save(t) => (t, Prompt::Save),
            Prompt::Jump(t) => (t, Prompt::Jump),
        };
        match code {
            KeyCode::Esc => return,
            KeyCode::Enter => {
                match make(text) {
                    Prompt::Search(t) if t.is_empty() => self.find(true, false),
                    Prompt::Search(t) => {
                        self.search = Some(t);
                        self.find(true, true);
                    }
                    Prompt::Jump(t) => self.jump(&t),
                    Prompt::Save(path) => self.save(path, fx),
                }
                return;
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        self.prompt = Some(make(text));
    }

    /// `./<crew>-<job>.log`, as the label names it.
    fn default_file(&self) -> String {
        format!("./{}.log", self.label.replace('/', "-"))
    }

    fn save(&mut self, path: String, fx: &mut Vec<Effect>) {
        match &self.read {
            Some(Ok(r)) if !path.trim().is_empty() => fx.push(Effect::SaveLog {
                path: path.trim().into(),
                bytes: r.bytes.clone(),
            }),
            Some(Ok(_)) => self.said = Some(Notice::error("no file given: nothing saved")),
            _ => self.said = Some(Notice::error("nothing read yet: nothing saved")),
        }
    }

    /// The next (or previous) line matching the search, from the line
    /// after (before) the top, or from the top itself when `here`. Smart
    /// case: a pattern with an upper-case letter matches case.
    fn find(&mut self, forward: bool, here: bool) {
        let Some(pattern) = self.search.clone() else {
            self.said = Some(Notice::error("no search yet: / types one"));
            return;
        };
        let hits: Vec<usize> = self
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| matches(&l.text, &pattern))
            .map(|(i, _)| i)
            .collect();
        let found = if forward {
            let from = if here { self.top } else { self.top + 1 };
            hits.iter().find(|&&i| i >= from).or(hits.first())
        } else {
            hits.iter().rev().find(|&&i| i < self.top).or(hits.last())
        };
        match found {
            Some(&i) => {
                self.top = i;
                let nth = hits.iter().position(|&h| h == i).unwrap_or(0) + 1;
                self.said = Some(Notice::info(format!("/{pattern}: {nth} of {}", hits.len())));
            }
            None => self.said = Some(Notice::error(format!("/{pattern}: no match"))),
        }
    }

    /// To the first line stored at or after a time (UTC).
    fn jump(&mut self, when: &str) {
        let target = match crate::times::parse_point(when).map(|p| p.at) {
            Ok(Some(tasker_proto::v1::time_point::At::Time(t))) => {
                i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
            }
            Ok(_) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i128);
                match tasker_common::parse_duration(when) {
                    Ok(d) => now - d.as_nanos() as i128,
                    Err(_) => return,
                }
            }
            Err(e) => {
                self.said = Some(Notice::error(format!("{when}: {e}")));
                return;
            }
        };
        match self
            .lines
            .iter()
            .position(|l| l.time.is_some_and(|t| t >= target))
        {
            Some(i) => {
                self.scroll_to(i);
                self.said = Some(Notice::info(format!("@{when}: line {}", i + 1)));
            }
            None => self.said = Some(Notice::error(format!("@{when}: nothing stored since"))),
        }
    }
}

/// Whether the key closed the view.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Yes,
    No,
}

fn matches(text: &str, pattern: &str) -> bool {
    if pattern.chars().any(char::is_uppercase) {
        text.contains(pattern)
    } else {
        text.to_lowercase().contains(&pattern.to_lowercase())
    }
}

/// The read bytes as lines, each with the time and stream of its first
/// byte, filtered for the terminal.
#[must_use]
pub fn lines_of(read: &LogRead) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let mut marks = read.marks.iter().peekable();
    let mut current: Option<&pb::Mark> = None;
    let mut start = 0usize;
    let bytes = &read.bytes;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i + 1);
        let at = read.offset + start as u64;
        while let Some(m) = marks.next_if(|m| m.offset <= at) {
            current = Some(m);
        }
        let raw = String::from_utf8_lossy(&bytes[start..end]);
        let text = Sanitizer::clean(raw.trim_end_matches(['\n', '\r']));
        lines.push(LogLine {
            text,
            time: current.and_then(crate::asciicast::mark_ns),
            stderr: current.is_some_and(|m| m.stream() == pb::Stream::Stderr),
        });
        start = end;
    }
    lines
}

/// Draws the view over the whole window.
pub fn draw(frame: &mut Frame, view: &LogView, area: Rect) {
    frame.render_widget(ratatui::widgets::Clear, area);
    let shown = view.lines.len();
    let mut title = format!(" {} · log · {shown} lines ", Sanitizer::clean(&view.label));
    if let Some(Ok(r)) = &view.read
        && r.before > 0
    {
        title.push_str(&format!("· the first {} bytes not shown ", r.before));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, Style::default().add_modifier(Modifier::BOLD)))
        .title_bottom(" ↑↓ PgUp PgDn g G · / n N search · t times · @ jump to a time · w save · r read again · q close ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let rows = usize::from(inner.height - 1);
    view.rows.set(rows);
    let top = view.top.min(view.lines.len().saturating_sub(rows));
    let body = Rect {
        height: inner.height - 1,
        ..inner
    };
    let foot = Rect {
        y: inner.y + inner.height - 1,
        height: 1,
        ..inner
    };
    let text: Vec<Line> = match &view.read {
        None => vec![Line::styled(
            "reading the output…",
            Style::default().add_modifier(Modifier::DIM),
        )],
        Some(Err(why)) => vec![Line::styled(
            format!("could not read it: {}", Sanitizer::clean(why)),
            Style::default().fg(Color::Red),
        )],
        Some(Ok(_)) if view.lines.is_empty() => vec![Line::styled(
            "no output yet",
            Style::default().add_modifier(Modifier::DIM),
        )],
        Some(Ok(_)) => view.lines[top..]
            .iter()
            .take(rows)
            .map(|l| line(l, view.times, view.search.as_deref()))
            .collect(),
    };
    frame.render_widget(Paragraph::new(text), body);
    let foot_text = match &view.prompt {
        Some(Prompt::Search(t)) => Line::raw(format!("/{t}▏")),
        Some(Prompt::Jump(t)) => Line::raw(format!("jump to (13:05, 10m, RFC 3339): {t}▏")),
        Some(Prompt::Save(t)) => Line::raw(format!("save to: {t}▏  (⏎ saves, Esc cancels)")),
        None => match &view.said {
            Some(n) if n.error => Line::styled(n.text.clone(), Style::default().fg(Color::Red)),
            Some(n) => Line::raw(n.text.clone()),
            None => Line::styled(
                format!("line {} of {shown}", (top + 1).min(shown)),
                Style::default().add_modifier(Modifier::DIM),
            ),
        },
    };
    frame.render_widget(Paragraph::new(foot_text), foot);
}

/// A line: its time if shown, stderr in red, the search's hits reversed.
fn line<'a>(l: &'a LogLine, times: bool, search: Option<&str>) -> Line<'a> {
    let base = if l.stderr {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    };
    let mut spans = Vec::new();
    if times {
        let t = l.time.map_or_else(
            || crate::times::NO_TIME.to_owned(),
            |ns| {
                crate::times::format_utc(&prost_types::Timestamp {
                    seconds: ns.div_euclid(1_000_000_000) as i64,
                    nanos: ns.rem_euclid(1_000_000_000) as i32,
                })
            },
        );
        spans.push(Span::styled(
            format!("{t} "),
            Style::default().add_modifier(Modifier::DIM),
        ));
    }
    match search.filter(|p| !p.is_empty()) {
        Some(p) => spans.extend(highlighted(&l.text, p, base)),
        None => spans.push(Span::styled(l.text.as_str(), base)),
    }
    Line::from(spans)
}

fn highlighted<'a>(text: &'a str, pattern: &str, base: Style) -> Vec<Span<'a>> {
    let hay = if pattern.chars().any(char::is_uppercase) {
        text.to_owned()
    } else {
        text.to_lowercase()
    };
    let needle = if pattern.chars().any(char::is_uppercase) {
        pattern.to_owned()
    } else {
        pattern.to_lowercase()
    };
    let mut spans = Vec::new();
    let mut at = 0;
    // Lower-casing can change byte lengths; only when it did not are the
    // hit's positions the text's.
    if hay.len() != text.len() {
        return vec![Span::styled(text, base)];
    }
    while let Some(i) = hay[at..].find(&needle) {
        let (s, e) = (at + i, at + i + needle.len());
        if !text.is_char_boundary(s) || !text.is_char_boundary(e) {
            break;
        }
        spans.push(Span::styled(&text[at..s], base));
        spans.push(Span::styled(&text[s..e], base.add_modifier(Modifier::REVERSED)));
        at = e;
        if needle.is_empty() {
            break;
        }
    }
    spans.push(Span::styled(&text[at..], base));
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(offset: u64, secs: i64, stream: pb::Stream) -> pb::Mark {
        pb::Mark {
            offset,
            time: Some(prost_types::Timestamp {
                seconds: secs,
                nanos: 0,
            }),
            stream: stream.into(),
        }
    }

    fn view() -> LogView {
        let mut v = LogView::new(0, "id".into(), "alpha/job-1".into());
        v.rows.set(2);
        let bytes = b"one\nTwo\x1b]0;pwned\x07\nthree two\nfour\n".to_vec();
        v.on_read(Ok(LogRead {
            bytes,
            offset: 100,
            marks: vec![
                mark(90, 1000, pb::Stream::Stdout),
                mark(104, 2000, pb::Stream::Stderr),
                mark(118, 3000, pb::Stream::Stdout),
            ],
            before: 100,
        }));
        v
    }

    #[test]
    fn lines_keep_their_time_and_stream_and_are_filtered() {
        let v = view();
        let texts: Vec<&str> = v.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["one", "Two", "three two", "four"],
            "the title escape is gone"
        );
        assert_eq!(v.lines[0].time, Some(1000 * 1_000_000_000));
        assert!(!v.lines[0].stderr && v.lines[1].stderr);
        assert_eq!(v.lines[2].time, Some(3000 * 1_000_000_000));
        assert_eq!(v.top, 2, "opens at the end");
    }

    #[test]
    fn search_is_smart_case_and_n_goes_round() {
        let mut v = view();
        let mut fx = Vec::new();
        v.top = 0;
        v.on_key(KeyCode::Char('/'), &mut fx);
        for c in "two".chars() {
            v.on_key(KeyCode::Char(c), &mut fx);
        }
        v.on_key(KeyCode::Enter, &mut fx);
        assert_eq!(v.top, 1, "lower case matches Two");
        assert_eq!(v.said.as_ref().unwrap().text, "/two: 1 of 2");
        v.on_key(KeyCode::Char('n'), &mut fx);
        assert_eq!(v.top, 2);
        v.on_key(KeyCode::Char('n'), &mut fx);
        assert_eq!(v.top, 1, "round to the first");
        v.search = Some("Two".into());
        v.on_key(KeyCode::Char('N'), &mut fx);
        assert_eq!(v.said.as_ref().unwrap().text, "/Two: 1 of 1");
        v.search = Some("nope".into());
        v.on_key(KeyCode::Char('n'), &mut fx);
        assert!(v.said.as_ref().unwrap().error);
        assert!(fx.is_empty());
    }

    #[test]
    fn w_saves_the_bytes_as_stored_and_at_jumps_to_a_time() {
        let mut v = view();
        let mut fx = Vec::new();
        v.on_key(KeyCode::Char('w'), &mut fx);
        assert_eq!(v.prompt, Some(Prompt::Save("./alpha-job-1.log".into())));
        v.on_key(KeyCode::Enter, &mut fx);
        match &fx[..] {
            [Effect::SaveLog { path, bytes }] => {
                assert_eq!(path, "./alpha-job-1.log");
                assert!(bytes.windows(5).any(|w| w == b"pwned"), "raw, as stored");
            }
            other => panic!("{other:?}"),
        }
        v.top = 0;
        v.on_key(KeyCode::Char('@'), &mut fx);
        for c in "1970-01-01T00:40:00Z".chars() {
            v.on_key(KeyCode::Char(c), &mut fx);
        }
        v.on_key(KeyCode::Enter, &mut fx);
        assert_eq!(v.said.as_ref().unwrap().text, "@1970-01-01T00:40:00Z: line 3");
        assert_eq!(v.on_key(KeyCode::Char('q'), &mut fx), Closed::Yes);
    }
}
