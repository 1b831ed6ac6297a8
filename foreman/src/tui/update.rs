//! `update(&mut App, Action) -> Vec<Effect>`: every change to the
//! dashboard's state, and nothing else: no I/O, no clock, no terminal.

use clap::Parser as _;
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use tasker_proto::v1 as pb;

use super::action::{Action, AttachEvent, CrewEvent, CrewIx, Effect, Input, Notice};
use super::app::{App, Attachment, Completion, Focus, JobEntry, JobKey, Link, Mode, Overlay, Pending};
use super::keys::{self, Cmd, Completes};
use super::layout;
use super::term::{self, Emulator};
use crate::sanitize::Sanitizer;

/// Info notices fade after this long; errors stay until the next key.
const NOTICE_SECS: u64 = 6;

pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    match action {
        Action::Key(key) => {
            // Key releases and repeats of the kitty protocol are not keys.
            if key.kind == KeyEventKind::Press {
                on_key(app, key, &mut fx);
            }
        }
        Action::Mouse(m) => on_mouse(app, m, &mut fx),
        Action::Paste(text) => on_paste(app, &text, &mut fx),
        Action::Resize(cols, rows) => {
            app.size = (cols, rows);
            keep_selection_visible(app);
        }
        Action::Tick(now) => {
            app.now = now;
            if let Some(n) = &app.notice
                && !n.error
                && app
                    .notice_at
                    .is_some_and(|t| app.since(t).as_secs() >= NOTICE_SECS)
            {
                app.notice = None;
            }
        }
        Action::Crew(ix, ev) => on_crew(app, ix, ev),
        Action::Attach(session, ev) => on_attach(app, session, ev),
        Action::Done(n) => notify(app, n),
        Action::Started(ix, job) => {
            let label = format!("{}/{}", crew_name(app, ix), job.handle);
            let failed = matches!(
                job.outcome.as_ref().and_then(|o| o.reason.as_ref()),
                Some(pb::outcome::Reason::StartFailed(_))
            );
            let key = upsert(app, ix, *job);
            app.selected = Some(key);
            // The new job is selected in the list: ⏎ attaches it.
            if app.mode == Mode::Normal {
                app.focus = Focus::Jobs;
            }
            keep_selection_visible(app);

            if failed {
                notify(
                    app,
                    Notice::error(format!("{label} did not start (see its state)")),
                );
            } else {
                notify(app, Notice::info(format!("started {label}; ⏎ attaches")));
            }
        }
    }
    // Every change may have moved the terminal pane: keep the job's pty
    // the pane's size.
    fit_terminal(app, &mut fx);
    fx
}

fn notify(app: &mut App, n: Notice) {
    app.notice = Some(n);
    app.notice_at = Some(app.now);
}

fn crew_name(app: &App, ix: CrewIx) -> &str {
    app.crews.get(ix).map_or("?", |c| c.name.as_str())
}

// ------------------------------------------------------------------ keys

