//! Keys and pastes: what a key does in each mode (through the tables in
//! `tui::keys`), the overlay's keys, typing into a job, and what a paste
//! puts where.

use crossterm::event::{KeyCode, KeyEvent};

use super::attach::{detach, enter_input};
use super::cmdline::on_line_key;
use super::jobs::{archive, ask_stop, keep_selection_visible, move_selection, whose};
use super::{attach::attach, batches, notify};
use crate::tui::action::{Effect, Input, Notice};
use crate::tui::app::{App, Asked, Focus, Mode, Overlay, RowKey};
use crate::tui::keys::{self, Cmd};
use crate::tui::layout;
use crate::tui::term;

pub(super) fn on_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    if let Some(Overlay::Gathered(scroll)) = app.overlay {
        batches::on_view_key(app, key.code, scroll);
        return;
    }
    if matches!(app.overlay, Some(Overlay::Log)) {
        if let Some(v) = app.log.as_mut()
            && v.on_key(key.code, fx, &mut app.next_session) == crate::tui::logview::Closed::Yes
        {
            app.overlay = None;
            app.log = None;
        }
        return;
    }
    // The detail view's L: that job's output.
    if let (Some(Overlay::Detail(k)), KeyCode::Char('L')) = (&app.overlay, key.code) {
        let k = k.clone();
        super::jobs::open_log(app, k, fx);
        return;
    }
    if app.overlay.is_some() {
        on_overlay_key(app, key);
        return;
    }
    if !matches!(app.mode, Mode::Input) && app.notice.as_ref().is_some_and(|n| n.error) {
        app.notice = None;
    }
    match app.mode.clone() {
        Mode::Input => on_input_key(app, key, fx),
        Mode::Command => on_line_key(app, key, fx, true),
        Mode::Filter => on_line_key(app, key, fx, false),
        Mode::Confirm(p) => {
            app.mode = Mode::Normal;
            let yes = matches!(key.code, KeyCode::Char('y' | 'Y'));
            match (p.action, yes) {
                (Asked::Stop, true) => {
                    fx.push(Effect::Stop {
                        crew: p.crew,
                        job: p.job,
                        label: p.label.clone(),
                    });
                    notify(app, Notice::info(format!("stopping {}…", p.label)));
                }
                (Asked::Stop | Asked::StopBatch, false) => {
                    notify(app, Notice::info(format!("{} left running", p.label)));
                }
                (Asked::StopBatch, true) => batches::stop(app, &p.job, fx),
                (Asked::Type, true) => {
                    if let Some(a) = app.attached.as_mut().filter(|a| a.job == p.job) {
                        a.consented = true;
                    }
                    enter_input(app);
                    if matches!(app.mode, Mode::Input) {
                        let who = app.index.get(&p.job).map_or(p.label.clone(), |k| whose(app, k));
                        let msg = format!("typing into {who}; {} stops typing", keys::LEAVE_INPUT_LABEL);
                        notify(app, Notice::info(msg));
                    }
                }
                (Asked::Type, false) => {
                    notify(app, Notice::info(format!("watching {} without typing", p.label)));
                }
            }
        }
        Mode::Normal => {
            let table = match app.focus {
                Focus::Jobs => keys::JOBS,
                Focus::Terminal => keys::TERMINAL,
            };
            if let Some(cmd) = keys::lookup(table, &key) {
                run_cmd(app, cmd, fx);
            }
        }
    }
}

fn on_overlay_key(app: &mut App, key: KeyEvent) {
    match (&app.overlay, key.code) {
        (Some(Overlay::Help(n)), KeyCode::Down | KeyCode::Char('j')) => {
            app.overlay = Some(Overlay::Help(n.saturating_add(1)));
        }
        (Some(Overlay::Help(n)), KeyCode::Up | KeyCode::Char('k')) => {
            app.overlay = Some(Overlay::Help(n.saturating_sub(1)));
        }
        (Some(Overlay::Help(n)), KeyCode::PageDown | KeyCode::Char(' ')) => {
            app.overlay = Some(Overlay::Help(n.saturating_add(10)));
        }
        (Some(Overlay::Help(n)), KeyCode::PageUp) => {
            app.overlay = Some(Overlay::Help(n.saturating_sub(10)));
        }
        _ => app.overlay = None,
    }
}

fn on_input_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
    match keys::lookup(keys::INPUT, &key) {
        Some(Cmd::LeaveInput) => {
            app.mode = Mode::Normal;
            app.focus = Focus::Terminal;
            if let Some(label) = app.attached.as_ref().map(|a| a.label.clone()) {
                notify(
                    app,
                    Notice::info(format!("no longer typing into {label}; i types again")),
                );
            }
            return;
        }
        Some(Cmd::Eof) if app.attached.as_ref().is_some_and(|a| !a.tty) => {
            if let Some(a) = &app.attached {
                fx.push(Effect::Send {
                    session: a.session,
                    input: Input::Eof,
                });
                let label = a.label.clone();
                notify(app, Notice::info(format!("sent EOF to {label}")));
            }
            return;
        }
        _ => {}
    }
    let Some(a) = &app.attached else {
        app.mode = Mode::Normal;
        return;
    };
    let app_cursor = a.term.screen().application_cursor();
    if let Some(bytes) = term::key_bytes(&key, a.tty, app_cursor) {
        fx.push(Effect::Send {
            session: a.session,
            input: Input::Bytes(bytes),
        });
    }
}

