//! Drawing: pure functions of `&App` into a ratatui frame. Every string a
//! crew or a job sent is filtered before it becomes a cell.

pub mod crews;
pub mod help;
pub mod jobs;
pub mod status;
pub mod terminal;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::app::{App, Overlay};
use super::layout;

pub fn draw(frame: &mut Frame, app: &App) {
    let areas = layout::areas(app);
    if areas.too_small {
        too_small(frame, app);
        return;
    }
    crews::strip(frame, app, areas.strip);
    jobs::draw(frame, app, &areas);
    if app.attached.is_some() {
        terminal::draw(frame, app, &areas);
    }
    status::draw(frame, app, &areas);
    match app.overlay {
        Some(Overlay::Help(scroll)) => help::draw(frame, app, scroll),
        Some(Overlay::Crews) => crews::overlay(frame, app),
        Some(Overlay::Detail(ref key)) => jobs::detail(frame, app, key),
        Some(Overlay::Gathered(scroll)) => jobs::gathered(frame, app, scroll),
        Some(Overlay::Log) => {
            if let Some(v) = &app.log {
                crate::tui::logview::draw(frame, v, frame.area());
            }
        }
        None => {}
    }
}

fn too_small(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let text = format!(
        "window too small ({}x{}): foreman needs {}x{}",
        app.size.0,
        app.size.1,
        layout::MIN_COLS,
        layout::MIN_ROWS
    );
    frame.render_widget(
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .style(Style::default().fg(Color::Yellow)),
        area,
    );
}

/// A box in the middle of the screen, for overlays.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn clear(frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
}

pub fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// Cuts `s` to `width` columns, marking the cut with '…'.
pub fn fit(s: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar as _;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Cuts a styled line to `width` columns, marking the cut with '…' (in the
/// style of the span it cuts).
pub fn fit_line(line: ratatui::text::Line<'static>, width: usize) -> ratatui::text::Line<'static> {
    use unicode_width::UnicodeWidthStr as _;
    if line.width() <= width {
        return line;
    }
    let mut out = Vec::new();
    let mut left = width;
    for span in line.spans {
        let w = span.content.width();
        if w < left {
            left -= w;
            out.push(span);
            continue;
        }
        // More follows: the cut is marked even where this span just fits.
        let text = format!("{}{}", span.content, if w == left { " " } else { "" });
        out.push(ratatui::text::Span::styled(fit(&text, left), span.style));
        break;
    }
    ratatui::text::Line::from(out).style(line.style)
}