fn on_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>) {
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
            if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                fx.push(Effect::Stop {
                    crew: p.crew,
                    job: p.job,
                    label: p.label.clone(),
                });
                notify(app, Notice::info(format!("stopping {}…", p.label)));
            } else {
                notify(app, Notice::info(format!("{} left running", p.label)));
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
    match (app.overlay, key.code) {
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

fn on_line_key(app: &mut App, key: KeyEvent, fx: &mut Vec<Effect>, command: bool) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if key.code != KeyCode::Tab {
        app.completion = None;
    }
    match key.code {
        KeyCode::Esc => {
            app.mode = Mode::Normal;
            if !command {
                app.filter.clear();
                keep_selection_visible(app);
            }
            app.line.clear();
            return;
        }
        KeyCode::Char('c') if ctrl => {
            app.mode = Mode::Normal;
            app.line.clear();
            return;
        }
        KeyCode::Enter => {
            app.mode = Mode::Normal;
            let text = std::mem::take(&mut app.line.text);
            app.line.clear();
            if command {
                remember(app, &text);
                run_line(app, text.trim(), fx);
            } else {
                app.filter = text;
                keep_selection_visible(app);
            }
            return;
        }
        KeyCode::Tab if command => complete(app),
        KeyCode::Up if command => history(app, -1),
        KeyCode::Down if command => history(app, 1),
        KeyCode::Backspace if app.line.text.is_empty() => {
            app.mode = Mode::Normal;
            if !command {
                app.filter.clear();
                keep_selection_visible(app);
            }
        }
        KeyCode::Backspace => app.line.backspace(),
        KeyCode::Delete => app.line.delete(),
        KeyCode::Left => app.line.left(),
        KeyCode::Right => app.line.right(),
        KeyCode::Home => app.line.home(),
        KeyCode::End => app.line.end(),
        KeyCode::Char('a') if ctrl => app.line.home(),
        KeyCode::Char('e') if ctrl => app.line.end(),
        KeyCode::Char('u') if ctrl => app.line.clear(),
        KeyCode::Char('w') if ctrl => app.line.delete_word(),
        KeyCode::Char(c) if !ctrl => app.line.insert(c.encode_utf8(&mut [0; 4])),
        _ => {}
    }
    if !command {
        app.filter = app.line.text.clone();
        keep_selection_visible(app);
    }
}

fn remember(app: &mut App, line: &str) {
    let line = line.trim();
    if !line.is_empty() && app.history.last().map(String::as_str) != Some(line) {
        app.history.push(line.to_owned());
        if app.history.len() > 500 {
            app.history.remove(0);
        }
    }
    app.history_pos = None;
}

fn history(app: &mut App, step: isize) {
    if app.history.is_empty() {
        return;
    }
    let last = app.history.len() - 1;
    let pos = match (app.history_pos, step < 0) {
        (None, true) => Some(last),
        (None, false) => None,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p < last => Some(p + 1),
        (Some(_), false) => None,
    };
    app.history_pos = pos;
    let text = pos.map_or_else(String::new, |p| app.history[p].clone());
    app.line.set(&text);
}

fn run_cmd(app: &mut App, cmd: Cmd, fx: &mut Vec<Effect>) {
    let page = layout::page(app) as isize;
    match cmd {
        Cmd::Up => move_selection(app, -1),
        Cmd::Down => move_selection(app, 1),
        Cmd::PageUp => move_selection(app, -page),
        Cmd::PageDown => move_selection(app, page),
        Cmd::Top => move_selection(app, isize::MIN / 2),
        Cmd::Bottom => move_selection(app, isize::MAX / 2),
        Cmd::Attach => match app.selected.clone() {
            Some(key) => attach(app, &key, fx),
            None => notify(app, Notice::error("no job selected")),
        },
        Cmd::Stop => {
            let target = match app.focus {
                Focus::Terminal => app.attached.as_ref().and_then(|a| app.index.get(&a.job).cloned()),
                Focus::Jobs => app.selected.clone(),
            };
            match target {
                Some(key) => ask_stop(app, &key),
                None => notify(app, Notice::error("no job selected")),
            }
        }
        Cmd::Archive => match app.selected.clone() {
            Some(key) => archive(app, &key, fx),
            None => notify(app, Notice::error("no job selected")),
        },
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

fn scroll(app: &mut App, rows: isize) {
    if let Some(a) = &mut app.attached {
        a.term.scroll_by(rows);
    }
}

// ------------------------------------------------------------ selection

fn move_selection(app: &mut App, delta: isize) {
    let visible: Vec<JobKey> = app.visible().into_iter().map(|(k, _)| k.clone()).collect();
    if visible.is_empty() {
        app.selected = None;
        return;
    }
    let at = app
        .selected
        .as_ref()
        .and_then(|s| visible.iter().position(|k| k == s));
    let to = match at {
        Some(i) => i.saturating_add_signed(delta).min(visible.len() - 1),
        None if delta < 0 => visible.len() - 1,
        None => 0,
    };
    app.selected = Some(visible[to].clone());
    keep_selection_visible(app);
}

/// Keeps a visible job selected (the nearest, if the selected one went)
/// and on screen.
fn keep_selection_visible(app: &mut App) {
    let visible: Vec<JobKey> = app.visible().into_iter().map(|(k, _)| k.clone()).collect();
    let page = layout::page(app);
    if visible.is_empty() {
        app.selected = None;
        app.offset = 0;
        return;
    }
    let at = match &app.selected {
        Some(s) => match visible.binary_search(s) {
            Ok(i) => i,
            Err(i) => i.min(visible.len() - 1),
        },
        None => 0,
    };
    app.selected = Some(visible[at].clone());
    if at < app.offset {
        app.offset = at;
    } else if at >= app.offset + page {
        app.offset = at + 1 - page;
    }
    app.offset = app.offset.min(visible.len().saturating_sub(page));
}

// ---------------------------------------------------------------- mouse

fn on_mouse(app: &mut App, m: MouseEvent, fx: &mut Vec<Effect>) {
    let areas = layout::areas(app);
    if areas.too_small {
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
    let Some(key) = app.visible().get(i).map(|(k, _)| (*k).clone()) else {
        return;
    };
    leave_input(app);
    app.focus = Focus::Jobs;
    app.selected = Some(key.clone());
    let line = ratatui::layout::Rect::new(areas.job_rows.x, row, areas.job_rows.width, 1);
    let (stop, attach_btn) = layout::buttons(line);
    if layout::contains(stop, col, row) {
        ask_stop(app, &key);
    } else if layout::contains(attach_btn, col, row) {
        attach(app, &key, fx);
    }
}

fn on_paste(app: &mut App, text: &str, fx: &mut Vec<Effect>) {
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

// ------------------------------------------------------------- job verbs

/// Whether we may type into a job: its owner, or an admin (a guess the
/// crew confirms when the attach opens).
fn may_write(app: &App, key: &JobKey) -> bool {
    let Some((me, role)) = app.crews.get(key.crew).and_then(|c| c.me.as_ref()) else {
        return false;
    };
    let Some(e) = app.jobs.get(key) else { return false };
    role == "admin" || (role == "user" && e.job.owner == *me)
}

fn is_running(e: &JobEntry) -> bool {
    e.job.outcome.is_none()
}

fn attach(app: &mut App, key: &JobKey, fx: &mut Vec<Effect>) {
    let Some(entry) = app.jobs.get(key) else { return };
    let tty = entry.job.tty.as_ref().map(|t| (t.rows as u16, t.cols as u16));
    let running = is_running(entry);
    if app
        .attached
        .as_ref()
        .is_some_and(|a| a.job == key.id && a.lost.is_none())
    {
        app.focus = Focus::Terminal;
        enter_input(app);
        return;
    }
    detach_quietly(app, fx);
    let label = app.label(key);
    let session = app.next_session;
    app.next_session += 1;
    let screen = layout_with_attachment(app).screen;
    let (rows, cols) = tty.unwrap_or((screen.height, screen.width));
    let write = running && may_write(app, key);
    app.attached = Some(Attachment {
        session,
        crew: key.crew,
        job: key.id.clone(),
        label: label.clone(),
        tty: tty.is_some(),
        writable: None,
        term: Emulator::new(rows, cols, tty.is_none()),
        ended: None,
        lost: None,
        dropped: 0,
        sent_size: None,
    });
    fx.push(Effect::Attach {
        session,
        crew: key.crew,
        job: key.id.clone(),
        write,
    });
    app.focus = Focus::Terminal;
    if write {
        app.mode = Mode::Input;
        notify(
            app,
            Notice::info(format!(
                "attached to {label}: typing goes to it; {} stops typing",
                keys::LEAVE_INPUT_LABEL
            )),
        );
    } else {
        app.mode = Mode::Normal;
        let why = if running { "read-only" } else { "ended" };
        notify(app, Notice::info(format!("attached to {label} ({why})")));
    }
}

/// The areas as they will be once something is attached.
fn layout_with_attachment(app: &App) -> layout::Areas {
    let mut a = layout::areas(app);
    if a.screen.height == 0 && !a.too_small {
        // Not attached yet: the same layout with a pane.
        let (cols, rows) = app.size;
        let body_h = rows - 3;
        let jobs_h = (body_h * 2 / 5).max(5).min(body_h - 4);
        a.screen = ratatui::layout::Rect::new(1, 1 + jobs_h + 1, cols - 2, body_h - jobs_h - 2);
    }
    if a.too_small {
        a.screen = ratatui::layout::Rect::new(0, 0, 80, 24);
    }
    a
}

fn enter_input(app: &mut App) {
    let Some(a) = &app.attached else {
        notify(app, Notice::error("not attached: select a job and press ⏎"));
        return;
    };
    if a.ended.is_some() {
        let msg = format!("{} has ended", a.label);
        notify(app, Notice::error(msg));
    } else if a.writable == Some(false) {
        let msg = format!("{} is read-only to you", a.label);
        notify(app, Notice::error(msg));
    } else if a.lost.is_some() {
        let msg = format!("the attach to {} was lost: ⏎ on the job re-attaches", a.label);
        notify(app, Notice::error(msg));
    } else if !app.index.get(&a.job).is_some_and(|k| may_write(app, k)) && a.writable != Some(true) {
        let msg = format!("{} is read-only to you", a.label);
        notify(app, Notice::error(msg));
    } else {
        app.mode = Mode::Input;
        app.focus = Focus::Terminal;
    }
}

fn leave_input(app: &mut App) {
    if matches!(app.mode, Mode::Input) {
        app.mode = Mode::Normal;
    }
}

fn detach(app: &mut App, fx: &mut Vec<Effect>) {
    match app.attached.as_ref().map(|a| a.label.clone()) {
        Some(label) => {
            detach_quietly(app, fx);
            notify(app, Notice::info(format!("detached from {label}; it goes on")));
        }
        None => notify(app, Notice::error("not attached")),
    }
}

fn detach_quietly(app: &mut App, fx: &mut Vec<Effect>) {
    if let Some(a) = app.attached.take() {
        fx.push(Effect::Detach { session: a.session });
    }
    leave_input(app);
    app.focus = Focus::Jobs;
}

fn ask_stop(app: &mut App, key: &JobKey) {
    let Some(e) = app.jobs.get(key) else { return };
    let label = app.label(key);
    if !is_running(e) {
        notify(app, Notice::error(format!("{label} has already ended")));
        return;
    }
    let what = super::view::jobs::command(&e.job);
    app.mode = Mode::Confirm(Pending {
        crew: key.crew,
        job: key.id.clone(),
        label: label.clone(),
    });
    app.notice = Some(Notice::info(format!("stop {label} ({what})? y/n")));
    app.notice_at = Some(app.now);
}

fn archive(app: &mut App, key: &JobKey, fx: &mut Vec<Effect>) {
    let Some(e) = app.jobs.get(key) else { return };
    let label = app.label(key);
    if is_running(e) {
        notify(app, Notice::error(format!("{label} is running: stop it first")));
        return;
    }
    fx.push(Effect::Archive {
        crew: key.crew,
        job: key.id.clone(),
        label,
    });
}

// -------------------------------------------------------- the : commands

fn run_line(app: &mut App, line: &str, fx: &mut Vec<Effect>) {
    let line = line.strip_prefix(':').unwrap_or(line);
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => return notify(app, Notice::error(e)),
    };
    let Some((name, args)) = words.split_first() else {
        return;
    };
    let matches: Vec<&keys::Command> = keys::COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(name.as_str()))
        .collect();
    let cmd = match matches.as_slice() {
        [one] => one.name,
        _ if keys::COMMANDS.iter().any(|c| c.name == name) => name.as_str(),
        [] => {
            return notify(
                app,
                Notice::error(format!("no command :{name}; :help lists them")),
            );
        }
        many => {
            let names: Vec<&str> = many.iter().map(|c| c.name).collect();
            return notify(
                app,
                Notice::error(format!(":{name} could be {}", names.join(", "))),
            );
        }
    };
    let one_job = |app: &mut App| -> Option<JobKey> {
        match args {
            [r] => match resolve(app, r) {
                Ok(k) => Some(k),
                Err(e) => {
                    notify(app, Notice::error(e));
                    None
                }
            },
            _ => {
                notify(app, Notice::error(format!(":{cmd} takes one JOB")));
                None
            }
        }
    };
    match cmd {
        "attach" => {
            if let Some(k) = one_job(app) {
                app.selected = Some(k.clone());
                keep_selection_visible(app);
                attach(app, &k, fx);
            }
        }
        "stop" => {
            if let Some(k) = one_job(app) {
                // Typed out in full: no question.
                let Some(e) = app.jobs.get(&k) else { return };
                let label = app.label(&k);
                if is_running(e) {
                    fx.push(Effect::Stop {
                        crew: k.crew,
                        job: k.id.clone(),
                        label: label.clone(),
                    });
                    notify(app, Notice::info(format!("stopping {label}…")));
                } else {
                    notify(app, Notice::error(format!("{label} has already ended")));
                }
            }
        }
        "archive" => {
            if let Some(k) = one_job(app) {
                archive(app, &k, fx);
            }
        }
        "detach" => detach(app, fx),
        "crews" => app.overlay = Some(Overlay::Crews),
        "help" => app.overlay = Some(Overlay::Help(0)),
        "quit" => run_cmd(app, Cmd::Quit, fx),
        "start" => start(app, args, fx),
        _ => {}
    }
}

/// `:start [CREW] [options] -- CMD ARGS`: `foreman start`'s options.
#[derive(Debug, clap::Parser)]
#[command(name = ":start", no_binary_name = true, disable_help_flag = true)]
struct StartLine {
    /// The crew (needed when there are several).
    crew_name: Option<String>,
    #[command(flatten)]
    job: crate::cli::args::JobArgs,
}

fn start(app: &mut App, args: &[String], fx: &mut Vec<Effect>) {
    let parsed = match StartLine::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            // clap's first line, without its "error: " and usage block.
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad :start")
                .trim_start_matches("error: ")
                .to_owned();
            return notify(app, Notice::error(format!(":start: {first}")));
        }
    };
    let named = parsed.crew_name.as_deref().or(parsed.job.crew.as_deref());
    let crew = match named {
        Some(n) => match app.crews.iter().position(|c| c.name == n) {
            Some(ix) => ix,
            None => return notify(app, Notice::error(format!("no crew {n:?}"))),
        },
        None if app.crews.len() == 1 => 0,
        None => {
            let names: Vec<&str> = app.crews.iter().map(|c| c.name.as_str()).collect();
            return notify(
                app,
                Notice::error(format!(":start needs a crew: one of {}", names.join(", "))),
            );
        }
    };
    let mut spec = crate::cli::commands::start::job_spec(&parsed.job);
    if spec.tty.is_some() {
        // The job's pty starts at the pane's size.
        let screen = layout_with_attachment(app).screen;
        spec.tty = Some(pb::TtySize {
            rows: u32::from(screen.height.max(1)),
            cols: u32::from(screen.width.max(1)),
        });
    }
    let label = format!(
        "{} on {}",
        crate::cli::output::command_line(&spec.argv),
        app.crews[crew].name
    );
    fx.push(Effect::Start { crew, spec });
    notify(app, Notice::info(format!("starting {label}…")));
}

/// A job reference as the CLI takes it: `[crew/]handle|name|id-prefix`,
/// against the jobs this dashboard knows.
pub fn resolve(app: &App, reference: &str) -> Result<JobKey, String> {
    let (crew, r) = match reference.split_once('/') {
        Some((c, r)) => match app.crews.iter().position(|x| x.name == c) {
            Some(ix) => (Some(ix), r),
            None => return Err(format!("no crew {c:?}")),
        },
        None => (None, reference),
    };
    let hits: Vec<&JobKey> = app
        .jobs
        .iter()
        .filter(|(k, _)| crew.is_none_or(|c| k.crew == c))
        .filter(|(k, e)| {
            e.job.handle == r
                || (!e.job.name.is_empty() && e.job.name == r)
                || (r.len() >= 4 && k.id.starts_with(r))
        })
        .map(|(k, _)| k)
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no job {reference:?}")),
        many => {
            let labels: Vec<String> = many.iter().map(|k| app.label(k)).collect();
            Err(format!("{reference:?} could be {}", labels.join(", ")))
        }
    }
}

