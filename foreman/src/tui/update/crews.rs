//! What a crew tells us: its link going up or down, its snapshot of
//! jobs, each job's change, archives, and usage.

use super::jobs::{keep_selection_visible, upsert};
use super::notify;
use crate::sanitize::Sanitizer;
use crate::tui::action::{CrewEvent, CrewIx, Effect, Notice};
use crate::tui::app::{App, CrewState, JobKey, Link, Overlay};

/// A crew discovery found: in a new slot, or in its old one again.
pub(super) fn on_found(app: &mut App, ix: CrewIx, name: String, addr: String, groups: Vec<String>) {
    let crew = CrewState {
        name: Sanitizer::clean(&name),
        addr: Sanitizer::clean(&addr),
        groups,
        link: Link::Connecting { since: app.now },
        me: None,
    };
    let len = app.crews.len();
    match app.crews.get_mut(ix) {
        Some(slot) => *slot = crew,
        None if ix == len => app.crews.push(crew),
        None => {}
    }
}

/// A crew discovery no longer finds: its jobs leave the list, and the pane
/// lets go of one of them.
pub(super) fn on_gone(app: &mut App, ix: CrewIx, fx: &mut Vec<Effect>) {
    let Some(crew) = app.crews.get_mut(ix) else { return };
    crew.link = Link::Gone;
    crew.me = None;
    let name = crew.name.clone();
    drop_jobs_of(app, ix);
    if app.attached.as_ref().is_some_and(|a| a.crew == ix) {
        super::attach::detach_quietly(app, fx);
    }
    keep_selection_visible(app);
    notify(
        app,
        Notice::info(format!("crew {name} is gone: discovery no longer finds it")),
    );
}

fn drop_jobs_of(app: &mut App, ix: CrewIx) {
    let stale: Vec<JobKey> = app.jobs.keys().filter(|k| k.crew == ix).cloned().collect();
    for k in stale {
        app.index.remove(&k.id);
        app.jobs.remove(&k);
    }
    if app.selected_job().is_some_and(|k| k.crew == ix) {
        app.selected = None;
    }
}

pub(super) fn on_crew(app: &mut App, ix: CrewIx, ev: CrewEvent, fx: &mut Vec<Effect>) {
    let now = app.now;
    let Some(crew) = app.crews.get_mut(ix) else { return };
    // A late word from the watcher of a crew that is gone.
    if crew.link.is_gone() {
        return;
    }
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
            // A snapshot holds no archived jobs: ask again for them.
            if app.show_archived {
                fx.push(Effect::ListArchived { crew: ix });
            }
            app.unsettled = true;
        }
        CrewEvent::Job(job) => {
            if !job.batch.is_empty() {
                super::batches::member_changed(app, &job.batch);
            }
            upsert(app, ix, *job);
            app.unsettled = true;
        }
        CrewEvent::Archived(job) => {
            if app.show_archived {
                // Still listed, now as archived.
                super::jobs::upsert(app, ix, *job.clone());
            } else if let Some(k) = app.index.remove(&job.id) {
                app.jobs.remove(&k);
            }
            // The pane lets go of a job archived (here or by anyone).
            if let Some(label) = app
                .attached
                .as_ref()
                .filter(|a| a.job == job.id)
                .map(|a| a.label.clone())
            {
                super::attach::detach_quietly(app, fx);
                notify(app, Notice::info(format!("{label} was archived: detached")));
            }
            app.unsettled = true;
        }
        CrewEvent::Usage(list) => {
            // Figures of jobs off screen change nothing drawn: no frame for
            // them (a list sorted by cpu or memory is sorted again at the
            // next tick).
            let mut seen = false;
            for u in list {
                if let Some(k) = app.index.get(&u.job_id)
                    && let Some(e) = app.jobs.get_mut(k)
                {
                    seen |= app.on_screen.borrow().contains(&u.job_id)
                        || matches!(&app.overlay, Some(Overlay::Detail(d)) if d.id == u.job_id);
                    e.usage = Some(u);
                }
            }
            app.quiet = !seen;
        }
    }
}
