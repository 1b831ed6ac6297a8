//! The job list: every job of every crew, a row each, with `[stop]` and
//! `[attach]` buttons at the right end.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tasker_proto::v1 as pb;

use super::{bold, dim, fit};
use crate::present::{bytes, job_command, short_duration, state_word};
use crate::tui::app::{App, BatchCounts, Focus, JobEntry, JobKey, Row, RowKey};
use crate::tui::layout::{self, ATTACH, Areas, STOP};
use crate::tui::update::GatheredLine;

fn state_style(j: &pb::Job) -> Style {
    use pb::outcome::{Reason, Termination};
    match &j.outcome {
        None => Style::default().fg(Color::Green),
        Some(o) => match (&o.reason, o.termination) {
            (Some(Reason::StoppedBy(_) | Reason::TimedOut(_)), _) => Style::default().fg(Color::Yellow),
            (_, Some(Termination::ExitCode(0))) => dim(),
            _ => Style::default().fg(Color::Red),
        },
    }
}

/// The command, filtered and quoted, for one line.
pub fn command(j: &pb::Job) -> String {
    job_command(j)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Crew,
    Job,
    State,
    Owner,
    Age,
    Cpu,
    Mem,
    Command,
}

impl Col {
    fn title(self) -> &'static str {
        match self {
            Self::Crew => "CREW",
            Self::Job => "JOB",
            Self::State => "STATE",
            Self::Owner => "OWNER",
            Self::Age => "AGE",
            Self::Cpu => "CPU",
            Self::Mem => "MEM",
            Self::Command => "COMMAND",
        }
    }
}

/// Columns and widths for `width` cells: optional columns go, least
/// useful first, until the command has room.
fn columns(app: &App, widest_batch: usize, width: u16) -> Vec<(Col, usize)> {
    // A batch's line says "▸ N crews" there.
    let batch_w = if widest_batch > 0 {
        format!("▸ {widest_batch} crews").chars().count()
    } else {
        0
    };
    let crew_w = app
        .crews
        .iter()
        .map(|c| c.name.chars().count())
        .chain([batch_w])
        .max()
        .unwrap_or(4)
        .clamp(4, 12);
    let mut cols = vec![
        (Col::Crew, crew_w),
        (Col::Job, 8),
        (Col::State, 10),
        (Col::Owner, 10),
        (Col::Age, 4),
        (Col::Cpu, 5),
        (Col::Mem, 7),
    ];
    let room = |cols: &[(Col, usize)]| {
        usize::from(width).saturating_sub(
            cols.iter().map(|(_, w)| w + 1).sum::<usize>() + usize::from(layout::BUTTONS_WIDTH),
        )
    };
    for drop in [Col::Owner, Col::Cpu, Col::Age, Col::Mem] {
        if room(&cols) >= 20 {
            break;
        }
        cols.retain(|(c, _)| *c != drop);
    }
    let left = room(&cols);
    cols.push((Col::Command, left));
    cols
}

fn cell(app: &App, key: &JobKey, e: &JobEntry, col: Col) -> String {
    let j = &e.job;
    match col {
        Col::Crew => app
            .crews
            .get(key.crew)
            .map_or("?", |c| c.name.as_str())
            .to_owned(),
        Col::Job => j.handle.clone(),
        // A crew not answering: what its jobs do now is not known.
        Col::State if j.outcome.is_none() && !app.crews.get(key.crew).is_some_and(|c| c.link.is_up()) => {
            "unknown".to_owned()
        }
        Col::State if j.archived => "archived".to_owned(),
        Col::State => state_word(j),
        Col::Owner => crate::sanitize::Sanitizer::clean(&j.owner),
        Col::Age => j
            .created_at
            .as_ref()
            .map(|t| {
                let then = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.seconds.max(0) as u64);
                short_duration(app.since(then))
            })
            .unwrap_or_default(),
        Col::Cpu => e
            .usage
            .as_ref()
            .map(|u| format!("{:.0}%", u.cpu_cores * 100.0))
            .unwrap_or_default(),
        Col::Mem => e
            .usage
            .as_ref()
            .map(|u| bytes(u.memory_bytes))
            .or_else(|| j.totals.as_ref().and_then(|t| t.peak_memory_bytes).map(bytes))
            .unwrap_or_default(),
        Col::Command => {
            let c = command(j);
            if j.name.is_empty() {
                c
            } else {
                format!("{} · {c}", crate::sanitize::Sanitizer::clean(&j.name))
            }
        }
    }
}