/// Shell-like words: spaces split, '…' and "…" quote, \ escapes.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unclosed '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("unclosed \"".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unclosed \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Tab: completes the word at the end of the line: a command name first,
/// then what that command takes (job references or crew names). Repeated
/// Tabs cycle through the choices.
fn complete(app: &mut App) {
    if let Some(c) = &mut app.completion {
        if !c.choices.is_empty() {
            let choice = c.choices[c.next % c.choices.len()].clone();
            c.next += 1;
            let text = format!("{}{choice} ", c.prefix);
            app.line.set(&text);
        }
        return;
    }
    let text = app.line.text.clone();
    let (prefix, word) = match text.rfind(' ') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text.as_str()),
    };
    let words_before = prefix.split_whitespace().count();
    let choices: Vec<String> = if words_before == 0 {
        keys::COMMANDS
            .iter()
            .map(|c| c.name.to_owned())
            .filter(|n| n.starts_with(word))
            .collect()
    } else {
        let first = prefix.split_whitespace().next().unwrap_or("");
        let completes = keys::COMMANDS
            .iter()
            .find(|c| c.name == first)
            .map_or(Completes::Nothing, |c| c.completes);
        match (completes, words_before) {
            (Completes::Job, 1) => job_choices(app, word),
            (Completes::Crew, 1) => app
                .crews
                .iter()
                .map(|c| c.name.clone())
                .filter(|n| n.starts_with(word))
                .collect(),
            _ => Vec::new(),
        }
    };
    match choices.as_slice() {
        [] => notify(app, Notice::error(format!("nothing completes {word:?}"))),
        [one] => {
            let line = format!("{prefix}{one} ");
            app.line.set(&line);
        }
        many => {
            let common = common_prefix(many);
            let shown = many.iter().take(8).cloned().collect::<Vec<_>>().join("  ");
            let more = if many.len() > 8 {
                format!("  (+{})", many.len() - 8)
            } else {
                String::new()
            };
            notify(app, Notice::info(format!("{shown}{more}")));
            if common.len() > word.len() {
                let line = format!("{prefix}{common}");
                app.line.set(&line);
            } else {
                app.completion = Some(Completion {
                    prefix: prefix.to_owned(),
                    choices: many.to_vec(),
                    next: 0,
                });
            }
        }
    }
}

