//! The dashboard: every job of every crew, live, with an emulated terminal
//! for the one attached. The Elm Architecture:
//!
//! - `app.rs`: the one state; `action.rs`: what can happen (`Action`) and
//!   what the dashboard asks for (`Effect`).
//! - `update/`: `update(&mut App, Action) -> Vec<Effect>`, no I/O; its
//!   `mod.rs` dispatches, a file per concern does the work.
//! - `view/`: draws `&App`; `layout.rs`: where things are (shared with
//!   `update` for mouse clicks).
//! - `keys.rs`: the key and command tables (dispatch, hints and help).
//! - `term.rs`: the terminal emulator and key encoding.
//! - `event.rs`: the tasks feeding the event channels.
//! - `pace.rs`: when to draw.
//! - here: the loop: events in, `update`, effects out, a frame when
//!   something changed (60 a second at most on average; a key's at once).

pub mod action;
pub mod app;
pub mod attach_task;
pub mod event;
pub mod keys;
pub mod layout;
pub mod logview;
pub mod pace;
pub mod term;
pub mod update;
pub mod view;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Stdout;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::action::{Action, Effect, Input, SessionId};
use self::app::App;
use self::event::{Event, Tx};
use self::pace::Pacer;
use crate::client::{self, Crew};
use crate::config::{self, Overrides};
use crate::discovery::{self, Found};
use crate::failure::Failure;
use crate::terminal;

pub async fn run(over: Overrides) -> Result<(), Failure> {
    let mut config = config::load(&over)?;
    // The configuration's own crews; discovery's come after, and change.
    let statics = config.crews.clone();
    let found = discovery::add_to(&mut config).await;
    let crews = client::crews(&config)?;
    if !terminal::stdout_is_tty() || !terminal::stdin_is_tty() {
        return Err(Failure::Usage(
            "the dashboard needs a terminal; `foreman --help` lists the commands for scripts".into(),
        ));
    }
    let mut screen =
        Screen::enter().map_err(|e| Failure::Usage(format!("cannot set up the terminal: {e}")))?;
    let size = screen
        .terminal
        .size()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut app = App::new(
        crews.iter().map(|c| (c.name.clone(), c.addr.clone())).collect(),
        (size.width, size.height),
        SystemTime::now(),
    );
    app.presets.clone_from(&config.presets);
    for (state, entry) in app.crews.iter_mut().zip(&config.crews) {
        state.groups.clone_from(&entry.groups);
    }
    let mut fleet = Fleet {
        crews,
        watchers: Vec::new(),
        problems: Vec::new(),
    };
    fleet.say_problems(&mut app, &found.problems);
    let result = event_loop(&mut screen, &mut app, fleet, &config, statics).await;
    drop(screen);
    result
}

/// The crews the dashboard talks to: a slot each, whose index never
/// changes (a crew discovery drops keeps its slot, and gets it back if
/// found again), each with its watcher's token.
struct Fleet {
    crews: Vec<Crew>,
    watchers: Vec<CancellationToken>,
    /// What discovery last said went wrong (said again only when it changes).
    problems: Vec<String>,
}

impl Fleet {
    fn watch(&mut self, ix: usize, tx: &Tx, cancel: &CancellationToken) {
        let token = cancel.child_token();
        tokio::spawn(event::watch_crew(
            ix,
            self.crews[ix].clone(),
            tx.clone(),
            token.clone(),
        ));
        match self.watchers.get_mut(ix) {
            Some(old) => {
                old.cancel();
                *old = token;
            }
            None => self.watchers.push(token),
        }
    }

    fn say_problems(&mut self, app: &mut App, problems: &[String]) {
        if problems == self.problems.as_slice() {
            return;
        }
        self.problems = problems.to_vec();
        if let Some(first) = problems.first() {
            let more = match problems.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            app.notice = Some(action::Notice::error(format!(
                "discovery: {}{more}",
                crate::sanitize::Sanitizer::clean(first)
            )));
            app.notice_at = Some(SystemTime::now());
        }
    }