pub(super) fn run_cmd(app: &mut App, cmd: Cmd, fx: &mut Vec<Effect>) {
    let page = layout::page(app) as isize;
    match cmd {
        Cmd::Up => move_selection(app, -1),
        Cmd::Down => move_selection(app, 1),
        Cmd::PageUp => move_selection(app, -page),
        Cmd::PageDown => move_selection(app, page),
        Cmd::Top => move_selection(app, isize::MIN / 2),
        Cmd::Bottom => move_selection(app, isize::MAX / 2),
        Cmd::Attach => match app.selected.clone() {
            Some(RowKey::Job(key)) => attach(app, &key, fx),
            Some(RowKey::Batch(b)) => batches::show(app, &b, fx),
            None => notify(app, Notice::error("no job selected")),
        },
        Cmd::Stop => {
            let target = match app.focus {
                Focus::Terminal => app
                    .attached
                    .as_ref()
                    .and_then(|a| app.index.get(&a.job).cloned())
                    .map(RowKey::Job),
                Focus::Jobs => app.selected.clone(),
            };
            match target {
                Some(RowKey::Job(key)) => ask_stop(app, &key),
                Some(RowKey::Batch(b)) => batches::ask_stop(app, &b),
                None => notify(app, Notice::error("no job selected")),
            }
        }
        Cmd::Archive => match app.selected.clone() {
            Some(RowKey::Job(key)) => archive(app, &key, fx),
            Some(RowKey::Batch(_)) => notify(
                app,
                Notice::error("x archives one job: → lists the batch's members"),
            ),
            None => notify(app, Notice::error("no job selected")),
        },
        Cmd::Unfold | Cmd::Fold => {
            let open = cmd == Cmd::Unfold;
            let batch = match app.selected.clone() {
                Some(RowKey::Batch(b)) => Some(b),
                // On a member, ← closes its batch.
                Some(RowKey::Job(k)) if !open => app
                    .jobs
                    .get(&k)
                    .map(|e| e.job.batch.clone())
                    .filter(|b| app.open_batches.contains(b)),
                _ => None,
            };
            if let Some(b) = batch {
                batches::fold(app, &b, Some(open));
            }
        }
        Cmd::Filter => {
            app.mode = Mode::Filter;
            let f = app.filter.clone();
            app.line.set(&f);
        }
        Cmd::CommandLine => {
            app.mode = Mode::Command;
            app.line.clear();
            app.history_pos = None;
            app.completion = None;
        }
        Cmd::Help => app.overlay = Some(Overlay::Help(0)),
        Cmd::Crews => app.overlay = Some(Overlay::Crews),
        Cmd::ShowArchived => super::jobs::toggle_archived(app, fx),
        Cmd::Unarchive => match app.selected.clone() {
            Some(RowKey::Job(k)) if app.jobs.get(&k).is_some_and(|e| e.job.archived) => {
                fx.push(Effect::Unarchive {
                    crew: k.crew,
                    job: k.id.clone(),
                    label: app.label(&k),
                });
            }
            Some(RowKey::Job(k)) if app.jobs.contains_key(&k) => {
                let label = app.label(&k);
                notify(app, Notice::error(format!("{label} is not archived")));
            }
            _ => notify(app, Notice::error("no archived job selected (A shows them)")),
        },
        Cmd::Logs => match app.selected.clone() {
            Some(RowKey::Job(k)) if app.jobs.contains_key(&k) => super::jobs::open_log(app, k, fx),
            Some(RowKey::Batch(_)) => notify(
                app,
                Notice::error("a batch's line: ⏎ gathers its outputs; L reads one job's"),
            ),
            _ => notify(app, Notice::error("no job selected")),
        },
        Cmd::Details => match app.selected.clone() {
            Some(RowKey::Job(k)) if app.jobs.contains_key(&k) => super::jobs::show_detail(app, k, fx),
            Some(RowKey::Batch(b)) => batches::show(app, &b, fx),
            _ => notify(app, Notice::error("no job selected")),
        },
        Cmd::Quit => {
            if let Some(a) = app.attached.take() {
                fx.push(Effect::Detach { session: a.session });
            }
            app.quitting = true;
            fx.push(Effect::Quit);
        }
        Cmd::Detach => detach(app, fx),
        Cmd::Input => enter_input(app),
        Cmd::Focus => {
            app.focus = match app.focus {
                Focus::Jobs if app.attached.is_some() => Focus::Terminal,
                _ => Focus::Jobs,
            };
        }
        Cmd::ScrollUp => scroll(app, 1),
        Cmd::ScrollDown => scroll(app, -1),
        Cmd::ScrollPageUp => scroll(app, page_rows(app)),
        Cmd::ScrollPageDown => scroll(app, -page_rows(app)),
        Cmd::Live => {
            if let Some(a) = &mut app.attached {
                a.term.scroll_to_live();
            }
        }
        Cmd::LeaveInput | Cmd::Eof => {}
    }
}

fn page_rows(app: &App) -> isize {
    (layout::areas(app).screen.height.max(2) - 1) as isize
}

pub(super) fn scroll(app: &mut App, rows: isize) {
    if let Some(a) = &mut app.attached {
        a.term.scroll_by(rows);
    }
}

pub(super) fn on_paste(app: &mut App, text: &str, fx: &mut Vec<Effect>) {
    match app.mode {
        Mode::Input => {
            if let Some(a) = &app.attached {
                let bracketed = a.tty && a.term.screen().bracketed_paste();
                fx.push(Effect::Send {
                    session: a.session,
                    input: Input::Bytes(term::paste_bytes(text, bracketed)),
                });
            }
        }
        Mode::Command | Mode::Filter => {
            // One line, no control characters.
            let clean: String = text.chars().filter(|c| !c.is_control()).collect();
            app.line.insert(&clean);
            if matches!(app.mode, Mode::Filter) {
                app.filter = app.line.text.clone();
                keep_selection_visible(app);
            }
        }
        _ => {}
    }
}
