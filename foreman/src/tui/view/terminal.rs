//! The emulated terminal pane: the attached job's screen, drawn cell by
//! cell from the emulator's model. Nothing but printable characters and
//! colours leaves here.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders};

use super::{bold, dim, fit};
use crate::tui::app::{App, Attachment, Focus, Mode};
use crate::tui::keys;

pub fn draw(frame: &mut Frame, app: &App, areas: &crate::tui::layout::Areas) {
    let Some(a) = &app.attached else { return };
    let typing = app.mode == Mode::Input;
    let border = if typing {
        Style::default().fg(Color::Yellow)
    } else if app.focus == Focus::Terminal {
        Style::default().fg(Color::Cyan)
    } else {
        dim()
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(
            fit(
                &title(a, typing),
                usize::from(areas.terminal.width.saturating_sub(4)),
            ),
            bold(),
        ));
    frame.render_widget(block, areas.terminal);
    render_screen(a, areas.screen, frame.buffer_mut());
    if typing && a.term.scrolled() == 0 && !a.term.screen().hide_cursor() {
        let (row, col) = a.term.screen().cursor_position();
        if row < areas.screen.height && col < areas.screen.width {
            frame.set_cursor_position((areas.screen.x + col, areas.screen.y + row));
        }
    }
}

fn title(a: &Attachment, typing: bool) -> String {
    let kind = if a.tty { "tty" } else { "pipe" };
    let access = match a.writable {
        None => "opening",
        Some(true) => "read-write",
        Some(false) => "read-only",
    };
    let mut t = format!(" {} · {kind} · {access}", a.label);
    if let Some(end) = &a.ended {
        t.push_str(&format!(" · ended: {end}"));
    } else if let Some(lost) = &a.lost {
        t.push_str(&format!(" · lost: {lost}"));
    } else if typing {
        t.push_str(&format!(" · typing → job ({} stops)", keys::LEAVE_INPUT_LABEL));
    }
    if a.term.scrolled() > 0 {
        t.push_str(&format!(" · {} lines back", a.term.scrolled()));
    }
    if a.dropped > 0 {
        t.push_str(&format!(" · {} bytes skipped", a.dropped));
    }
    t.push(' ');
    t
}

/// A character that may reach the operator's terminal: printable, and not
/// one that reorders or hides text (bidi controls, zero-width tricks).
pub fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

fn color(c: vt100::Color) -> Color {
    match c {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(i) => Color::Indexed(i),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

/// Copies the emulator's visible cells into `area` of `buf`.
pub fn render_screen(a: &Attachment, area: Rect, buf: &mut Buffer) {
    let screen = a.term.screen();
    let (rows, cols) = a.term.size();
    for y in 0..area.height.min(rows) {
        let mut x = 0;
        while x < area.width.min(cols) {
            let Some(cell) = screen.cell(y, x) else { break };
            let mut style = Style::default()
                .fg(color(cell.fgcolor()))
                .bg(color(cell.bgcolor()));
            let mut m = Modifier::empty();
            if cell.bold() {
                m |= Modifier::BOLD;
            }
            if cell.dim() {
                m |= Modifier::DIM;
            }
            if cell.italic() {
                m |= Modifier::ITALIC;
            }
            if cell.underline() {
                m |= Modifier::UNDERLINED;
            }
            if cell.inverse() {
                m |= Modifier::REVERSED;
            }
            style = style.add_modifier(m);
            let text: String = cell.contents().chars().filter(|c| printable(*c)).collect();
            let wide = cell.is_wide();
            let target = &mut buf[(area.x + x, area.y + y)];
            if cell.is_wide_continuation() {
                // Drawn by the wide character before it.
                target.set_style(style);
            } else if text.is_empty() || (wide && x + 1 >= area.width) {
                target.set_symbol(" ").set_style(style);
            } else {
                target.set_symbol(&text).set_style(style);
            }
            x += 1;
        }
    }
}
