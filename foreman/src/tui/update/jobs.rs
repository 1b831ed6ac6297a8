//! The job list: a job's news merged in, which job is selected (and kept
//! on screen), and the verbs on a job that do not attach: stop and
//! archive.

use tasker_proto::v1 as pb;

use super::notify;
use crate::tui::action::{CrewIx, Effect, Notice};
use crate::tui::app::{App, Asked, JobEntry, JobKey, Mode, Pending, RowKey};
use crate::tui::layout;

pub(super) fn upsert(app: &mut App, ix: CrewIx, job: pb::Job) -> JobKey {
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

pub(super) fn move_selection(app: &mut App, delta: isize) {
    let list = app.list();
    let rows = &list.rows;
    if rows.is_empty() {
        app.selected = None;
        return;
    }
    let at = app
        .selected
        .as_ref()
        .and_then(|s| rows.iter().position(|k| k == s));
    let to = match at {
        Some(i) => i.saturating_add_signed(delta).min(rows.len() - 1),
        None if delta < 0 => rows.len() - 1,
        None => 0,
    };
    app.selected = Some(rows[to].clone());
    keep_selection_visible(app);
}

/// Keeps a line selected (the nearest, if the selected one went; a job's
/// batch line, if its batch is closed) and on screen.
pub(super) fn keep_selection_visible(app: &mut App) {
    let page = layout::page(app);
    let list = app.list();
    let rows = &list.rows;
    if rows.is_empty() {
        app.selected = None;
        app.offset = 0;
        return;
    }
    let at = match &app.selected {
        Some(s) => match rows.iter().position(|r| r == s) {
            Some(i) => Some(i),
            // A member of a closed batch: the batch's line.
            None => s.job().and_then(|k| app.jobs.get(k)).and_then(|e| {
                let line = RowKey::Batch(e.job.batch.clone());
                rows.iter().position(|r| *r == line)
            }),
        },
        None => Some(0),
    };
    let at = at.unwrap_or_else(|| match app.selected.as_ref().and_then(RowKey::job) {
        // Gone: in the list's own order its neighbour (the first line
        // after it); in another order, where the view was.
        Some(gone) if app.order == crate::tui::app::Order::default() => rows
            .iter()
            .position(|r| first_job(&list, r).is_some_and(|k| k > gone))
            .unwrap_or(rows.len() - 1),
        _ => app.offset.min(rows.len() - 1),
    });
    app.selected = Some(rows[at].clone());
    if at < app.offset {
        app.offset = at;
    } else if at >= app.offset + page {
        app.offset = at + 1 - page;
    }
    app.offset = app.offset.min(rows.len().saturating_sub(page));
}

/// The job a line stands for first: its own, or its batch's first member.
fn first_job<'a>(list: &'a crate::tui::app::ListCache, row: &'a RowKey) -> Option<&'a JobKey> {
    match row {
        RowKey::Job(k) => Some(k),
        RowKey::Batch(b) => list.members.get(b).and_then(|m| m.iter().min()),
    }
}

/// Whether we may type into a job: its owner, or an admin (a guess the
/// crew confirms when the attach opens).
pub(super) fn may_write(app: &App, key: &JobKey) -> bool {
    let Some((me, role)) = app.crews.get(key.crew).and_then(|c| c.me.as_ref()) else {
        return false;
    };
    let Some(e) = app.jobs.get(key) else { return false };
    role == "admin" || (role == "user" && e.job.owner == *me)
}

pub(super) fn is_running(e: &JobEntry) -> bool {
    e.job.outcome.is_none()
}

/// The owner of a job that is not the caller's own (or when who the
/// caller is on that crew is not known yet).
pub(super) fn others_owner(app: &App, key: &JobKey) -> Option<String> {
    let e = app.jobs.get(key)?;
    let me = app
        .crews
        .get(key.crew)
        .and_then(|c| c.me.as_ref())
        .map(|(name, _)| name);
    (me != Some(&e.job.owner)).then(|| e.job.owner.clone())
}

/// "alice's job web/job-7" for another user's job, "web/job-7" for one's own.
pub(super) fn whose(app: &App, key: &JobKey) -> String {
    let label = app.label(key);
    match others_owner(app, key) {
        Some(owner) => format!("{owner}'s job {label}"),
        None => label,
    }
}

pub(super) fn ask_stop(app: &mut App, key: &JobKey) {
    let Some(e) = app.jobs.get(key) else { return };
    let label = app.label(key);
    if !is_running(e) {
        notify(app, Notice::error(format!("{label} has already ended")));
        return;
    }
    let what = crate::tui::view::jobs::command(&e.job);
    let whose = whose(app, key);
    ask(app, key, Asked::Stop, format!("stop {whose} ({what})? y/n"));
}

/// Asks `question`; a `y` does `action` on the job.
pub(super) fn ask(app: &mut App, key: &JobKey, action: Asked, question: String) {
    app.mode = Mode::Confirm(Pending {
        crew: key.crew,
        job: key.id.clone(),
        label: app.label(key),
        action,
    });
    app.notice = Some(Notice::info(question));
    app.notice_at = Some(app.now);
}

/// `A`: archived jobs listed too (asked of every crew), or hidden again.
pub(super) fn toggle_archived(app: &mut App, fx: &mut Vec<Effect>) {
    app.show_archived = !app.show_archived;
    if app.show_archived {
        for crew in 0..app.crews.len() {
            fx.push(Effect::ListArchived { crew });
        }
        notify(
            app,
            Notice::info("archived jobs shown (u un-archives one; A hides them)"),
        );
    } else {
        let archived: Vec<JobKey> = app
            .jobs
            .iter()
            .filter(|(_, e)| e.job.archived)
            .map(|(k, _)| k.clone())
            .collect();
        for k in archived {
            app.index.remove(&k.id);
            app.jobs.remove(&k);
        }
        notify(app, Notice::info("archived jobs hidden"));
    }
    app.unsettled = true;
    app.list_changed();
}

/// A crew's archived jobs arrived: listed, if they are still wanted.
pub(super) fn on_archived_jobs(app: &mut App, ix: CrewIx, listed: Result<Vec<pb::Job>, String>) {
    if !app.show_archived {
        return;
    }
    match listed {
        Ok(jobs) => {
            for j in jobs {
                upsert(app, ix, j);
            }
            app.unsettled = true;
            app.list_changed();
        }
        Err(why) => {
            let crew = app.crews.get(ix).map_or("?", |c| c.name.as_str()).to_owned();
            let why = crate::sanitize::Sanitizer::clean(&why);
            notify(
                app,
                Notice::error(format!("{crew}: archived jobs not listed: {why}")),
            );
        }
    }
}

pub(super) fn archive(app: &mut App, key: &JobKey, fx: &mut Vec<Effect>) {
    let Some(e) = app.jobs.get(key) else { return };
    let label = app.label(key);
    if e.job.archived {
        notify(
            app,
            Notice::error(format!("{label} is archived already (u un-archives it)")),
        );
        return;
    }
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

/// The detail overlay of a job, and its audit trail asked for.
/// Opens the log view on a job (archived or not) and reads its output.
pub(super) fn open_log(app: &mut App, key: JobKey, fx: &mut Vec<Effect>) {
    let Some(e) = app.jobs.get(&key) else { return };
    let running = is_running(e);
    let view = crate::tui::logview::LogView::new(key.crew, key.id.clone(), app.label(&key), running);
    fx.push(view.read_effect());
    app.log = Some(view);
    app.trail = None;
    app.overlay = Some(crate::tui::app::Overlay::Log);
}

pub(super) fn show_detail(app: &mut App, key: JobKey, fx: &mut Vec<Effect>) {
    app.trail = Some(crate::tui::app::Trail {
        job: key.id.clone(),
        lines: None,
    });
    fx.push(Effect::Trail {
        crew: key.crew,
        job: key.id.clone(),
    });
    app.overlay = Some(crate::tui::app::Overlay::Detail(key));
}
