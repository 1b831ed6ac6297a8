//! The crew strip (one line: each crew's connection) and the `:crews`
//! overlay (the details).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{bold, centered, clear, dim, fit};
use crate::present::short_duration;
use crate::tui::app::{App, Link};

/// The mark and colour of a link state.
pub fn mark(link: &Link) -> (&'static str, Color) {
    match link {
        Link::Connected { .. } => ("●", Color::Green),
        Link::Connecting { .. } => ("○", Color::Yellow),
        Link::Reconnecting { .. } => ("◌", Color::Yellow),
        Link::Refused { .. } => ("✕", Color::Red),
        Link::Gone => ("·", Color::DarkGray),
    }
}

/// "connected 3m", "reconnecting 12s: connection refused", ...
pub fn describe(app: &App, link: &Link) -> String {
    match link {
        Link::Connected { since } => format!("connected {}", short_duration(app.since(*since))),
        Link::Connecting { .. } => "connecting".to_owned(),
        Link::Reconnecting { since, why, .. } => {
            format!("reconnecting {}: {why}", short_duration(app.since(*since)))
        }
        Link::Refused { since, why, .. } => {
            format!("refused {}: {why}", short_duration(app.since(*since)))
        }
        Link::Gone => "gone: discovery no longer finds it".to_owned(),
    }
}

pub fn strip(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(" crews ", bold())];
    let mut used = 7usize;
    let width = usize::from(area.width);
    let many = app.live_crews().count() > 3;
    for (_, c) in app.live_crews() {
        let (m, color) = mark(&c.link);
        // With many crews: marks and names only; `c` or a click shows why.
        let detail = if many {
            String::new()
        } else {
            match &c.link {
                Link::Connected { .. } => String::new(),
                other => format!(" {}", describe(app, other)),
            }
        };
        let text = format!("{m} {}{detail}  ", c.name);
        let w = text.chars().count();
        if used + w > width {
            let room = width.saturating_sub(used);
            spans.push(Span::styled(fit(&text, room), Style::default().fg(color)));
            break;
        }
        used += w;
        spans.push(Span::styled(text, Style::default().fg(color)));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn overlay(frame: &mut Frame, app: &App) {
    let area = centered(frame.area(), 100, app.live_crews().count() as u16 * 3 + 4);
    clear(frame, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" crews (any key closes) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut lines = Vec::new();
    for (ix, c) in app.live_crews() {
        let (m, color) = mark(&c.link);
        let jobs = app.jobs.keys().filter(|k| k.crew == ix).count();
        let me =
            c.me.as_ref()
                .map_or_else(|| "-".to_owned(), |(id, role)| format!("{id} ({role})"));
        lines.push(Line::from(vec![
            Span::styled(
                format!("{m} {}", c.name),
                Style::default().fg(color).patch(bold()),
            ),
            Span::raw(format!(
                "  {}  you are {me}  {jobs} job{}",
                c.addr,
                if jobs == 1 { "" } else { "s" }
            )),
        ]));
        lines.push(Line::styled(
            fit(&format!("  {}", describe(app, &c.link)), width),
            dim(),
        ));
        lines.push(Line::raw(""));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
