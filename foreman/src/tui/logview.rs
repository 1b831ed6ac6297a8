//! The log view (`L`): a job's stored output, whole-window and read-only,
//! as `less` shows a file: scroll, search (`/`, `n`, `N`), each line's
//! time (`t`), jump to a time (`@`), follow a running job (`F`), save to a
//! file (`w`).
//!
//! The output is read when the view opens (`r` reads it again), at most
//! [`LOG_LIMIT`] bytes from its end, with the marks of the time index.
//! Following keeps that attach open and appends what comes, still keeping
//! only the last `LOG_LIMIT` bytes. Lines are filtered for the terminal
//! (`Sanitizer::clean`, then made plain text); the file `w` writes holds
//! the bytes as stored.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tasker_proto::v1 as pb;

use super::action::{Effect, Notice, SessionId};
use crate::sanitize::Sanitizer;

/// The most of a job's output the view keeps: its last 8 MiB.
pub const LOG_LIMIT: u64 = 8 << 20;

/// How far past `LOG_LIMIT` a followed log grows before its oldest lines
/// go, so that the cut is not made on every chunk.
const TRIM_SLACK: usize = 1 << 20;

/// Bytes the crew did not send: dropped by its output bound while they
/// were read. They are missing just before `bytes[at]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub at: usize,
    pub len: u64,
}

/// What was read of a job's output.
#[derive(Debug, Default, Clone)]
pub struct LogRead {
    /// The bytes as stored, from `offset`, less the gaps.
    pub bytes: Vec<u8>,
    /// The stream offset of the first byte (or of the first gap).
    pub offset: u64,
    pub marks: Vec<pb::Mark>,
    /// Bytes before `offset` that the crew no longer keeps, or that the
    /// view did not read (past `LOG_LIMIT`).
    pub before: u64,
    pub gaps: Vec<Gap>,
    /// The stream offset just past what was read.
    pub end: u64,
}

impl LogRead {
    /// A read that starts where the crew said the stream starts.
    #[must_use]
    pub fn at(offset: u64) -> Self {
        Self {
            offset,
            before: offset,
            end: offset,
            ..Self::default()
        }
    }

    /// A chunk of output from the attach stream.
    pub fn output(&mut self, offset: u64, data: &[u8], marks: Vec<pb::Mark>) {
        if self.bytes.is_empty() && self.gaps.is_empty() {
            // The first byte sent is where the read begins (a tail read
            // starts at a line).
            self.offset = offset;
            self.before = offset;
        } else if offset > self.end {
            self.gaps.push(Gap {
                at: self.bytes.len(),
                len: offset - self.end,
            });
        }
        self.bytes.extend_from_slice(data);
        self.marks.extend(marks);
        self.end = offset + data.len() as u64;
    }

    /// The crew's output bound dropped these bytes before they were read.
    pub fn dropped(&mut self, offset: u64, len: u64) {
        if self.bytes.is_empty() && self.gaps.is_empty() {
            self.offset = offset;
            self.before = offset;
        }
        self.gaps.push(Gap {
            at: self.bytes.len(),
            len,
        });
        self.end = offset + len;
    }

    /// Appends a later read (following): its bytes, marks and gaps, and a
    /// gap for whatever lies between the two.
    fn append(&mut self, more: Self) {
        if more.bytes.is_empty() && more.gaps.is_empty() {
            return;
        }
        if more.offset > self.end {
            self.gaps.push(Gap {
                at: self.bytes.len(),
                len: more.offset - self.end,
            });
        }
        let base = self.bytes.len();
        self.gaps.extend(more.gaps.into_iter().map(|g| Gap {
            at: g.at + base,
            len: g.len,
        }));
        self.bytes.extend_from_slice(&more.bytes);
        self.marks.extend(more.marks);
        self.end = more.end;
    }
}

/// One line as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub text: String,
    /// Where its first byte is in `LogRead::bytes`.
    pub at: usize,
    /// Its first byte's offset in the job's output: what a time index
    /// answers in, so that "jump to a time" can become a search for one.
    pub offset: u64,
    /// Wall time of the mark covering its first byte (ns since the epoch).
    pub time: Option<i128>,
    pub stderr: bool,
    /// Not output: a note that this many bytes were dropped here.
    pub dropped: Option<u64>,
}

