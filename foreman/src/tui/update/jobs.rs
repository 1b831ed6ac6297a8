//! The job list: a job's news merged in, which job is selected (and kept
//! on screen), and the verbs on a job that do not attach: stop and
//! archive.

use tasker_proto::v1 as pb;

use super::notify;
use crate::tui::action::{CrewIx, Effect, Notice};
use crate::tui::app::{App, Asked, JobEntry, JobKey, Mode, Pending};
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
pub(super) fn keep_selection_visible(app: &mut App) {
    let visible: Vec<JobKey> = app.visible().into_iter().map(|(k, _)| k.clone()).collect();
    let page = layout::page(app);
    if visible.is_empty() {
        app.selected = None;
        app.offset = 0;
        return;
    }
    let at = match &app.selected {
        Some(s) => match visible.iter().position(|k| k == s) {
            Some(i) => i,
            // Gone: in the list's own order its neighbour; in another
            // order, where the view was.
            None if app.order == crate::tui::app::Order::default() => {
                visible.partition_point(|k| k < s).min(visible.len() - 1)
            }
            None => app.offset.min(visible.len() - 1),
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

pub(super) fn archive(app: &mut App, key: &JobKey, fx: &mut Vec<Effect>) {
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