/// `12:03:07` (UTC) of a time.
fn clock(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

fn pad(s: &str, w: usize) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let s = fit(s, w);
    let used = s.width();
    format!("{s}{}", " ".repeat(w.saturating_sub(used)))
}

pub fn draw(frame: &mut Frame, app: &App, areas: &Areas) {
    let list = app.list();
    let (running, total) = (list.running, list.total);
    let focused = app.focus == Focus::Jobs;
    let mut title = format!(" jobs {running} running / {total} ");
    if !app.filter.is_empty() {
        title.push_str(&format!("· filter /{} ", fit(&app.filter, 20)));
    }
    if let Some(g) = app.order.group {
        title.push_str(&format!("· by {} ", g.name()));
    }
    if app.order.by != crate::tui::app::SortBy::Crew || app.order.descending {
        let arrow = if app.order.descending { "↓" } else { "↑" };
        title.push_str(&format!("· sorted by {} {arrow} ", app.order.by.name()));
    }
    let mut block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, bold()))
        .border_style(if focused {
            Style::default().fg(Color::Cyan)
        } else {
            dim()
        });
    let mut bottom = Vec::new();
    // The selected batch (its line, or a member), counted live across its
    // crews.
    let batch = match &app.selected {
        Some(RowKey::Batch(b)) => Some(b.as_str()),
        _ => app
            .selected_entry()
            .map(|(_, e)| e.job.batch.as_str())
            .filter(|b| !b.is_empty()),
    };
    if let Some(batch) = batch {
        let c = app.batch_counts(batch);
        let mut parts = vec![format!("{} running", c.running), format!("{} ok", c.ok)];
        if c.failed > 0 {
            parts.push(format!("{} failed", c.failed));
        }
        if c.unknown > 0 {
            parts.push(format!("{} unknown (crew not answering)", c.unknown));
        }
        bottom.push(format!(
            "batch {}: {}",
            crate::sanitize::Sanitizer::clean(batch),
            parts.join(" · ")
        ));
    }
    if let Some((key, e)) = app.selected_entry()
        && e.job.outcome.is_none()
        && let Some(crew) = app.crews.get(key.crew).filter(|c| !c.link.is_up())
    {
        let since = match &crew.link {
            crate::tui::app::Link::Reconnecting { since, .. }
            | crate::tui::app::Link::Refused { since, .. } => {
                format!(" since {}", clock(*since))
            }
            _ => String::new(),
        };
        bottom.push(format!(
            "{}: state unknown: crew {} not answering{since}",
            app.label(key),
            crate::sanitize::Sanitizer::clean(&crew.name)
        ));
    }
    if let Some((key, e)) = app.selected_entry()
        && let Some(o) = &e.job.outcome
    {
        let summary = crate::sanitize::Sanitizer::clean(&o.summary);
        bottom.push(format!("{}: {summary}", app.label(key)));
    }
    if !bottom.is_empty() {
        block = block.title_bottom(Line::from(fit(
            &format!(" {} ", bottom.join("  ·  ")),
            usize::from(areas.jobs.width.saturating_sub(4)),
        )));
    }
    frame.render_widget(block, areas.jobs);

    let cols = columns(app, list.widest_batch, areas.job_rows.width);
    let header: String = cols.iter().map(|(c, w)| pad(c.title(), *w) + " ").collect();
    frame.render_widget(Paragraph::new(Line::styled(header, bold())), areas.jobs_header);

    if total == 0 {
        let up = app.crews.iter().find(|c| c.link.is_up());
        let text = if !app.filter.is_empty() {
            "no job matches the filter (Esc in / clears it)".to_owned()
        } else if let Some(crew) = up {
            // With several crews `:start` needs one named: show a real one.
            if app.live_crews().count() == 1 {
                "no jobs yet: :start -- CMD starts one".to_owned()
            } else {
                format!(
                    "no jobs yet: :start {} -- CMD starts one",
                    crate::sanitize::Sanitizer::clean(&crew.name)
                )
            }
        } else {
            "waiting for crews…".to_owned()
        };
        frame.render_widget(Paragraph::new(Line::styled(text, dim())), areas.job_rows);
        app.on_screen.borrow_mut().clear();
        return;
    }
    let rows = usize::from(areas.job_rows.height);
    // Only the lines on screen are made.
    let window: Vec<Row> = list
        .rows
        .iter()
        .skip(app.offset)
        .take(rows)
        .filter_map(|k| app.row(k))
        .collect();
    // What this frame shows, so that news of other jobs draws nothing.
    let mut shown = app.on_screen.borrow_mut();
    shown.clear();
    for r in &window {
        match r {
            Row::Job { key, .. } => {
                shown.insert(key.id.clone());
            }
            Row::Batch { members, .. } => shown.extend(members.iter().map(|(k, _)| k.id.clone())),
        }
    }
    drop(shown);
    for (i, r) in window.iter().enumerate() {
        let y = areas.job_rows.y + i as u16;
        let line = Rect::new(areas.job_rows.x, y, areas.job_rows.width, 1);
        let selected = app.selected.as_ref().is_some_and(|s| r.is(s));
        let (spans, running) = match r {
            Row::Job { key, entry, member } => {
                let crew_up = app.crews.get(key.crew).is_some_and(|c| c.link.is_up());
                let base = if crew_up && !entry.job.archived {
                    Style::default()
                } else {
                    dim()
                };
                let spans = job_spans(app, key, entry, *member, &cols, base, selected);
                (spans, entry.job.outcome.is_none())
            }
            Row::Batch { id, members, open } => {
                let counts = app.counts(members.iter().copied());
                let spans = batch_spans(app, id, members, *open, counts, &cols, selected);
                (spans, counts.running > 0)
            }
        };
        frame.render_widget(Paragraph::new(Line::from(spans)), line);
        let (stop, attach) = layout::buttons(line);
        let stop_style = if running {
            Style::default().fg(Color::Red)
        } else {
            dim()
        };
        frame.render_widget(Paragraph::new(Span::styled(STOP, stop_style)), stop);
        frame.render_widget(
            Paragraph::new(Span::styled(ATTACH, Style::default().fg(Color::Cyan))),
            attach,
        );
    }
}