/// A prompt at the foot of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Search(String),
    Save(String),
    /// The file exists: `y` writes over it.
    Overwrite(String),
    /// A time: `13:05`, `13:05:30`, or RFC 3339.
    Jump(String),
}

/// Where the lines stop being final: after the last newline or gap seen,
/// so that following re-splits only the open last line.
#[derive(Debug, Default, Clone, Copy)]
struct Split {
    lines: usize,
    at: usize,
    gaps: usize,
}

#[derive(Debug)]
pub struct LogView {
    pub crew: usize,
    pub job: String,
    /// `crew/job-N`, for the title and the default file name.
    pub label: String,
    /// Whether the job still runs (`F` follows only then).
    pub running: bool,
    /// `None` until read; an error says why it could not be.
    pub read: Option<Result<LogRead, String>>,
    pub lines: Vec<LogLine>,
    split: Split,
    /// The first line shown.
    pub top: usize,
    pub times: bool,
    pub search: Option<String>,
    pub prompt: Option<Prompt>,
    /// A line for the foot: the last search's count, a save's result.
    pub said: Option<Notice>,
    /// The attach that appends new output, while following.
    pub follow: Option<SessionId>,
    /// The window's text rows, as last drawn (for paging).
    pub rows: std::cell::Cell<usize>,
}

/// Whether the key closed the view.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    Yes,
    No,
}

impl LogView {
    #[must_use]
    pub fn new(crew: usize, job: String, label: String, running: bool) -> Self {
        Self {
            crew,
            job,
            label,
            running,
            read: None,
            lines: Vec::new(),
            split: Split::default(),
            top: 0,
            times: false,
            search: None,
            prompt: None,
            said: None,
            follow: None,
            rows: std::cell::Cell::new(20),
        }
    }

    /// The effect that reads the output (and, with `follow`, goes on).
    #[must_use]
    pub fn read_effect(&self) -> Effect {
        Effect::ReadLog {
            crew: self.crew,
            job: self.job.clone(),
            follow: self.follow,
        }
    }

    /// The output arrived: lines made, the view at its end (as `less +G`).
    pub fn on_read(&mut self, read: Result<LogRead, String>) {
        self.lines.clear();
        self.split = Split::default();
        if read.is_err() {
            self.follow = None;
        }
        self.read = Some(read);
        self.resplit();
        self.top = self.last_top();
    }

    /// More output while following; `Ok(None)`: the stream ended.
    pub fn on_more(&mut self, more: Result<Option<LogRead>, String>) {
        let at_end = self.top >= self.last_top();
        match more {
            Ok(Some(more)) => {
                if let Some(Ok(read)) = &mut self.read {
                    read.append(more);
                    self.resplit();
                    self.trim();
                }
            }
            Ok(None) => {
                self.follow = None;
                self.running = false;
                self.said = Some(Notice::info("the job ended: following stopped"));
            }
            Err(why) => {
                self.follow = None;
                self.said = Some(Notice::error(format!(
                    "following stopped: {}",
                    Sanitizer::clean(&why)
                )));
            }
        }
        // At the bottom, the view stays there, as `less +F` does.
        if at_end {
            self.top = self.last_top();
        }
    }

    /// Lines made again from where they stopped being final.
    fn resplit(&mut self) {
        let Some(Ok(read)) = &self.read else { return };
        self.lines.truncate(self.split.lines);
        self.split = split(read, self.split, &mut self.lines);
    }

    /// A followed log past `LOG_LIMIT` (and some): its oldest lines go.
    fn trim(&mut self) {
        let Some(Ok(read)) = &mut self.read else { return };
        if read.bytes.len() <= LOG_LIMIT as usize + TRIM_SLACK {
            return;
        }
        let want = read.bytes.len() - LOG_LIMIT as usize;
        let Some(k) = self
            .lines
            .iter()
            .position(|l| l.at >= want && l.dropped.is_none())
        else {
            return;
        };
        if k >= self.split.lines {
            return;
        }
        let cut = self.lines[k].at;
        let gone_gaps = read.gaps.iter().take_while(|g| g.at < cut).count();
        let skipped: u64 = read.gaps[..gone_gaps].iter().map(|g| g.len).sum();
        read.gaps.drain(..gone_gaps);
        for g in &mut read.gaps {
            g.at -= cut;
        }
        read.bytes.drain(..cut);
        read.offset = self.lines[k].offset;
        read.before += cut as u64 + skipped;
        let keep = read.marks.partition_point(|m| m.offset <= read.offset);
        read.marks.drain(..keep.saturating_sub(1));
        self.lines.drain(..k);
        for l in &mut self.lines {
            l.at -= cut;
        }
        self.split.lines -= k;
        self.split.at -= cut;
        self.split.gaps -= gone_gaps;
        self.top = self.top.saturating_sub(k);
    }

