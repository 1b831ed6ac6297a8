//! `:help`: every key of every mode and every command, from the same tables
//! `update` dispatches through.

use ratatui::Frame;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{bold, centered, clear, dim};
use crate::tui::app::App;
use crate::tui::keys::{self, Binding};

pub fn lines() -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let section = |out: &mut Vec<Line<'static>>, title: &'static str, table: &[Binding]| {
        out.push(Line::styled(title, bold()));
        for b in table {
            out.push(Line::from(vec![
                Span::styled(format!("  {:<10}", b.label), Style::default().fg(Color::Cyan)),
                Span::raw(b.what),
            ]));
        }
        out.push(Line::raw(""));
    };
    section(&mut out, "Job list", keys::JOBS);
    section(&mut out, "Terminal pane", keys::TERMINAL);
    section(
        &mut out,
        "Typing into a job (every other key goes to the job, Ctrl-C included)",
        keys::INPUT,
    );
    section(&mut out, "Command line and filter", keys::LINE);
    section(&mut out, "Before a stop", keys::CONFIRM);
    out.push(Line::styled("Commands", bold()));
    for c in keys::COMMANDS {
        out.push(Line::from(vec![
            Span::styled(
                format!("  :{} {}", c.name, c.args),
                Style::default().fg(Color::Cyan),
            ),
            Span::styled(format!("  {}", c.what), dim()),
        ]));
    }
    out.push(Line::raw(""));
    out.push(Line::styled("Mouse", bold()));
    out.push(Line::raw(
        "  click a job to select it; click [stop] or [attach] on its row",
    ));
    out.push(Line::raw(
        "  click the terminal pane to type into the job; wheel scrolls",
    ));
    out.push(Line::raw("  click the crew strip for connection details"));
    out.push(Line::raw(""));
    out.push(Line::raw(
        "JOB is [crew/]job-N, a name, or an id prefix; Tab completes it.",
    ));
    out
}

pub fn draw(frame: &mut Frame, _app: &App, scroll: u16) {
    let area = centered(frame.area(), 90, frame.area().height.saturating_sub(2));
    clear(frame, area);
    let all = lines();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" help: ↑↓ PgUp PgDn scroll, any other key closes ");
    let inner = block.inner(area);
    // A line too long for the window ends in '…', never silently.
    let room = usize::from(inner.width);
    let all: Vec<Line<'static>> = all.into_iter().map(|l| super::fit_line(l, room)).collect();
    let max = (all.len() as u16).saturating_sub(inner.height);
    frame.render_widget(
        Paragraph::new(all).block(block).scroll((scroll.min(max), 0)),
        area,
    );
}