/// `crew/handle` of every listed job that the word could begin.
fn job_choices(app: &App, word: &str) -> Vec<String> {
    app.visible()
        .into_iter()
        .filter_map(|(k, e)| {
            let full = format!("{}/{}", crew_name(app, k.crew), e.job.handle);
            let name = (!e.job.name.is_empty()).then(|| format!("{}/{}", crew_name(app, k.crew), e.job.name));
            let hit = full.starts_with(word)
                || e.job.handle.starts_with(word)
                || name.as_ref().is_some_and(|n| n.starts_with(word))
                || (!e.job.name.is_empty() && e.job.name.starts_with(word));
            hit.then_some(full)
        })
        .collect()
}

fn common_prefix(words: &[String]) -> String {
    let first = &words[0];
    let mut len = first.len();
    for w in &words[1..] {
        len = first
            .char_indices()
            .zip(w.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, c), _)| i + c.len_utf8())
            .min(len);
    }
    first[..len].to_owned()
}

// ---------------------------------------------------------------- crews

fn on_crew(app: &mut App, ix: CrewIx, ev: CrewEvent) {
    let now = app.now;
    let Some(crew) = app.crews.get_mut(ix) else { return };
    match ev {
        CrewEvent::Up { identity, role } => {
            crew.link = Link::Connected { since: now };
            crew.me = Some((Sanitizer::clean(&identity), Sanitizer::clean(&role)));
        }
        CrewEvent::Down {
            why,
            refused,
            retry_in,
        } => {
            let since = match &crew.link {
                Link::Reconnecting { since, .. } | Link::Refused { since, .. } => *since,
                _ => now,
            };
            let why = Sanitizer::clean(&why);
            let retry_at = now + retry_in;
            crew.link = if refused {
                Link::Refused { since, why, retry_at }
            } else {
                Link::Reconnecting { since, why, retry_at }
            };
        }
        CrewEvent::Snapshot(jobs) => {
            let stale: Vec<JobKey> = app.jobs.keys().filter(|k| k.crew == ix).cloned().collect();
            for k in stale {
                app.index.remove(&k.id);
                app.jobs.remove(&k);
            }
            for j in jobs {
                upsert(app, ix, j);
            }
            keep_selection_visible(app);
        }
        CrewEvent::Job(job) => {
            upsert(app, ix, *job);
            keep_selection_visible(app);
        }
        CrewEvent::Archived(job) => {
            if let Some(k) = app.index.remove(&job.id) {
                app.jobs.remove(&k);
            }
            keep_selection_visible(app);
        }
        CrewEvent::Usage(list) => {
            for u in list {
                if let Some(k) = app.index.get(&u.job_id)
                    && let Some(e) = app.jobs.get_mut(k)
                {
                    e.usage = Some(u);
                }
            }
        }
    }
}