    fn last_top(&self) -> usize {
        self.lines.len().saturating_sub(self.rows.get().max(1))
    }

    fn scroll_to(&mut self, top: usize) {
        self.top = top.min(self.last_top());
    }

    /// Scrolls by `delta` lines (the mouse wheel).
    pub fn scroll(&mut self, delta: isize) {
        self.scroll_to(self.top.saturating_add_signed(delta));
    }

    /// A key; `next_session` numbers a new follow. Effects go to `fx`.
    pub fn on_key(&mut self, code: KeyCode, fx: &mut Vec<Effect>, next_session: &mut SessionId) -> Closed {
        if let Some(prompt) = self.prompt.take() {
            self.on_prompt_key(prompt, code, fx);
            return Closed::No;
        }
        let page = self.rows.get().max(2) - 1;
        match code {
            KeyCode::Esc | KeyCode::Char('q') => {
                self.stop_following(fx);
                return Closed::Yes;
            }
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
            KeyCode::Char('F') => self.toggle_follow(fx, next_session),
            KeyCode::Char('r') => {
                // A new read replaces the old, and so does its follow.
                if self.follow.is_some() {
                    self.stop_following(fx);
                    self.follow = Some(take(next_session));
                }
                self.read = None;
                fx.push(self.read_effect());
            }
            _ => {}
        }
        Closed::No
    }

    fn toggle_follow(&mut self, fx: &mut Vec<Effect>, next_session: &mut SessionId) {
        if self.follow.is_some() {
            self.stop_following(fx);
            self.said = Some(Notice::info("not following (F follows again)"));
        } else if !self.running {
            self.said = Some(Notice::error("the job has ended: all its output is here"));
        } else {
            // Read again from the tail with the attach kept open: nothing
            // written between the two reads is missed.
            self.follow = Some(take(next_session));
            self.read = None;
            self.said = Some(Notice::info("following: new output is added as it comes"));
            fx.push(self.read_effect());
        }
    }

    /// Ends the follow's attach, if there is one.
    pub fn stop_following(&mut self, fx: &mut Vec<Effect>) {
        if let Some(session) = self.follow.take() {
            fx.push(Effect::Detach { session });
        }
    }