fn job_spans(
    app: &App,
    key: &JobKey,
    e: &JobEntry,
    member: bool,
    cols: &[(Col, usize)],
    mut base: Style,
    selected: bool,
) -> Vec<Span<'static>> {
    if selected {
        base = base.add_modifier(Modifier::REVERSED);
    }
    cols.iter()
        .map(|(c, w)| {
            let mut text = cell(app, key, e, *c);
            // A batch's member, under its line.
            if member && *c == Col::Crew {
                text = format!("  {text}");
            }
            let text = pad(&text, *w) + " ";
            let unknown = e.job.outcome.is_none() && !app.crews.get(key.crew).is_some_and(|c| c.link.is_up());
            let style = match c {
                Col::State if unknown => base,
                Col::State => base.patch(state_style(&e.job)),
                _ => base,
            };
            Span::styled(text, style)
        })
        .collect()
}

/// A batch's line: how many crews, how its members stand, its command.
fn batch_spans(
    app: &App,
    id: &str,
    members: &[(&JobKey, &JobEntry)],
    open: bool,
    c: BatchCounts,
    cols: &[(Col, usize)],
    selected: bool,
) -> Vec<Span<'static>> {
    let base = if selected {
        bold().add_modifier(Modifier::REVERSED)
    } else {
        bold()
    };
    let first = members.first().map(|(_, e)| &e.job);
    let (state, state_style) = if c.running > 0 {
        (
            format!("{} running", c.running),
            Style::default().fg(Color::Green),
        )
    } else if c.failed > 0 {
        (format!("{} failed", c.failed), Style::default().fg(Color::Red))
    } else if c.unknown > 0 {
        (format!("{} unknown", c.unknown), dim())
    } else {
        ("ok".to_owned(), dim())
    };
    let mut standing = Vec::new();
    for (n, word) in [
        (c.running, "running"),
        (c.ok, "ok"),
        (c.failed, "failed"),
        (c.unknown, "unknown"),
    ] {
        if n > 0 {
            standing.push(format!("{n} {word}"));
        }
    }
    let usage: Vec<&pb::Usage> = members.iter().filter_map(|(_, e)| e.usage.as_ref()).collect();
    cols.iter()
        .map(|(col, w)| {
            let text = match col {
                Col::Crew => format!("{} {} crews", if open { "▾" } else { "▸" }, members.len()),
                Col::Job => "batch".to_owned(),
                Col::State => state.clone(),
                Col::Owner => first
                    .map(|j| crate::sanitize::Sanitizer::clean(&j.owner))
                    .unwrap_or_default(),
                Col::Age => members
                    .first()
                    .map(|(k, e)| cell(app, k, e, Col::Age))
                    .unwrap_or_default(),
                Col::Cpu if !usage.is_empty() => {
                    format!("{:.0}%", usage.iter().map(|u| u.cpu_cores).sum::<f64>() * 100.0)
                }
                Col::Mem if !usage.is_empty() => bytes(usage.iter().map(|u| u.memory_bytes).sum()),
                Col::Cpu | Col::Mem => String::new(),
                Col::Command => format!(
                    "{} · {} · {}",
                    first.map(command).unwrap_or_default(),
                    standing.join(" · "),
                    crate::sanitize::Sanitizer::clean(id)
                ),
            };
            let style = if *col == Col::State {
                base.patch(state_style)
            } else {
                base
            };
            Span::styled(pad(&text, *w) + " ", style)
        })
        .collect()
}

