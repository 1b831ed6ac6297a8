//! The attached job: attaching and detaching, typing into it (input
//! mode), what its attach stream says, and its terminal kept the pane's
//! size.

use super::jobs::{ask, is_running, may_write, others_owner, upsert, whose};
use super::notify;
use crate::sanitize::Sanitizer;
use crate::tui::action::{AttachEvent, Effect, Input, Notice};
use crate::tui::app::{App, Asked, Attachment, Focus, JobKey, Mode};
use crate::tui::keys;
use crate::tui::layout;
use crate::tui::term::Emulator;

pub(super) fn attach(app: &mut App, key: &JobKey, fx: &mut Vec<Effect>) {
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
        consented: others_owner(app, key).is_none(),
    });
    fx.push(Effect::Attach {
        session,
        crew: key.crew,
        job: key.id.clone(),
        write,
    });
    app.focus = Focus::Terminal;
    if write && others_owner(app, key).is_some() {
        // Another user's job: say whose before a key reaches it.
        app.mode = Mode::Normal;
        let question = format!("type into {}? y/n (n: watch only)", whose(app, key));
        ask(app, key, Asked::Type, question);
    } else if write {
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
pub(super) fn layout_with_attachment(app: &App) -> layout::Areas {
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

pub(super) fn enter_input(app: &mut App) {
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
    } else if !a.consented {
        let job = a.job.clone();
        if let Some(key) = app.index.get(&job).cloned() {
            let question = format!("type into {}? y/n (n: watch only)", whose(app, &key));
            ask(app, &key, Asked::Type, question);
        }
    } else {
        app.mode = Mode::Input;
        app.focus = Focus::Terminal;
    }
}

pub(super) fn leave_input(app: &mut App) {
    if matches!(app.mode, Mode::Input) {
        app.mode = Mode::Normal;
    }
}

pub(super) fn detach(app: &mut App, fx: &mut Vec<Effect>) {
    match app.attached.as_ref().map(|a| a.label.clone()) {
        Some(label) => {
            detach_quietly(app, fx);
            notify(app, Notice::info(format!("detached from {label}; it goes on")));
        }
        None => notify(app, Notice::error("not attached")),
    }
}

pub(super) fn detach_quietly(app: &mut App, fx: &mut Vec<Effect>) {
    if let Some(a) = app.attached.take() {
        fx.push(Effect::Detach { session: a.session });
    }
    leave_input(app);
    app.focus = Focus::Jobs;
}

pub(super) fn on_attach(app: &mut App, session: u64, ev: AttachEvent) {
    let Some(a) = app.attached.as_mut().filter(|a| a.session == session) else {
        return;
    };
    match ev {
        AttachEvent::Opened { writable } => {
            a.writable = Some(writable);
            let label = a.label.clone();
            // Opened again after the stream broke: from the next byte.
            let resumed = a.lost.take().is_some();
            if !writable && matches!(app.mode, Mode::Input) {
                app.mode = Mode::Normal;
                notify(app, Notice::info(format!("{label} is read-only to you")));
            } else if resumed {
                notify(
                    app,
                    Notice::info(format!("{label}: attached again, nothing missed")),
                );
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
        AttachEvent::Interrupted(why) => {
            let why = Sanitizer::clean(&why);
            let label = a.label.clone();
            lose(
                app,
                format!("{why}; reconnecting"),
                format!("lost {label}: {why}; attaching again when its crew is back"),
            );
        }
        AttachEvent::Closed(err) => {
            if let Some(e) = err {
                let why = Sanitizer::clean(&e);
                let label = a.label.clone();
                lose(
                    app,
                    why.clone(),
                    format!("lost {label}: {why}; ⏎ on it re-attaches"),
                );
            } else if a.ended.is_none() {
                a.lost = Some("the crew closed the stream".into());
                leave_input(app);
            }
        }
    }
}

/// The attach stream failed: the pane says why (`lost`), typing stops, and
/// a notice says what happens next.
fn lose(app: &mut App, lost: String, notice: String) {
    if let Some(a) = app.attached.as_mut() {
        a.lost = Some(lost);
    }
    leave_input(app);
    notify(app, Notice::error(notice));
}

/// Sizes the emulator to the pane, and the job's pty with it when we may.
pub(super) fn fit_terminal(app: &mut App, fx: &mut Vec<Effect>) {
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