    fn on_prompt_key(&mut self, prompt: Prompt, code: KeyCode, fx: &mut Vec<Effect>) {
        if let Prompt::Overwrite(path) = prompt {
            if code == KeyCode::Char('y') {
                self.save(path, true, fx);
            } else {
                self.said = Some(Notice::info(format!("{path} kept: nothing saved")));
            }
            return;
        }
        let (mut text, make): (String, fn(String) -> Prompt) = match prompt {
            Prompt::Search(t) => (t, Prompt::Search),
            Prompt::Save(t) => (t, Prompt::Save),
            Prompt::Jump(t) => (t, Prompt::Jump),
            Prompt::Overwrite(_) => unreachable!("answered above"),
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
                    Prompt::Save(path) => self.save(path, false, fx),
                    Prompt::Overwrite(_) => {}
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

    fn save(&mut self, path: String, overwrite: bool, fx: &mut Vec<Effect>) {
        match &self.read {
            Some(Ok(r)) if !path.trim().is_empty() => fx.push(Effect::SaveLog {
                path: path.trim().into(),
                bytes: r.bytes.clone(),
                overwrite,
            }),
            Some(Ok(_)) => self.said = Some(Notice::error("no file given: nothing saved")),
            _ => self.said = Some(Notice::error("nothing read yet: nothing saved")),
        }
    }

    /// What a save did; a file in the way asks whether to write over it.
    pub fn on_saved(&mut self, saved: Saved) {
        match saved {
            Saved::Said(n) => self.said = Some(n),
            Saved::Exists(path) => self.prompt = Some(Prompt::Overwrite(path)),
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
            .filter(|(_, l)| l.dropped.is_none() && matches(&l.text, &pattern))
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
                    Err(e) => {
                        self.said = Some(Notice::error(format!("{when}: {e}")));
                        return;
                    }
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

/// What writing a log to a file came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    /// Saved, or why not, in words.
    Said(Notice),
    /// The file exists and was not to be written over.
    Exists(String),
}

/// Writes a log to a file, 0600; over an existing one only when
/// `overwrite`, and never through a symbolic link.
#[must_use]
pub fn save(path: &str, bytes: &[u8], overwrite: bool) -> Saved {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut open = std::fs::OpenOptions::new();
    open.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if overwrite {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let written = open.open(path).and_then(|mut f| {
        // An existing file keeps its mode through open: made 0600 here.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)
    });
    let path_said = Sanitizer::clean(path);
    match written {
        Ok(()) => Saved::Said(Notice::info(format!(
            "saved {} bytes to {path_said}",
            bytes.len()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Saved::Exists(path.to_owned()),
        Err(e) => Saved::Said(Notice::error(format!("{path_said}: {e}: nothing saved"))),
    }
}

fn take(next: &mut SessionId) -> SessionId {
    let id = *next;
    *next += 1;
    id
}

fn matches(text: &str, pattern: &str) -> bool {
    if pattern.chars().any(char::is_uppercase) {
        text.contains(pattern)
    } else {
        text.to_lowercase().contains(&pattern.to_lowercase())
    }
}

/// The read bytes from `from` on as lines, each with the offset, time
/// and stream of its first byte, filtered for the terminal; a gap is a
/// line of its own. Returns where the lines stop being final.
fn split(read: &LogRead, from: Split, out: &mut Vec<LogLine>) -> Split {
    let bytes = &read.bytes;
    let mut i = from.at;
    let mut g = from.gaps;
    // Stream offset of bytes[i]: skipped gaps count.
    let skipped: u64 = read.gaps[..g].iter().map(|x| x.len).sum();
    let mut offset = read.offset + i as u64 + skipped;
    let mut done = from;
    loop {
        while let Some(gap) = read.gaps.get(g).filter(|x| x.at <= i) {
            out.push(LogLine {
                text: String::new(),
                at: i,
                offset,
                time: None,
                stderr: false,
                dropped: Some(gap.len),
            });
            offset += gap.len;
            g += 1;
            done = Split {
                lines: out.len(),
                at: i,
                gaps: g,
            };
        }
        if i >= bytes.len() {
            break;
        }
        let limit = read.gaps.get(g).map_or(bytes.len(), |x| x.at);
        let (end, complete) = match bytes[i..limit].iter().position(|&b| b == b'\n') {
            Some(p) => (i + p + 1, true),
            None => (limit, limit < bytes.len() || g < read.gaps.len()),
        };
        let mark = read
            .marks
            .partition_point(|m| m.offset <= offset)
            .checked_sub(1)
            .map(|k| &read.marks[k]);
        out.push(LogLine {
            text: plain(&bytes[i..end]),
            at: i,
            offset,
            time: mark.and_then(crate::asciicast::mark_ns),
            stderr: mark.is_some_and(|m| m.stream() == pb::Stream::Stderr),
            dropped: None,
        });
        offset += (end - i) as u64;
        i = end;
        if complete {
            done = Split {
                lines: out.len(),
                at: i,
                gaps: g,
            };
        }
    }
    done
}

/// One line of output as plain text: filtered, then without the colours
/// the filter keeps, what a carriage return wrote over, or other controls.
fn plain(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    let clean = Sanitizer::clean(raw.trim_end_matches(['\n', '\r']));
    // A terminal shows what was written after the last carriage return
    // (a progress bar's last state).
    let shown = clean.rsplit('\r').next().unwrap_or_default();
    let mut text = String::with_capacity(shown.len());
    let mut chars = shown.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: parameters, then one final byte in @..~.
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\t' => {
                let to = (text.chars().count() / 8 + 1) * 8;
                while text.chars().count() < to {
                    text.push(' ');
                }
            }
            c if c.is_control() => {}
            c => text.push(c),
        }
    }
    text
}

/// Draws the view over the whole window.
pub fn draw(frame: &mut Frame, view: &LogView, area: Rect) {
    frame.render_widget(ratatui::widgets::Clear, area);
    let total = view.lines.len();
    // The text rows: the window less its borders and the foot line.
    let rows = usize::from(area.height.saturating_sub(3)).max(1);
    let top = view.top.min(total.saturating_sub(rows));
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(
            title(view, top, rows),
            Style::default().add_modifier(Modifier::BOLD),
        ))
        .title(Line::from(cut(view)).right_aligned())
        .title_bottom(" j k PgUp PgDn g G  / n N find  t time  @ jump  F follow  w save  r reread  q ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    view.rows.set(rows);
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
        Some(Prompt::Overwrite(p)) => Line::styled(
            format!(
                "{} exists: write over it? (y: yes, any other key: no)",
                Sanitizer::clean(p)
            ),
            Style::default().fg(Color::Yellow),
        ),
        None => match &view.said {
            Some(n) if n.error => Line::styled(n.text.clone(), Style::default().fg(Color::Red)),
            Some(n) => Line::raw(n.text.clone()),
            None => Line::raw(""),
        },
    };
    frame.render_widget(Paragraph::new(foot_text), foot);
}

/// `log crew/job-N · lines 11–30 of 200`, and whether following.
fn title(view: &LogView, top: usize, rows: usize) -> String {
    let total = view.lines.len();
    let mut title = format!(
        " log {} · lines {}–{} of {total} ",
        Sanitizer::clean(&view.label),
        (top + 1).min(total),
        (top + rows).min(total)
    );
    if view.follow.is_some() {
        title.push_str("· following ");
    }
    title
}

/// What the view does not hold: bytes before it, bytes dropped within.
fn cut(view: &LogView) -> String {
    let Some(Ok(r)) = &view.read else {
        return String::new();
    };
    let mut said = Vec::new();
    if r.before > 0 {
        said.push(format!("from byte {}", r.before));
    }
    let dropped: u64 = r.gaps.iter().map(|g| g.len).sum();
    if dropped > 0 {
        said.push(format!("{dropped} bytes dropped"));
    }
    if said.is_empty() {
        String::new()
    } else {
        format!(" {} ", said.join(" · "))
    }
}

/// A line: its time if shown, stderr in red, the search's hits reversed;
/// a gap as a note.
fn line<'a>(l: &'a LogLine, times: bool, search: Option<&str>) -> Line<'a> {
    if let Some(len) = l.dropped {
        return Line::styled(
            format!("⋯ {len} bytes dropped here (the crew's output bound) ⋯"),
            Style::default().fg(Color::Yellow).add_modifier(Modifier::ITALIC),
        );
    }
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
    let smart = pattern.chars().any(char::is_uppercase);
    let hay = if smart {
        text.to_owned()
    } else {
        text.to_lowercase()
    };
    let needle = if smart {
        pattern.to_owned()
    } else {
        pattern.to_lowercase()
    };
    // Lower-casing can change byte lengths; only when it did not are the
    // hit's positions the text's.
    if hay.len() != text.len() || needle.is_empty() {
        return vec![Span::styled(text, base)];
    }
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(i) = hay[at..].find(&needle) {
        let (s, e) = (at + i, at + i + needle.len());
        if !text.is_char_boundary(s) || !text.is_char_boundary(e) {
            break;
        }
        spans.push(Span::styled(&text[at..s], base));
        spans.push(Span::styled(
            &text[s..e],
            base.fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
        at = e;
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

    fn keys(v: &mut LogView, keys: &str) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut ids = 7;
        for c in keys.chars() {
            v.on_key(KeyCode::Char(c), &mut fx, &mut ids);
        }
        fx
    }

    fn key(v: &mut LogView, code: KeyCode) -> (Closed, Vec<Effect>) {
        let mut fx = Vec::new();
        let closed = v.on_key(code, &mut fx, &mut 7);
        (closed, fx)
    }

    fn view() -> LogView {
        let mut v = LogView::new(0, "id".into(), "alpha/job-1".into(), true);
        v.rows.set(2);
        let mut read = LogRead::at(100);
        read.output(
            100,
            b"one\nTwo\x1b]0;pwned\x07\nthree two\nfour\n",
            vec![
                mark(90, 1000, pb::Stream::Stdout),
                mark(104, 2000, pb::Stream::Stderr),
                mark(118, 3000, pb::Stream::Stdout),
            ],
        );
        v.on_read(Ok(read));
        v
    }

    #[test]
    fn lines_keep_their_offset_time_and_stream_and_are_plain_text() {
        let v = view();
        let texts: Vec<&str> = v.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["one", "Two", "three two", "four"],
            "the title escape is gone"
        );
        let offsets: Vec<u64> = v.lines.iter().map(|l| l.offset).collect();
        assert_eq!(offsets, [100, 104, 118, 128]);
        assert_eq!(v.lines[0].time, Some(1000 * 1_000_000_000));
        assert!(!v.lines[0].stderr && v.lines[1].stderr);
        assert_eq!(v.lines[2].time, Some(3000 * 1_000_000_000));
        assert_eq!(v.top, 2, "opens at the end");
        assert_eq!(
            plain(b"\x1b[31mred\x1b[0m\tx 10%\r 99%\r100%\x1b[K"),
            "100%",
            "colours and what \\r wrote over go"
        );
        assert_eq!(plain(b"a\tb\x07\x1b[1mc"), "a       bc");
    }

    #[test]
    fn a_drop_is_a_line_of_its_own_and_lines_around_it_keep_their_offsets() {
        let mut read = LogRead::at(0);
        read.output(0, b"a1\npart", vec![]);
        read.dropped(7, 1000);
        read.output(1007, b"ial\nb2\n", vec![]);
        let mut v = LogView::new(0, "id".into(), "alpha/job-1".into(), false);
        v.on_read(Ok(read));
        let shown: Vec<(String, u64, Option<u64>)> = v
            .lines
            .iter()
            .map(|l| (l.text.clone(), l.offset, l.dropped))
            .collect();
        assert_eq!(
            shown,
            [
                ("a1".into(), 0, None),
                ("part".into(), 3, None),
                (String::new(), 7, Some(1000)),
                ("ial".into(), 1007, None),
                ("b2".into(), 1011, None),
            ]
        );
        assert_eq!(cut(&v), " 1000 bytes dropped ");
    }

    #[test]
    fn following_appends_and_re_splits_only_the_open_line() {
        let mut v = LogView::new(0, "id".into(), "alpha/job-1".into(), true);
        v.rows.set(2);
        let fx = keys(&mut v, "F");
        assert_eq!(
            fx,
            [Effect::ReadLog {
                crew: 0,
                job: "id".into(),
                follow: Some(7)
            }]
        );
        let mut read = LogRead::at(0);
        read.output(0, b"x1\nx2\nhal", vec![]);
        v.on_read(Ok(read));
        let more = |offset: u64, data: &[u8]| {
            let mut r = LogRead::at(offset);
            r.output(offset, data, vec![]);
            Ok(Some(r))
        };
        v.on_more(more(9, b"f\nx4\n"));
        let texts: Vec<&str> = v.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["x1", "x2", "half", "x4"]);
        assert_eq!(v.top, 2, "stays at the bottom");
        // A hole between two chunks is a gap.
        v.on_more(more(20, b"x5\n"));
        assert_eq!(v.lines[4].dropped, Some(6));
        assert_eq!(v.lines[5].offset, 20);
        // Scrolled up, it stays where it is.
        keys(&mut v, "g");
        v.on_more(more(23, b"x6\n"));
        assert_eq!(v.top, 0);
        // The stream ends with the job.
        v.on_more(Ok(None));
        assert!(v.follow.is_none() && !v.running);
        assert_eq!(v.said.as_ref().unwrap().text, "the job ended: following stopped");
        let fx = keys(&mut v, "F");
        assert!(fx.is_empty() && v.said.as_ref().unwrap().error);
    }

    #[test]
    fn q_while_following_lets_go_of_the_attach() {
        let mut v = view();
        keys(&mut v, "F");
        let (closed, fx) = key(&mut v, KeyCode::Char('q'));
        assert_eq!(closed, Closed::Yes);
        assert_eq!(fx, [Effect::Detach { session: 7 }]);
    }

    #[test]
    fn a_followed_log_keeps_its_last_8_mib() {
        let mut v = LogView::new(0, "id".into(), "alpha/job-1".into(), true);
        keys(&mut v, "F");
        v.on_read(Ok(LogRead::at(0)));
        let line = [b'z'; 1023].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
        let mut offset = 0u64;
        for _ in 0..(10 << 10) {
            let mut r = LogRead::at(offset);
            r.output(offset, &line, vec![]);
            offset += 1024;
            v.on_more(Ok(Some(r)));
        }
        let Some(Ok(read)) = &v.read else { panic!() };
        assert!(read.bytes.len() <= LOG_LIMIT as usize + TRIM_SLACK);
        assert_eq!(read.before + read.bytes.len() as u64, offset);
        assert_eq!(v.lines.len(), read.bytes.len() / 1024);
        assert_eq!(v.lines[0].offset, read.offset);
        assert_eq!(v.lines[0].at, 0);
    }

    #[test]
    fn search_is_smart_case_and_n_goes_round() {
        let mut v = view();
        v.top = 0;
        keys(&mut v, "/two");
        let (_, fx) = key(&mut v, KeyCode::Enter);
        assert_eq!(v.top, 1, "lower case matches Two");
        assert_eq!(v.said.as_ref().unwrap().text, "/two: 1 of 2");
        keys(&mut v, "n");
        assert_eq!(v.top, 2);
        keys(&mut v, "n");
        assert_eq!(v.top, 1, "round to the first");
        v.search = Some("Two".into());
        keys(&mut v, "N");
        assert_eq!(v.said.as_ref().unwrap().text, "/Two: 1 of 1");
        v.search = Some("nope".into());
        keys(&mut v, "n");
        assert!(v.said.as_ref().unwrap().error);
        assert!(fx.is_empty());
        // Esc cancels the typing, the last search stays.
        keys(&mut v, "/abc");
        key(&mut v, KeyCode::Esc);
        assert!(v.prompt.is_none());
        assert_eq!(v.search.as_deref(), Some("nope"));
    }

    #[test]
    fn w_saves_the_bytes_as_stored_and_asks_before_writing_over_a_file() {
        let mut v = view();
        keys(&mut v, "w");
        assert_eq!(v.prompt, Some(Prompt::Save("./alpha-job-1.log".into())));
        let (_, fx) = key(&mut v, KeyCode::Enter);
        let [
            Effect::SaveLog {
                path,
                bytes,
                overwrite: false,
            },
        ] = &fx[..]
        else {
            panic!("{fx:?}");
        };
        assert_eq!(path, "./alpha-job-1.log");
        assert!(bytes.windows(5).any(|w| w == b"pwned"), "raw, as stored");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.log");
        let p = file.to_str().unwrap();
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let said = save(p, b"new", false);
        assert_eq!(said, Saved::Exists(p.into()));
        assert_eq!(std::fs::read(&file).unwrap(), b"old", "not written over");
        v.on_saved(said);
        // Any key but y keeps the file.
        let (_, fx) = key(&mut v, KeyCode::Char('n'));
        assert!(fx.is_empty());
        assert!(v.said.as_ref().unwrap().text.contains("kept: nothing saved"));
        v.on_saved(Saved::Exists(p.into()));
        let (_, fx) = key(&mut v, KeyCode::Char('y'));
        assert!(matches!(&fx[..], [Effect::SaveLog { overwrite: true, .. }]));
        assert_eq!(
            save(p, b"new", true),
            Saved::Said(Notice::info(format!("saved 3 bytes to {p}")))
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Never through a link, even when told to write over.
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let Saved::Said(n) = save(link.to_str().unwrap(), b"x", true) else {
            panic!()
        };
        assert!(n.error && n.text.contains("nothing saved"), "{n:?}");
        let Saved::Said(n) = save(&dir.path().join("no/such/dir").display().to_string(), b"x", false) else {
            panic!()
        };
        assert!(n.error && n.text.contains("No such file"), "{n:?}");
    }

    #[test]
    fn at_jumps_to_a_time_and_says_a_bad_one() {
        let mut v = view();
        v.top = 0;
        keys(&mut v, "@1970-01-01T00:40:00Z");
        key(&mut v, KeyCode::Enter);
        assert_eq!(v.said.as_ref().unwrap().text, "@1970-01-01T00:40:00Z: line 3");
        keys(&mut v, "@bogus");
        key(&mut v, KeyCode::Enter);
        assert!(v.said.as_ref().unwrap().error, "{:?}", v.said);
        assert_eq!(key(&mut v, KeyCode::Char('q')).0, Closed::Yes);
    }
}
