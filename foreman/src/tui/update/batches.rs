//! Batches in the list: a batch's line opened and closed, its members
//! stopped together, and its gathered view (identical outputs once, under
//! their crews, as `foreman run -b` prints them), kept current while open.

use super::jobs::keep_selection_visible;
use super::notify;
use crate::gather;
use crate::present::exit_code;
use crate::sanitize::{Mode as Filter, Sanitizer};
use crate::tui::action::{Effect, MemberOutput, Notice};
use crate::tui::app::{App, Asked, Gathered, GatheredGroup, JobKey, Mode, Overlay, Pending, RowKey};

/// The batch's members, in the list's own order.
fn members(app: &App, batch: &str) -> Vec<JobKey> {
    app.jobs
        .iter()
        .filter(|(_, e)| e.job.batch == batch && !e.job.archived)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Opens (true), closes (false) or toggles (None) a batch's line.
pub(super) fn fold(app: &mut App, batch: &str, open: Option<bool>) {
    let open = open.unwrap_or(!app.open_batches.contains(batch));
    app.list_changed();
    if open {
        app.open_batches.insert(batch.to_owned());
    } else {
        app.open_batches.remove(batch);
        // A member selected goes to its line.
        app.selected = Some(RowKey::Batch(batch.to_owned()));
    }
    keep_selection_visible(app);
}

/// The gathered view of a batch: asks its members' outputs.
pub(super) fn show(app: &mut App, batch: &str, fx: &mut Vec<Effect>) {
    app.gathered = Some(Gathered {
        batch: batch.to_owned(),
        groups: None,
        stale: false,
        asking: false,
    });
    app.overlay = Some(Overlay::Gathered(0));
    ask_outputs(app, fx);
}

fn ask_outputs(app: &mut App, fx: &mut Vec<Effect>) {
    let Some(g) = &app.gathered else { return };
    let batch = g.batch.clone();
    let members: Vec<(usize, String)> = members(app, &batch).into_iter().map(|k| (k.crew, k.id)).collect();
    if let Some(g) = &mut app.gathered {
        g.asking = true;
        g.stale = false;
    }
    fx.push(Effect::Gather { batch, members });
}

/// A member's news: the gathered view, if it shows its batch, is read
/// again at the next tick.
pub(super) fn member_changed(app: &mut App, batch: &str) {
    if let Some(g) = app.gathered.as_mut().filter(|g| g.batch == batch) {
        g.stale = true;
    }
}

/// Once a second: a stale gathered view on screen is read again (one
/// reading at a time).
pub(super) fn on_tick(app: &mut App, fx: &mut Vec<Effect>) {
    let on_screen = matches!(app.overlay, Some(Overlay::Gathered(_)));
    if on_screen && app.gathered.as_ref().is_some_and(|g| g.stale && !g.asking) {
        ask_outputs(app, fx);
    }
}

/// The members' outputs: grouped, filtered for the screen.
pub(super) fn on_gathered(app: &mut App, batch: &str, outputs: Vec<MemberOutput>) {
    if app.gathered.as_ref().is_none_or(|g| g.batch != batch) {
        return;
    }
    let mut read = Vec::new();
    let mut unread = Vec::new();
    for o in &outputs {
        let Some(key) = app.index.get(&o.job) else {
            continue;
        };
        let crew = app.crews.get(o.crew).map_or("?", |c| c.name.as_str());
        match (&o.output, app.jobs.get(key)) {
            (Ok(out), Some(e)) => read.push((
                key.clone(),
                gather::Member {
                    crew,
                    output: out,
                    code: e.job.outcome.is_some().then(|| exit_code(&e.job)),
                    cut: o.cut,
                },
            )),
            (Err(why), _) => unread.push((key.clone(), crew, Sanitizer::clean(why))),
            (Ok(_), None) => {}
        }
    }
    let members: Vec<gather::Member> = read.iter().map(|(_, m)| *m).collect();
    let mut groups: Vec<GatheredGroup> = gather::gather(&members)
        .into_iter()
        .map(|g| GatheredGroup {
            header: g.header,
            ok: g.ok,
            failed: g.failed,
            lines: screen_lines(g.output, g.cut),
            first: read[g.members[0]].0.clone(),
        })
        .collect();
    groups.extend(unread.into_iter().map(|(first, crew, why)| GatheredGroup {
        header: format!("{crew}: output not read"),
        ok: false,
        failed: true,
        lines: vec![why],
        first,
    }));
    if let Some(g) = &mut app.gathered {
        g.groups = Some(groups);
        g.asking = false;
    }
}

/// Output as lines for the screen: filtered (no escape sequence of the
/// job's reaches the terminal), tabs as spaces, and what was not read
/// said.
fn screen_lines(output: &[u8], cut: u64) -> Vec<String> {
    let mut clean = Vec::with_capacity(output.len());
    Sanitizer::new(Filter::Plain).feed(output, &mut clean);
    let text = String::from_utf8_lossy(&clean);
    let mut lines: Vec<String> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .map(|l| l.trim_end_matches('\r').replace('\t', "    "))
        .collect();
    if output.is_empty() {
        lines = vec!["(no output)".into()];
    }
    if cut > 0 {
        lines.push(format!("[{cut} more bytes: attach a member to read them]"));
    }
    lines
}

/// A line of the gathered view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A group's crews and ends: all ok, one failed, or still running.
    Ok,
    Failed,
    Running,
    Output,
}