/// The gathered view of a batch: each group's crews and ends, then the
/// output they all printed.
pub fn gathered(frame: &mut Frame, app: &App, scroll: u16) {
    let Some(g) = &app.gathered else { return };
    let area = super::centered(frame.area(), 120, frame.area().height.saturating_sub(2));
    super::clear(frame, area);
    let counts = app.batch_counts(&g.batch);
    let mut standing = vec![format!("{} running", counts.running), format!("{} ok", counts.ok)];
    if counts.failed > 0 {
        standing.push(format!("{} failed", counts.failed));
    }
    if counts.unknown > 0 {
        standing.push(format!("{} unknown", counts.unknown));
    }
    let title = format!(
        " batch {}: {} ",
        crate::sanitize::Sanitizer::clean(&g.batch),
        standing.join(" · ")
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, bold()))
        .title_bottom(" ↑↓ scroll · ⏎ its members · any other key closes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let room = usize::from(inner.width);
    let lines: Vec<Line> = match &g.groups {
        None => vec![Line::styled("reading the members' output…", dim())],
        Some(_) => crate::tui::update::gathered_lines(g)
            .into_iter()
            .skip(usize::from(scroll))
            .take(usize::from(inner.height))
            .map(|(kind, text)| match kind {
                GatheredLine::Ok => Line::styled(fit(&text, room), bold().fg(Color::Green)),
                GatheredLine::Failed => Line::styled(fit(&text, room), bold().fg(Color::Red)),
                GatheredLine::Running => Line::styled(fit(&text, room), bold()),
                GatheredLine::Output => Line::raw(fit(&format!("  {text}"), room)),
            })
            .collect(),
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The `v` overlay: a job's details, as `foreman status` prints them, and
/// what it uses now.
pub fn detail(frame: &mut Frame, app: &App, key: &crate::tui::app::JobKey) {
    let Some(entry) = app.jobs.get(key) else { return };
    let crew = app.crews.get(key.crew).map_or("?", |c| c.name.as_str());
    let view = crate::present::view(crew, &entry.job);
    let mut lines = crate::present::details(&view);
    if let Some(u) = &entry.usage {
        lines.push((
            "using now",
            format!(
                "cpu {:.2} cores, memory {}",
                u.cpu_cores,
                crate::present::bytes(u.memory_bytes)
            ),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    // Its audit trail under the details: who did what to it.
    let trail: Vec<(String, Style)> = match &app.trail {
        Some(trail) if trail.job == key.id => {
            let mut t = vec![
                (String::new(), Style::default()),
                ("audit trail (newest last)".to_owned(), bold()),
            ];
            match &trail.lines {
                None => t.push(("reading…".to_owned(), dim())),
                Some(Ok(l)) if l.is_empty() => t.push(("no records".to_owned(), dim())),
                Some(Ok(l)) => t.extend(l.iter().map(|l| (l.clone(), Style::default()))),
                Some(Err(why)) => t.push((format!("not read: {why}"), dim())),
            }
            t
        }
        _ => Vec::new(),
    };
    let area = super::centered(frame.area(), 110, (lines.len() + trail.len()) as u16 + 2);
    super::clear(frame, area);
    let block = ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .title(" job (any key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let room = usize::from(inner.width);
    let mut text: Vec<Line> = lines
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<width$}  "), bold()),
                Span::raw(super::fit(v, room.saturating_sub(width + 2))),
            ])
        })
        .collect();
    text.extend(
        trail
            .into_iter()
            .map(|(l, style)| Line::styled(super::fit(&l, room), style)),
    );
    frame.render_widget(Paragraph::new(text), inner);
}
