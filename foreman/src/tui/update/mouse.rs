//! The mouse: clicks on the crew strip, a job row and its buttons, or the
//! terminal pane; the wheel; and the mouse handed to a job's program that
//! asked for it.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};

use super::attach::{attach, enter_input, leave_input};
use super::batches;
use super::jobs::{ask_stop, move_selection};
use super::keys::scroll;
use crate::tui::action::{Effect, Input};
use crate::tui::app::{App, Focus, Mode, Overlay, RowKey};
use crate::tui::layout;
use crate::tui::term;

pub(super) fn on_mouse(app: &mut App, m: MouseEvent, fx: &mut Vec<Effect>) {
    let areas = layout::areas(app);
    if areas.too_small {
        return;
    }
    // The log view covers the window: the wheel scrolls it, nothing else.
    if matches!(app.overlay, Some(Overlay::Log)) {
        if let Some(v) = app.log.as_mut() {
            match m.kind {
                MouseEventKind::ScrollUp => v.scroll(-3),
                MouseEventKind::ScrollDown => v.scroll(3),
                _ => {}
            }
        }
        return;
    }
    if forward_mouse(app, &m, areas.screen, fx) {
        return;
    }
    let (col, row) = (m.column, m.row);
    match m.kind {
        MouseEventKind::Down(MouseButton::Left) => {
            if app.overlay.is_some() {
                app.overlay = None;
                return;
            }
            if layout::contains(areas.strip, col, row) {
                app.overlay = Some(Overlay::Crews);
            } else if layout::contains(areas.job_rows, col, row) {
                click_job(app, areas, col, row, fx);
            } else if layout::contains(areas.terminal, col, row) && app.attached.is_some() {
                app.focus = Focus::Terminal;
                if matches!(app.mode, Mode::Normal) {
                    enter_input(app);
                }
            } else if layout::contains(areas.jobs, col, row) {
                leave_input(app);
                app.focus = Focus::Jobs;
            }
        }
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            let up = matches!(m.kind, MouseEventKind::ScrollUp);
            if layout::contains(areas.terminal, col, row) {
                scroll(app, if up { 3 } else { -3 });
            } else if layout::contains(areas.jobs, col, row) {
                move_selection(app, if up { -3 } else { 3 });
            }
        }
        _ => {}
    }
}

/// While typing goes to a tty job whose program asked for the mouse (vim,
/// htop, `less --mouse`), the mouse over its live screen is the program's:
/// each event goes to it as a terminal would send it, and the dashboard
/// does nothing else with it. `Ctrl-]` still leaves input mode.
fn forward_mouse(app: &App, m: &MouseEvent, screen: ratatui::layout::Rect, fx: &mut Vec<Effect>) -> bool {
    let Some(a) = &app.attached else {
        return false;
    };
    let s = a.term.screen();
    let mode = s.mouse_protocol_mode();
    if !matches!(app.mode, Mode::Input)
        || !a.tty
        || a.term.scrolled() != 0
        || mode == vt100::MouseProtocolMode::None
        || !layout::contains(screen, m.column, m.row)
    {
        return false;
    }
    let (col, row) = (m.column - screen.x, m.row - screen.y);
    if let Some(bytes) = term::mouse_bytes(m, col, row, mode, s.mouse_protocol_encoding()) {
        fx.push(Effect::Send {
            session: a.session,
            input: Input::Bytes(bytes),
        });
    }
    true
}

fn click_job(app: &mut App, areas: layout::Areas, col: u16, row: u16, fx: &mut Vec<Effect>) {
    let i = app.offset + usize::from(row - areas.job_rows.y);
    let Some(key) = app.list().rows.get(i).cloned() else {
        return;
    };
    leave_input(app);
    app.focus = Focus::Jobs;
    let again = app.selected.as_ref() == Some(&key);
    app.selected = Some(key.clone());
    let line = ratatui::layout::Rect::new(areas.job_rows.x, row, areas.job_rows.width, 1);
    let (stop, attach_btn) = layout::buttons(line);
    match key {
        RowKey::Job(key) if layout::contains(stop, col, row) => ask_stop(app, &key),
        RowKey::Job(key) if layout::contains(attach_btn, col, row) => attach(app, &key, fx),
        RowKey::Job(_) => {}
        RowKey::Batch(b) if layout::contains(stop, col, row) => batches::ask_stop(app, &b),
        RowKey::Batch(b) if layout::contains(attach_btn, col, row) => batches::show(app, &b, fx),
        // A click on a batch's selected line opens or closes it.
        RowKey::Batch(b) if again => batches::fold(app, &b, None),
        RowKey::Batch(_) => {}
    }
}