    /// What discovery found now: new crews get a slot (or their old one)
    /// and a watcher; discovered crews no longer found go (unless their
    /// source failed this time: not knowing is not gone).
    fn apply(&mut self, app: &mut App, found: Found, config: &config::Config, io: &mut Io<'_>) {
        self.say_problems(app, &found.problems);
        for entry in &found.crews {
            let slot = self.crews.iter().position(|c| c.name == entry.name);
            if let Some(ix) = slot
                && self.crews[ix].addr == entry.addr
                && !app.crews.get(ix).is_some_and(|c| c.link.is_gone())
            {
                continue;
            }
            let crew = match client::crew(config, entry) {
                Ok(c) => c,
                Err(e) => {
                    app.notice = Some(action::Notice::error(format!("discovery: {e}")));
                    continue;
                }
            };
            let ix = match slot {
                Some(ix) => {
                    self.crews[ix] = crew;
                    ix
                }
                None => {
                    self.crews.push(crew);
                    self.crews.len() - 1
                }
            };
            self.watch(ix, io.tx, io.cancel);
            let found = Action::CrewFound {
                ix,
                name: entry.name.clone(),
                addr: entry.addr.clone(),
                groups: entry.groups.clone(),
            };
            handle(
                app,
                Event {
                    action: found,
                    credit: None,
                },
                self,
                io.tx,
                io.sessions,
            );
        }
        for ix in 0..self.crews.len() {
            let c = &self.crews[ix];
            let gone = c.source.discovered()
                && !app.crews.get(ix).is_some_and(|s| s.link.is_gone())
                && !found.failed.contains(&c.source)
                && !found.crews.iter().any(|e| e.name == c.name);
            if gone {
                self.watchers[ix].cancel();
                let gone = Action::CrewGone(ix);
                handle(
                    app,
                    Event {
                        action: gone,
                        credit: None,
                    },
                    self,
                    io.tx,
                    io.sessions,
                );
            }
        }
    }
}

/// What carrying out effects needs.
struct Io<'a> {
    tx: &'a Tx,
    cancel: &'a CancellationToken,
    sessions: &'a mut HashMap<SessionId, mpsc::Sender<Input>>,
}

async fn event_loop(
    screen: &mut Screen,
    app: &mut App,
    mut fleet: Fleet,
    config: &config::Config,
    statics: Vec<config::CrewEntry>,
) -> Result<(), Failure> {
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    // The terminal's own channel, read first: a key never waits behind
    // queued job output.
    let (keys_tx, mut keys) = mpsc::channel::<Event>(256);
    let cancel = CancellationToken::new();
    let _stop_tasks = cancel.clone().drop_guard();
    tokio::spawn(event::terminal_input(keys_tx, cancel.clone()));
    tokio::spawn(event::ticks(tx.clone(), cancel.clone()));
    for ix in 0..fleet.crews.len() {
        fleet.watch(ix, &tx, &cancel);
    }
    let (found_tx, mut found_rx) = mpsc::channel::<Found>(4);
    if !config.discovery.is_empty() {
        tokio::spawn(event::rediscover(
            config.discovery.clone(),
            statics,
            found_tx,
            cancel.clone(),
        ));
    }
    let mut sessions: HashMap<SessionId, mpsc::Sender<Input>> = HashMap::new();
    let mut term_sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut hup_sig = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Failure::Usage(e.to_string()))?;

    let mut dirty = true;
    // A person did something: the frame that shows it goes out now.
    let mut urgent = false;
    let mut pacer = Pacer::new(Instant::now());
    app.batching = true;
    loop {
        if dirty && pacer.take(Instant::now(), urgent) {
            update::settle(app);
            screen
                .terminal
                .draw(|f| view::draw(f, app))
                .map_err(|e| Failure::Usage(format!("drawing failed: {e}")))?;
            dirty = false;
            urgent = false;
        }
        let next_frame = if dirty {
            tokio::time::Instant::from_std(pacer.next())
        } else {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        };
        tokio::select! {
            biased;
            ev = keys.recv() => {
                let Some(ev) = ev else { break };
                dirty = true;
                urgent |= event::is_a_persons(&ev.action);
                // A key acts on the list as it stands now.
                update::settle(app);
                let mut quit = handle(app, ev, &fleet, &tx, &mut sessions);
                while !quit && let Ok(ev) = keys.try_recv() {
                    urgent |= event::is_a_persons(&ev.action);
                    quit = handle(app, ev, &fleet, &tx, &mut sessions);
                }
                if quit {
                    break;
                }
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let mut quit = handle(app, ev, &fleet, &tx, &mut sessions);
                dirty |= !app.quiet;
                // Take what else is ready, for at most a few ms, so that a
                // flood still leaves room for frames; a key goes first.
                let t0 = Instant::now();
                while !quit && keys.is_empty() && t0.elapsed() < Duration::from_millis(8) {
                    match rx.try_recv() {
                        Ok(ev) => {
                            quit = handle(app, ev, &fleet, &tx, &mut sessions);
                            dirty |= !app.quiet;
                        }
                        Err(_) => break,
                    }
                }
                if quit {
                    break;
                }
            }
            Some(found) = found_rx.recv() => {
                dirty = true;
                let mut io = Io { tx: &tx, cancel: &cancel, sessions: &mut sessions };
                fleet.apply(app, found, config, &mut io);
            }
            () = tokio::time::sleep_until(next_frame) => {}
            _ = term_sig.recv() => break,
            _ = hup_sig.recv() => break,
        }
    }
    // Detach from every stream (the tasks send Detach when their input
    // channel closes) and give them a moment to say so.
    sessions.clear();
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