fn upsert(app: &mut App, ix: CrewIx, job: pb::Job) -> JobKey {
    let key = JobKey::of(ix, &job);
    if let Some(old) = app.index.get(&job.id)
        && *old != key
    {
        let old = old.clone();
        app.jobs.remove(&old);
    }
    app.index.insert(job.id.clone(), key.clone());
    match app.jobs.get_mut(&key) {
        // A job only moves forward (starting, running, ended): an older
        // picture (StartJob's answer, arriving after the watch already
        // told of the end) must not bring an ended job back to life.
        Some(e) if progress(&job) < progress(&e.job) => {}
        Some(e) => {
            if job.outcome.is_some() {
                e.usage = None;
            }
            e.job = job;
        }

        None => {
            app.jobs.insert(key.clone(), JobEntry { job, usage: None });
        }
    }
    key
}

// --------------------------------------------------------------- attach

fn on_attach(app: &mut App, session: u64, ev: AttachEvent) {
    let Some(a) = app.attached.as_mut().filter(|a| a.session == session) else {
        return;
    };
    match ev {
        AttachEvent::Opened { writable } => {
            a.writable = Some(writable);
            if !writable && matches!(app.mode, Mode::Input) {
                app.mode = Mode::Normal;
                let label = a.label.clone();
                notify(app, Notice::info(format!("{label} is read-only to you")));
            }
        }
        AttachEvent::Output(bytes) => a.term.process(&bytes),
        AttachEvent::Dropped(n) => {
            a.dropped += n;
            if !a.tty {
                a.term
                    .process(format!("\r\n[… {n} bytes no longer kept by the crew …]\r\n").as_bytes());
            }
        }
        AttachEvent::Ended(job) => {
            let end = job
                .outcome
                .as_ref()
                .map_or_else(|| "ended".to_owned(), |o| Sanitizer::clean(&o.summary));
            a.ended = Some(end.clone());
            let label = a.label.clone();
            let ix = a.crew;
            leave_input(app);
            upsert(app, ix, *job);

            notify(app, Notice::info(format!("{label} ended: {end}")));
        }
        AttachEvent::Closed(err) => {
            if let Some(e) = err {
                let label = a.label.clone();
                a.lost = Some(Sanitizer::clean(&e));
                leave_input(app);
                notify(
                    app,
                    Notice::error(format!(
                        "lost {label}: {}; ⏎ on it re-attaches",
                        Sanitizer::clean(&e)
                    )),
                );
            } else if a.ended.is_none() {
                a.lost = Some("the crew closed the stream".into());
                leave_input(app);
            }
        }
    }
}

/// Sizes the emulator to the pane, and the job's pty with it when we may.
fn fit_terminal(app: &mut App, fx: &mut Vec<Effect>) {
    let screen = layout::areas(app).screen;
    let Some(a) = &mut app.attached else { return };
    if screen.width == 0 || screen.height == 0 {
        return;
    }
    let size = (screen.height, screen.width);
    if !a.tty {
        a.term.resize(size.0, size.1);
        return;
    }
    // A tty job we may not resize keeps its own size; the pane shows its
    // top-left part.
    if a.writable != Some(true) || a.ended.is_some() || a.lost.is_some() {
        return;
    }
    a.term.resize(size.0, size.1);
    if a.sent_size != Some(size) {
        a.sent_size = Some(size);
        fx.push(Effect::Send {
            session: a.session,
            input: Input::Resize(size.0, size.1),
        });
    }
}

/// How far along a job is: starting, running, ended.
fn progress(j: &pb::Job) -> u8 {
    if j.outcome.is_some() {
        2
    } else if j.phase == pb::JobPhase::Running as i32 {
        1
    } else {
        0
    }
}
