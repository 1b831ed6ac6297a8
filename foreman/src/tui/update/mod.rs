//! `update(&mut App, Action) -> Vec<Effect>`: every change to the
//! dashboard's state, and nothing else: no I/O, no clock, no terminal.
//!
//! Here: the dispatch, an action to the file that handles it. Then one
//! file per concern: `keys.rs` (keys and pastes), `mouse.rs`,
//! `cmdline.rs` (the `:` and `/` line: editing, history, completion),
//! `commands.rs` (the `:` commands), `jobs.rs` (the job list, selection,
//! stop and archive), `batches.rs` (a batch's line and gathered view), `attach.rs` (the attached job and its stream),
//! `crews.rs` (what the crews tell us).

mod attach;
mod batches;
mod cmdline;
mod commands;
mod crews;
mod jobs;
mod keys;
mod mouse;

use crossterm::event::KeyEventKind;
use tasker_proto::v1 as pb;

use self::attach::{fit_terminal, on_attach};
use self::crews::on_crew;
use self::jobs::{keep_selection_visible, upsert};
use self::keys::{on_key, on_paste};
use self::mouse::on_mouse;
use super::action::{Action, CrewIx, Effect, Notice};
use super::app::{App, Focus, Mode, RowKey};

pub use self::batches::{Line as GatheredLine, lines as gathered_lines};
pub use self::commands::{resolve, split_words};

/// Info notices fade after this long; errors stay until the next key.
const NOTICE_SECS: u64 = 6;

pub fn update(app: &mut App, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    app.quiet = false;
    if changes_the_list(app, &action) {
        app.list_changed();
    }
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
            // Figures sort again (`:sort cpu|mem`) once a second.
            app.unsettled = true;
            if let Some(n) = &app.notice
                && !n.error
                && app
                    .notice_at
                    .is_some_and(|t| app.since(t).as_secs() >= NOTICE_SECS)
            {
                app.notice = None;
            }
            batches::on_tick(app, &mut fx);
        }
        Action::Crew(ix, ev) => on_crew(app, ix, ev, &mut fx),
        Action::CrewFound {
            ix,
            name,
            addr,
            groups,
        } => crews::on_found(app, ix, name, addr, groups),
        Action::CrewGone(ix) => crews::on_gone(app, ix, &mut fx),
        Action::Attach(session, ev) => on_attach(app, session, ev),
        Action::Gathered { batch, outputs } => batches::on_gathered(app, &batch, outputs),
        Action::ArchivedJobs(ix, listed) => jobs::on_archived_jobs(app, ix, listed),
        Action::Log { job, follow, read } => {
            if let Some(v) = app
                .log
                .as_mut()
                .filter(|v| v.job == job && v.follow == follow && v.read.is_none())
            {
                v.on_read(read);
            }
        }
        Action::LogMore { session, more } => match app.log.as_mut() {
            Some(v) if v.follow == Some(session) => v.on_more(more),
            // A follow of a view since closed or read again: let it go.
            _ => fx.push(Effect::Detach { session }),
        },
        Action::Trail { job, trail } => {
            if let Some(t) = app.trail.as_mut().filter(|t| t.job == job) {
                t.lines = Some(trail);
            }
        }
        Action::Done(n) => notify(app, n),
        Action::Started(ix, job) => {
            let label = format!("{}/{}", crew_name(app, ix), job.handle);
            let failed = matches!(
                job.outcome.as_ref().and_then(|o| o.reason.as_ref()),
                Some(pb::outcome::Reason::StartFailed(_))
            );
            let key = upsert(app, ix, *job);
            app.selected = Some(RowKey::Job(key));
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
            } else if let Some(RowKey::Batch(b)) = &app.selected {
                let b = b.clone();
                notify(
                    app,
                    Notice::info(format!(
                        "started {label}, one of batch {b}; ⏎ gathers their outputs"
                    )),
                );
            } else {
                notify(app, Notice::info(format!("started {label}; ⏎ attaches")));
            }
        }
    }
    if !app.batching {
        settle(app);
    }
    // Every change may have moved the terminal pane: keep the job's pty
    // the pane's size.
    fit_terminal(app, &mut fx);
    fx
}

/// Whether an action may change the list's lines or counts: anything but
/// a job's output, usage figures (unless the list is sorted by them: then
/// once a second, at the tick), the tick, and answers that only say
/// something.
fn changes_the_list(app: &App, action: &Action) -> bool {
    use super::app::SortBy;
    let by_figures = matches!(app.order.by, SortBy::Cpu | SortBy::Mem);
    match action {
        Action::Attach(..)
        | Action::Resize(..)
        | Action::Done(_)
        | Action::Gathered { .. }
        | Action::Trail { .. } => false,
        Action::Crew(_, super::action::CrewEvent::Usage(_)) | Action::Tick(_) => by_figures,
        _ => true,
    }
}

/// Keeps a line selected and on screen after jobs came, went or changed:
/// after each action, or once for a burst of them (the loop's
/// `App::batching`), so that a busy fleet's events cost the list once a
/// frame rather than once each.
pub fn settle(app: &mut App) {
    if std::mem::take(&mut app.unsettled) {
        keep_selection_visible(app);
    }
}

fn notify(app: &mut App, n: Notice) {
    app.notice = Some(n);
    app.notice_at = Some(app.now);
}

fn crew_name(app: &App, ix: CrewIx) -> &str {
    app.crews.get(ix).map_or("?", |c| c.name.as_str())
}
