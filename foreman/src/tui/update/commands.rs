//! The `:` commands: a typed line split into words, the command found (a
//! unique prefix will do), its job reference resolved, and the command
//! run; `:start` takes `foreman start`'s options.

use clap::Parser as _;
use tasker_proto::v1 as pb;

use super::attach::{attach, detach, layout_with_attachment};
use super::jobs::{archive, ask_stop, is_running, keep_selection_visible, others_owner};
use super::keys::run_cmd;
use super::notify;
use crate::job::split_reference;
use crate::tui::action::{Effect, Notice};
use crate::tui::app::{App, JobKey, Overlay, RowKey, SortBy};
use crate::tui::keys::{self, Cmd};

pub(super) fn run_line(app: &mut App, line: &str, fx: &mut Vec<Effect>) {
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
                app.selected = Some(RowKey::Job(k.clone()));
                keep_selection_visible(app);
                attach(app, &k, fx);
            }
        }
        "stop" => {
            if let Some(k) = one_job(app) {
                // Typed out in full: no question, unless the job is
                // another user's (a reference typed is not a job seen).
                let Some(e) = app.jobs.get(&k) else { return };
                let label = app.label(&k);
                if is_running(e) && others_owner(app, &k).is_some() {
                    ask_stop(app, &k);
                } else if is_running(e) {
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
        "sort" => sort(app, args),
        "group" => group(app, args),
        "info" => {
            if let Some(k) = one_job(app) {
                app.selected = Some(RowKey::Job(k.clone()));
                keep_selection_visible(app);
                super::jobs::show_detail(app, k, fx);
            }
        }
        "logs" => {
            if let Some(k) = one_job(app) {
                app.selected = Some(RowKey::Job(k.clone()));
                keep_selection_visible(app);
                super::jobs::open_log(app, k, fx);
            }
        }
        "help" => app.overlay = Some(Overlay::Help(0)),
        "quit" => run_cmd(app, Cmd::Quit, fx),
        "start" => start(app, args, fx),
        _ => {}
    }
}

/// `:sort COLUMN [desc|asc]`: the list's order (`:sort crew` is its own).
fn sort(app: &mut App, args: &[String]) {
    let columns = || SortBy::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some(by) = args.first().and_then(|w| SortBy::parse(w)) else {
        return notify(
            app,
            Notice::error(format!(":sort COLUMN [desc]: one of {}", columns())),
        );
    };
    let descending = match args.get(1).map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return notify(app, Notice::error(format!(":sort: {other:?} is not asc or desc"))),
    };
    app.order.by = by;
    app.order.descending = descending;
    keep_selection_visible(app);
}

/// `:group crew|owner|batch|none`: jobs of one crew, owner or batch together.
fn group(app: &mut App, args: &[String]) {
    app.order.group = match args.first().map(String::as_str) {
        Some("none") => None,
        Some(w @ ("crew" | "owner" | "batch")) => SortBy::parse(w),
        _ => return notify(app, Notice::error(":group crew|owner|batch|none")),
    };
    keep_selection_visible(app);
}

/// `:start [CREW] [options] -- CMD ARGS`: `foreman start`'s options.
#[derive(Debug, clap::Parser)]
#[command(name = ":start", no_binary_name = true, disable_help_flag = true)]
struct StartLine {
    /// The crew (needed when there are several).
    crew_name: Option<String>,
    #[command(flatten)]
    job: crate::job::JobArgs,
}

fn start(app: &mut App, args: &[String], fx: &mut Vec<Effect>) {
    let parsed = match StartLine::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let line = tasker_common::usage_line(&e.to_string());
            return notify(app, Notice::error(format!(":start: {line}")));
        }
    };
    let job = match parsed.job.with_preset(&app.presets) {
        Ok(job) => job,
        Err(e) => return notify(app, Notice::error(format!(":start: {e}"))),
    };
    let named = parsed.crew_name.as_deref().or(job.crew.as_deref());
    if let Some(selection) = named.filter(|n| !crate::select::is_single(n)) {
        return start_batch(app, selection, &job, fx);
    }
    let crew = match named {
        Some(n) => match app.crew_named(n) {
            Some(ix) => ix,
            None => return notify(app, Notice::error(format!("no crew {n:?}"))),
        },
        None if app.live_crews().count() == 1 => app.live_crews().next().map_or(0, |(ix, _)| ix),
        None => {
            let names: Vec<&str> = app.live_crews().map(|(_, c)| c.name.as_str()).collect();
            return notify(
                app,
                Notice::error(format!(":start needs a crew: one of {}", names.join(", "))),
            );
        }
    };
    let mut spec = crate::job::job_spec(&job);
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
        crate::present::command_line(&spec.argv),
        app.crews[crew].name
    );
    fx.push(Effect::Start {
        crew,
        spec: Box::new(spec),
    });
    notify(app, Notice::info(format!("starting {label}…")));
}

/// `:start web* -- CMD`, `:start @prod -- CMD`, `:start all -- CMD`: the
/// job on every crew selected (as `foreman start --crew` does), as one
/// batch.
fn start_batch(app: &mut App, selection: &str, job: &crate::job::JobArgs, fx: &mut Vec<Effect>) {
    let live: Vec<(crate::tui::action::CrewIx, crate::config::CrewEntry)> = app
        .live_crews()
        .map(|(ix, c)| {
            let entry = crate::config::CrewEntry {
                name: c.name.clone(),
                addr: c.addr.clone(),
                groups: c.groups.clone(),
                source: crate::config::Source::Config,
                dial: None,
            };
            (ix, entry)
        })
        .collect();
    let entries: Vec<crate::config::CrewEntry> = live.iter().map(|(_, e)| e.clone()).collect();
    let chosen = match crate::select::select(&entries, selection) {
        Ok(chosen) => chosen,
        Err(e) => return notify(app, Notice::error(format!(":start: {e}"))),
    };
    let spec = pb::JobSpec {
        batch: format!("b-{}", tasker_common::random_hex(6)),
        ..crate::job::job_spec(job)
    };
    let names: Vec<&str> = chosen.iter().map(|i| live[*i].1.name.as_str()).collect();
    let label = format!(
        "starting batch {} ({}) on {}…",
        spec.batch,
        crate::present::command_line(&spec.argv),
        crate::select::fold(&names)
    );
    for i in &chosen {
        fx.push(Effect::Start {
            crew: live[*i].0,
            spec: Box::new(spec.clone()),
        });
    }
    notify(app, Notice::info(label));
}

/// A job reference as the CLI takes it: `[crew/]handle|name|id-prefix`,
/// against the jobs this dashboard knows.
pub fn resolve(app: &App, reference: &str) -> Result<JobKey, String> {
    let (crew, r) = match split_reference(reference) {
        (Some(c), r) => match app.crew_named(c) {
            Some(ix) => (Some(ix), r),
            None => return Err(format!("no crew {c:?}")),
        },
        (None, r) => (None, r),
    };
    let parsed = tasker_common::JobRef::parse(r).map_err(|e| e.to_string())?;
    let hits: Vec<&JobKey> = app
        .jobs
        .iter()
        .filter(|(k, _)| crew.is_none_or(|c| k.crew == c))
        .filter(|(k, e)| parsed.matches(&k.id, &e.job.handle, &e.job.name))
        .map(|(k, _)| k)
        .collect();
    match tasker_common::pick(&parsed, hits, |k| {
        app.jobs.get(*k).is_some_and(|e| e.job.archived)
    }) {
        Ok(one) => Ok(one.clone()),
        Err(none) if none.is_empty() => Err(format!("no job {reference:?}")),
        Err(many) => {
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
