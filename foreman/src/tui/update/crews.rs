//! What a crew tells us: its link going up or down, its snapshot of
//! jobs, each job's change, archives, and usage.

use super::jobs::{keep_selection_visible, upsert};
use crate::sanitize::Sanitizer;
use crate::tui::action::{CrewEvent, CrewIx};
use crate::tui::app::{App, JobKey, Link};

pub(super) fn on_crew(app: &mut App, ix: CrewIx, ev: CrewEvent) {
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
