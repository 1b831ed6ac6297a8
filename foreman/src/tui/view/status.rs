//! The status line (the `:` command line, the `/` filter, a question, or
//! the last notice) and the key hints of whatever has the focus.

use ratatui::Frame;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{dim, fit};
use crate::tui::app::{App, Focus, Mode};
use crate::tui::keys::{self, Binding};
use crate::tui::layout::Areas;

pub fn draw(frame: &mut Frame, app: &App, areas: &Areas) {
    let width = usize::from(areas.status.width);
    match &app.mode {
        Mode::Command | Mode::Filter => {
            let lead = if app.mode == Mode::Command { ":" } else { "/" };
            let text = format!("{lead}{}", app.line.text);
            frame.render_widget(Paragraph::new(fit(&text, width)), areas.status);
            let cursor: usize = app
                .line
                .text
                .chars()
                .take(app.line.cursor)
                .map(|c| unicode_width::UnicodeWidthChar::width(c).unwrap_or(0))
                .sum();
            let x = (1 + cursor).min(width.saturating_sub(1)) as u16;
            frame.set_cursor_position((areas.status.x + x, areas.status.y));
        }
        _ => {
            if let Some(n) = &app.notice {
                let style = if n.error {
                    Style::default().fg(Color::Red)
                } else if matches!(app.mode, Mode::Confirm(_)) {
                    Style::default().fg(Color::Yellow)
                } else {
                    Style::default()
                };
                frame.render_widget(
                    Paragraph::new(Span::styled(fit(&n.text, width), style)),
                    areas.status,
                );
            }
        }
    }
    frame.render_widget(
        Paragraph::new(hints(app, usize::from(areas.hints.width))),
        areas.hints,
    );
}

/// A binding's hint where the list's selection changes what it does: on
/// an ended job `x archive` takes the place of `s stop` (`u un-archive` on
/// an archived one); on a batch's line
/// ⏎ gathers its outputs; in the filter ⏎ keeps it.
fn hint_for(app: &App, b: &Binding) -> Option<(&'static str, &'static str)> {
    use crate::tui::app::RowKey;
    let list = app.mode == Mode::Normal && app.focus == Focus::Jobs;
    let ended = app.selected_entry().is_some_and(|(_, e)| e.job.outcome.is_some());
    let batch = matches!(app.selected, Some(RowKey::Batch(_)));
    let archived = app.selected_entry().is_some_and(|(_, e)| e.job.archived);
    match b.cmd {
        keys::Cmd::Stop if list && archived => Some(("u", "un-archive")),
        keys::Cmd::Stop if list && ended => Some(("x", "archive")),
        keys::Cmd::Attach if list && batch => Some((b.label, "outputs")),
        keys::Cmd::LeaveInput if app.mode == Mode::Filter && b.hint == "run" => Some((b.label, "keep")),
        _ => Some((b.label, b.hint)),
    }
}

/// The bindings shown for the current mode and focus.
pub fn hint_table(app: &App) -> &'static [Binding] {
    match (&app.mode, app.focus) {
        (Mode::Input, _) => keys::INPUT,
        (Mode::Command | Mode::Filter, _) => keys::LINE,
        (Mode::Confirm(_), _) => keys::CONFIRM,
        (Mode::Normal, Focus::Terminal) => keys::TERMINAL,
        (Mode::Normal, Focus::Jobs) => keys::JOBS,
    }
}

fn hints(app: &App, width: usize) -> Line<'static> {
    if app.overlay.is_some() {
        // What update's overlay keys do (update::keys::on_overlay_key).
        let text = match app.overlay {
            Some(crate::tui::app::Overlay::Help(_)) => " ↑↓ PgUp PgDn scroll  any other key closes",
            Some(crate::tui::app::Overlay::Detail(_)) => " L its whole output  any other key closes",
            _ => " any key closes",
        };
        return Line::styled(fit(text, width), dim());
    }
    let mut spans = Vec::new();
    let mut used = 0;
    // The archived toggle is state the list does not show by itself.
    if app.show_archived && app.mode == Mode::Normal {
        let (on, off) = (" archived shown", " (A hides) ");
        used += on.chars().count() + off.chars().count();
        spans.push(Span::styled(on, Style::default().fg(Color::Yellow)));
        spans.push(Span::styled(off, dim()));
    }
    let typing_pipe = app.mode == Mode::Input && app.attached.as_ref().is_some_and(|a| !a.tty);
    for b in hint_table(app).iter().filter(|b| !b.hint.is_empty()) {
        // Ctrl-D is EOF for pipe jobs only; a tty job's own terminal has it.
        if b.cmd == keys::Cmd::Eof && !typing_pipe {
            continue;
        }
        let Some((label, hint)) = hint_for(app, b) else {
            continue;
        };
        let w = label.chars().count() + hint.chars().count() + 3;
        if used + w > width {
            break;
        }
        used += w;
        spans.push(Span::styled(
            format!(" {label}"),
            Style::default().fg(Color::Cyan),
        ));
        spans.push(Span::styled(format!(" {hint} "), dim()));
    }
    if app.mode == Mode::Input
        && let Some(a) = &app.attached
    {
        let rest = format!(" other keys → {}", a.label);
        if used + rest.chars().count() <= width {
            spans.push(Span::styled(rest, dim()));
        }
    }
    Line::from(spans)
}
