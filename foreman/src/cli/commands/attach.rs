//! `foreman attach JOB`, and the interactive session `run` shares.
//!
//! A tty job gets this terminal in raw mode: every key goes to the job
//! (Ctrl-C included) except the detach key, Ctrl-], which is never sent;
//! window size changes follow. A pipe job keeps the terminal's line editing:
//! lines go to the job, Ctrl-D sends it EOF, Ctrl-C or Ctrl-] (then Enter)
//! detaches. Detaching never stops the job. The terminal is always put back
//! (drop, panic, signals).

use std::io::Read as _;

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg as In, open};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::stream::{Next, Sink, open, report_end, step};
use crate::cli::Ctx;
use crate::cli::output::exit_code_of;
use crate::cli::refs::resolve;
use crate::cli::terminal::RawMode;
use crate::client::Crew;
use crate::client::attach::Opened;
use crate::failure::Failure;
use crate::sanitize::{Mode, Sanitizer};
use crate::terminal;

/// The key that detaches; never sent to the job.
pub const DETACH_KEY: u8 = 0x1d;
pub const DETACH_NAME: &str = "Ctrl-]";

/// What Ctrl-C does when it reaches us (pipe jobs: tty jobs get it as a key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInterrupt {
    Detach,
    /// Stop the job (a second Ctrl-C detaches).
    Stop,
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    Job(Box<pb::Job>),
    Detached,
}

pub async fn attach(ctx: &Ctx, reference: &str, yes: bool) -> Result<(), Failure> {
    let (crew, job) = resolve(ctx, reference).await?;
    let write = crate::cli::confirm::write_to(crew, &job, yes).await?;
    let tty = job.tty.is_some();
    // A tty job starts from now (a resize makes screen programs redraw); a
    // pipe job shows its last lines for context.
    let from = if tty {
        open::From::Now(open::Now {})
    } else {
        open::From::TailLines(10)
    };
    let opened = open(crew, &job.id, from, write).await?;
    let mode = if opened.attached.writable {
        "read-write"
    } else if write {
        "read-only: you may not write to this job"
    } else {
        "read-only"
    };
    let keys = if tty {
        format!("{DETACH_NAME} detaches")
    } else {
        format!("{DETACH_NAME} then Enter, or Ctrl-C, detaches; Ctrl-D sends EOF")
    };
    eprintln!(
        "foreman: attached to {}/{} ({}'s, {}, {mode}); {keys}",
        crew.name,
        job.handle,
        Sanitizer::clean(&job.owner),
        if tty { "tty" } else { "pipe" }
    );
    match session(crew, &job, opened, OnInterrupt::Detach, true, true).await? {
        End::Detached => {
            eprintln!(
                "foreman: detached from {}/{}; it goes on running",
                crew.name, job.handle
            );
            Ok(())
        }
        End::Job(j) => {
            report_end(&crew.name, &j);
            match exit_code_of(&j) {
                0 => Ok(()),
                c => Err(Failure::Exit(c)),
            }
        }
    }
}

/// Streams the job's output here and our input there until the job ends or
/// we detach. `nudge`: make a tty job redraw (resize it twice).
pub async fn session(
    crew: &Crew,
    job: &pb::Job,
    mut opened: Opened,
    on_interrupt: OnInterrupt,
    nudge: bool,
    forward_stdin: bool,
) -> Result<End, Failure> {
    let tty = job.tty.is_some();
    let stdin_tty = terminal::stdin_is_tty();
    let writable = opened.attached.writable;
    let raw = if tty && stdin_tty && writable {
        Some(
            RawMode::enter()
                .map_err(|e| Failure::Usage(format!("cannot set the terminal to raw mode: {e}")))?,
        )
    } else {
        None
    };
    let send = |tx: &mpsc::Sender<pb::AttachJobRequest>, msg: In| {
        let tx = tx.clone();
        async move { tx.send(pb::AttachJobRequest { msg: Some(msg) }).await.is_ok() }
    };
    if tty
        && writable
        && let Some((rows, cols)) = terminal::size()
    {
        let size = |rows: u16, cols: u16| {
            In::Resize(pb::TtySize {
                rows: u32::from(rows),
                cols: u32::from(cols),
            })
        };
        if nudge && cols > 1 {
            send(&opened.tx, size(rows, cols - 1)).await;
        }
        send(&opened.tx, size(rows, cols)).await;
    }
    // Input: a thread blocked in read(2) on stdin, feeding a channel.
    let (keys_tx, mut keys) = mpsc::channel::<Option<Vec<u8>>>(16);
    if writable && forward_stdin {
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = keys_tx.blocking_send(None);
                        return;
                    }
                    Ok(n) => {
                        if keys_tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    } else if writable && !tty {
        // Nothing to give a pipe job: it reads EOF, as with `docker run`
        // without -i.
        send(&opened.tx, In::Eof(pb::attach_job_request::Eof {})).await;
    }
    let mut sigs = Signals::new()?;
    let mut sink = Sink::stdout(if tty { Mode::Terminal } else { Mode::Plain }, false).split();
    let mut offset = opened.attached.offset;
    let mut stopping = false;
    let end = loop {
        tokio::select! {
            next = step(&crew.name, &mut opened, &mut sink, &mut offset) => match next? {
                // No until is asked for here.
                Next::Data | Next::Until => {}
                Next::Ended(j) => break End::Job(j),
            },
            Some(input) = keys.recv() => match input {
                Some(bytes) => {
                    let (data, detach) = match bytes.iter().position(|b| *b == DETACH_KEY) {
                        Some(i) if stdin_tty => (bytes[..i].to_vec(), true),
                        _ => (bytes, false),
                    };
                    if !data.is_empty() {
                        send(&opened.tx, In::Stdin(data.into())).await;
                    }
                    if detach {
                        break End::Detached;
                    }
                }
                None if !tty => {
                    send(&opened.tx, In::Eof(pb::attach_job_request::Eof {})).await;
                }
                None => {}
            },
            _ = sigs.winch.recv() => {
                if tty && writable && let Some((rows, cols)) = terminal::size() {
                    send(&opened.tx, In::Resize(pb::TtySize { rows: u32::from(rows), cols: u32::from(cols) })).await;
                }
            }
            _ = sigs.int.recv() => {
                if on_interrupt == OnInterrupt::Stop && !stopping {
                    stopping = true;
                    eprintln!("foreman: stopping {}/{} (Ctrl-C again detaches)", crew.name, job.handle);
                    let mut c = crew.client.clone();
                    let id = job.id.clone();
                    tokio::spawn(async move {
                        let _ = c.stop_job(pb::StopJobRequest { job: id, grace: None }).await;
                    });
                } else {
                    break End::Detached;
                }
            }
            _ = sigs.term.recv() => break End::Detached,
            _ = sigs.hup.recv() => break End::Detached,
        }
    };
    if matches!(end, End::Detached) {
        send(&opened.tx, In::Detach(pb::attach_job_request::Detach {})).await;
    }
    drop(raw);
    if tty {
        // Leave the terminal in a sane visible state whatever the job did.
        let _ = sink.write(b"\x1b[0m\x1b[?25h\r\n");
    }
    Ok(end)
}

/// The signals a session listens for.
struct Signals {
    winch: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, Failure> {
        let s = |k| signal(k).map_err(|e| Failure::Usage(format!("cannot listen for signals: {e}")));
        Ok(Self {
            winch: s(SignalKind::window_change())?,
            int: s(SignalKind::interrupt())?,
            term: s(SignalKind::terminate())?,
            hup: s(SignalKind::hangup())?,
        })
    }
}