/// One event through `update`, and its effects carried out. True: quit.
fn handle(
    app: &mut App,
    ev: Event,
    fleet: &Fleet,
    tx: &Tx,
    sessions: &mut HashMap<SessionId, mpsc::Sender<Input>>,
) -> bool {
    let Event { action, credit } = ev;
    let crews = &fleet.crews;
    let effects = update::update(app, action);
    // The output is in the emulator now: let more come.
    drop(credit);
    let mut quit = false;
    for fx in effects {
        match fx {
            Effect::Start { crew, spec } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::start(crew, c.clone(), *spec, tx.clone()));
                }
            }
            Effect::Stop { crew, job, label } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::stop(c.clone(), job, label, tx.clone()));
                }
            }
            Effect::Archive { crew, job, label } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::archive(c.clone(), job, label, tx.clone()));
                }
            }
            Effect::Attach {
                session,
                crew,
                job,
                write,
            } => {
                if let Some(c) = crews.get(crew) {
                    let (input_tx, input_rx) = mpsc::channel(256);
                    sessions.insert(session, input_tx);
                    tokio::spawn(attach_task::run(
                        session,
                        c.clone(),
                        job,
                        write,
                        tx.clone(),
                        input_rx,
                    ));
                }
            }
            Effect::Send { session, input } => {
                if let Some(s) = sessions.get(&session)
                    && s.try_send(input).is_err()
                {
                    app.notice = Some(action::Notice::error(
                        "the job is not reading its input: keys dropped",
                    ));
                }
            }
            Effect::Detach { session } => {
                sessions.remove(&session);
            }
            Effect::Trail { crew, job } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::trail(c.clone(), job, tx.clone()));
                }
            }
            Effect::ListArchived { crew } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::list_archived(crew, c.clone(), tx.clone()));
                }
            }
            Effect::Unarchive { crew, job, label } => {
                if let Some(c) = crews.get(crew) {
                    tokio::spawn(event::unarchive(c.clone(), job, label, tx.clone()));
                }
            }
            Effect::ReadLog { crew, job, follow } => {
                if let Some(c) = crews.get(crew) {
                    // A follow is a session: its `Detach` drops this
                    // sender, and the reader stops.
                    let follow = follow.map(|session| {
                        let (input_tx, input_rx) = mpsc::channel(1);
                        sessions.insert(session, input_tx);
                        (session, input_rx)
                    });
                    tokio::spawn(event::read_log(c.clone(), job, follow, tx.clone()));
                }
            }
            Effect::SaveLog {
                path,
                bytes,
                overwrite,
            } => {
                let saved = logview::save(&path, &bytes, overwrite);
                if let Some(v) = app.log.as_mut() {
                    v.on_saved(saved);
                }
            }
            Effect::Gather { batch, members } => {
                let members = members
                    .into_iter()
                    .filter_map(|(ix, job)| crews.get(ix).map(|c| (ix, c.clone(), job)))
                    .collect();
                tokio::spawn(event::gather(batch, members, tx.clone()));
            }
            Effect::Quit => quit = true,
        }
    }
    quit
}

/// The terminal in the dashboard's modes, put back however we leave:
/// return, error, or panic.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> std::io::Result<Self> {
        crate::panic_restore::restore_on_panic(restore);
        crossterm::terminal::enable_raw_mode()?;
        let mut out = std::io::stdout();
        crossterm::execute!(
            out,
            EnterAlternateScreen,
            EnableMouseCapture,
            EnableBracketedPaste
        )?;
        let mut terminal = Terminal::new(CrosstermBackend::new(out))?;
        terminal.clear()?;
        Ok(Self { terminal })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        DisableBracketedPaste,
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}
