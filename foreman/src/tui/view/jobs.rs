//! The job list: every job of every crew, a row each, with `[stop]` and
//! `[attach]` buttons at the right end.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tasker_proto::v1 as pb;

use super::{bold, dim, fit};
use crate::present::{bytes, dashboard_state, job_command, short_duration};
use crate::tui::app::{App, Focus, JobEntry, JobKey};
use crate::tui::layout::{self, ATTACH, Areas, STOP};

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
fn columns(app: &App, width: u16) -> Vec<(Col, usize)> {
    let crew_w = app
        .crews
        .iter()
        .map(|c| c.name.chars().count())
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
        Col::State => dashboard_state(j),
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

fn pad(s: &str, w: usize) -> String {
    use unicode_width::UnicodeWidthStr as _;
    let s = fit(s, w);
    let used = s.width();
    format!("{s}{}", " ".repeat(w.saturating_sub(used)))
}

pub fn draw(frame: &mut Frame, app: &App, areas: &Areas) {
    let visible = app.visible();
    let running = visible.iter().filter(|(_, e)| e.job.outcome.is_none()).count();
    let focused = app.focus == Focus::Jobs;
    let mut title = format!(" jobs {running} running / {} ", visible.len());
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
    if let Some((_, e)) = app.selected_entry() {
        // The selected job's batch, counted live across its crews.
        if !e.job.batch.is_empty() {
            let c = app.batch_counts(&e.job.batch);
            let mut parts = vec![format!("{} running", c.running), format!("{} ok", c.ok)];
            if c.failed > 0 {
                parts.push(format!("{} failed", c.failed));
            }
            if c.unknown > 0 {
                parts.push(format!("{} unknown (crew not answering)", c.unknown));
            }
            bottom.push(format!(
                "batch {}: {}",
                crate::sanitize::Sanitizer::clean(&e.job.batch),
                parts.join(" · ")
            ));
        }
        if let Some(o) = &e.job.outcome {
            let summary = crate::sanitize::Sanitizer::clean(&o.summary);
            let label = app.selected.as_ref().map(|k| app.label(k)).unwrap_or_default();
            bottom.push(format!("{label}: {summary}"));
        }
    }
    if !bottom.is_empty() {
        block = block.title_bottom(Line::from(fit(
            &format!(" {} ", bottom.join("  ·  ")),
            usize::from(areas.jobs.width.saturating_sub(4)),
        )));
    }
    frame.render_widget(block, areas.jobs);

    let cols = columns(app, areas.job_rows.width);
    let header: String = cols.iter().map(|(c, w)| pad(c.title(), *w) + " ").collect();
    frame.render_widget(Paragraph::new(Line::styled(header, bold())), areas.jobs_header);

    if visible.is_empty() {
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
        return;
    }
    let rows = usize::from(areas.job_rows.height);
    for (i, (key, e)) in visible.iter().enumerate().skip(app.offset).take(rows) {
        let y = areas.job_rows.y + (i - app.offset) as u16;
        let row = Rect::new(areas.job_rows.x, y, areas.job_rows.width, 1);
        let selected = app.selected.as_ref() == Some(*key);
        let crew_up = app.crews.get(key.crew).is_some_and(|c| c.link.is_up());
        let mut base = if crew_up { Style::default() } else { dim() };
        if selected {
            base = base.add_modifier(Modifier::REVERSED);
        }
        let mut spans = Vec::new();
        for (c, w) in &cols {
            let text = pad(&cell(app, key, e, *c), *w) + " ";
            let style = if *c == Col::State {
                base.patch(state_style(&e.job))
            } else {
                base
            };
            spans.push(Span::styled(text, style));
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), row);
        let (stop, attach) = layout::buttons(row);
        let running = e.job.outcome.is_none();
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
    let area = super::centered(frame.area(), 100, lines.len() as u16 + 2);
    super::clear(frame, area);
    let block = ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .title(" job (any key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let room = usize::from(inner.width);
    let text: Vec<Line> = lines
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!("{k:<width$}  "), bold()),
                Span::raw(super::fit(v, room.saturating_sub(width + 2))),
            ])
        })
        .collect();
    frame.render_widget(Paragraph::new(text), inner);
}