/// The gathered view's lines: each group's header, then its output.
pub fn lines(g: &Gathered) -> Vec<(Line, String)> {
    let mut out = Vec::new();
    for group in g.groups.iter().flatten() {
        let kind = if group.failed {
            Line::Failed
        } else if group.ok {
            Line::Ok
        } else {
            Line::Running
        };
        out.push((kind, group.header.clone()));
        out.extend(group.lines.iter().map(|l| (Line::Output, l.clone())));
    }
    out
}

/// The group shown at the top of the view scrolled by `scroll` lines.
fn group_at(g: &Gathered, scroll: u16) -> Option<&GatheredGroup> {
    let mut line = 0usize;
    let groups = g.groups.as_ref()?;
    groups
        .iter()
        .find(|group| {
            line += 1 + group.lines.len();
            line > usize::from(scroll)
        })
        .or(groups.last())
}

/// Keys over the gathered view: scroll; ⏎ lists the batch's members with
/// the top group's first selected; anything else closes it.
pub(super) fn on_view_key(app: &mut App, code: crossterm::event::KeyCode, scroll: u16) {
    use crossterm::event::KeyCode as K;
    let max = app
        .gathered
        .as_ref()
        .map_or(0, |g| lines(g).len().saturating_sub(1)) as u16;
    let to = |n: u16| Some(Overlay::Gathered(n.min(max)));
    match code {
        K::Down | K::Char('j') => app.overlay = to(scroll.saturating_add(1)),
        K::Up | K::Char('k') => app.overlay = to(scroll.saturating_sub(1)),
        K::PageDown | K::Char(' ') => app.overlay = to(scroll.saturating_add(10)),
        K::PageUp => app.overlay = to(scroll.saturating_sub(10)),
        K::Enter => {
            let pick = app
                .gathered
                .as_ref()
                .and_then(|g| group_at(g, scroll).map(|group| (g.batch.clone(), group.first.clone())));
            app.overlay = None;
            if let Some((batch, first)) = pick {
                app.open_batches.insert(batch);
                app.list_changed();
                app.selected = Some(RowKey::Job(first));
                keep_selection_visible(app);
                notify(
                    app,
                    Notice::info("the batch's members: ⏎ attaches one, ← closes the batch"),
                );
            }
        }
        _ => app.overlay = None,
    }
}

/// Asks before stopping a batch's running members.
pub(super) fn ask_stop(app: &mut App, batch: &str) {
    let running = members(app, batch)
        .iter()
        .filter(|k| app.jobs.get(*k).is_some_and(|e| e.job.outcome.is_none()))
        .count();
    if running == 0 {
        return notify(app, Notice::error(format!("batch {batch} has no job running")));
    }
    app.mode = Mode::Confirm(Pending {
        crew: 0,
        job: batch.to_owned(),
        label: format!("batch {batch}"),
        action: Asked::StopBatch,
    });
    let jobs = if running == 1 { "job" } else { "jobs" };
    let others = members(app, batch)
        .iter()
        .filter_map(|k| super::jobs::others_owner(app, k))
        .next();
    let whose = match others {
        Some(owner) => format!(" (some are {owner}'s)"),
        None => String::new(),
    };
    let question = format!("stop the {running} running {jobs} of batch {batch}{whose}? y/n");
    app.notice = Some(Notice::info(question));
    app.notice_at = Some(app.now);
}

/// Stops every running member of the batch.
pub(super) fn stop(app: &mut App, batch: &str, fx: &mut Vec<Effect>) {
    let mut n = 0;
    for k in members(app, batch) {
        if app.jobs.get(&k).is_some_and(|e| e.job.outcome.is_none()) {
            let label = app.label(&k);
            fx.push(Effect::Stop {
                crew: k.crew,
                job: k.id,
                label,
            });
            n += 1;
        }
    }
    notify(app, Notice::info(format!("stopping {n} jobs of batch {batch}…")));
}
