//! One attach, as a task: opens it (`client::attach::open`), forwards the
//! job's output within a credit, passes input on, and detaches when its
//! sender is dropped.
//!
//! A job outlives its crew's restarts, so an attach does too: when the
//! stream breaks (the crew restarted, the network blinked) the task says
//! so, waits, and opens it again from the byte after the last one it
//! passed on, so the pane goes on without a gap or a repeat. Only an
//! answer that will not change (the job is not there, we may not see it)
//! ends it.

use std::sync::Arc;

use bytes::Bytes;
use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg as In, open::Beginning, open::From};
use tasker_proto::v1::attach_job_response::Msg as Out;
use tokio::sync::{Semaphore, mpsc};

use super::action::{Action, AttachEvent, Input, SessionId};
use super::event::{Event, Tx, backoff, send};
use crate::client::attach::{self, OpenError, Opened};
use crate::client::{self, Crew};

/// Output in flight between an attach task and `update`: bounded, so that
/// a job writing as fast as it can never queues more than this ahead of a
/// key press.
pub const OUTPUT_CREDIT: usize = 512 << 10;
const CHUNK: usize = 64 << 10;

/// How one opened stream ended.
enum Over {
    /// The job ended, the crew closed it, we detached, or the dashboard is
    /// going: nothing more to do.
    Done,
    /// It broke: worth opening again.
    Broken(String),
}

pub async fn run(
    session: SessionId,
    crew: Crew,
    job: String,
    write: bool,
    tx: Tx,
    mut input: mpsc::Receiver<Input>,
) {
    let credit = Arc::new(Semaphore::new(OUTPUT_CREDIT));
    let ev = |e: AttachEvent| Action::Attach(session, e);
    // The offset of the next byte we want: none until the crew says where
    // the stream starts.
    let mut next: Option<u64> = None;
    let mut attempt = 0u32;
    loop {
        let from = next.map_or(From::Beginning(Beginning {}), From::Offset);
        let request = attach::Request {
            job: &job,
            from,
            write,
            queue: 64,
        };
        // Marks, so that a pipe job's stderr can be told apart.
        let marks = attach::Times {
            marks: true,
            ..attach::Times::default()
        };
        let opened = match attach::open_timed(&crew, request, marks).await {
            Ok(o) => o,
            Err(OpenError::Status(s)) if next.is_some() && transient(&s) => {
                // Still away: try again, unless we were detached meanwhile.
                if !wait(&mut input, &mut attempt).await {
                    return;
                }
                continue;
            }
            Err(OpenError::Status(s)) => {
                send(&tx, ev(AttachEvent::Closed(Some(client::explain(&s))))).await;
                return;
            }
            Err(OpenError::NotStarted) => {
                send(&tx, ev(AttachEvent::Closed(None))).await;
                return;
            }
        };
        attempt = 0;
        next = Some(next.unwrap_or(opened.attached.offset));
        match follow(session, opened, &mut next, &credit, &tx, &mut input).await {
            Over::Done => return,
            Over::Broken(why) => {
                if !send(&tx, ev(AttachEvent::Interrupted(why))).await
                    || !wait(&mut input, &mut attempt).await
                {
                    return;
                }
            }
        }
    }
}

/// Follows one opened stream until it ends or breaks; `next` moves past
/// every byte passed on (or reported dropped).
async fn follow(
    session: SessionId,
    opened: Opened,
    next: &mut Option<u64>,
    credit: &Arc<Semaphore>,
    tx: &Tx,
    input: &mut mpsc::Receiver<Input>,
) -> Over {
    let ev = |e: AttachEvent| Action::Attach(session, e);
    let Opened {
        mut stream,
        tx: req_tx,
        attached,
    } = opened;
    if !send(
        tx,
        ev(AttachEvent::Opened {
            writable: attached.writable,
        }),
    )
    .await
    {
        return Over::Done;
    }
    loop {
        tokio::select! {
            msg = stream.message() => {
                let event = match msg {
                    Ok(Some(pb::AttachJobResponse { msg: Some(m) })) => m,
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        send(tx, ev(AttachEvent::Closed(None))).await;
                        return Over::Done;
                    }
                    Err(s) if transient(&s) => return Over::Broken(client::explain(&s)),
                    Err(s) => {
                        send(tx, ev(AttachEvent::Closed(Some(client::explain(&s))))).await;
                        return Over::Done;
                    }
                };
                let ok = match event {
                    Out::Attached(a) => send(tx, ev(AttachEvent::Opened { writable: a.writable })).await,
                    Out::Output(o) => {
                        // A reopened stream starts where we asked; never
                        // pass a byte on twice.
                        let skip = next.map_or(0, |n| n.saturating_sub(o.offset));
                        let end = o.offset + o.data.len() as u64;
                        *next = Some(next.map_or(end, |n| n.max(end)));
                        let from = usize::try_from(skip).unwrap_or(usize::MAX).min(o.data.len());
                        let data = stderr_apart(o.offset + from as u64, o.data.slice(from..), &o.marks);
                        forward(tx, credit, session, data).await
                    }
                    Out::Dropped(d) => {
                        *next = Some(next.map_or(d.offset + d.len, |n| n.max(d.offset + d.len)));
                        send(tx, ev(AttachEvent::Dropped(d.len))).await
                    }
                    Out::Ended(j) => send(tx, ev(AttachEvent::Ended(Box::new(j)))).await,
                    // The pane never asks for an until.
                    Out::Until(_) => true,
                };
                if !ok {
                    return Over::Done;
                }
            }
            cmd = input.recv() => {
                let msg = match cmd {
                    Some(Input::Bytes(b)) => In::Stdin(b.into()),
                    Some(Input::Eof) => In::Eof(pb::attach_job_request::Eof {}),
                    Some(Input::Resize(rows, cols)) => In::Resize(pb::TtySize {
                        rows: u32::from(rows),
                        cols: u32::from(cols),
                    }),
                    None => {
                        // Detached (or quitting): say so, so the crew ends
                        // the stream at once.
                        let _ = req_tx
                            .send(pb::AttachJobRequest {
                                msg: Some(In::Detach(pb::attach_job_request::Detach {})),
                            })
                            .await;
                        return Over::Done;
                    }
                };
                if req_tx.send(pb::AttachJobRequest { msg: Some(msg) }).await.is_err() {
                    return Over::Broken("the crew's stream is gone".into());
                }
            }
        }
    }
}

/// A failure that may pass: the crew away or restarting, the connection
/// broken. Not an answer about the job or about us.
fn transient(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::Aborted
    ) && !super::event::classify(status).1
}

/// Waits before the next try; `false` if we were detached meanwhile (input
/// typed while away is dropped: it has nowhere to go).
async fn wait(input: &mut mpsc::Receiver<Input>, attempt: &mut u32) -> bool {
    let pause = tokio::time::sleep(backoff(*attempt).min(std::time::Duration::from_secs(5)));
    *attempt += 1;
    tokio::pin!(pause);
    loop {
        tokio::select! {
            () = &mut pause => return true,
            cmd = input.recv() => if cmd.is_none() { return false },
        }
    }
}

/// A pipe job's stderr in red (SGR 31, then the default colour back), so
/// that the pane tells it from stdout; anything else as it came.
fn stderr_apart(offset: u64, data: Bytes, marks: &[pb::Mark]) -> Bytes {
    if !marks.iter().any(|m| m.stream() == pb::Stream::Stderr) {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    for (_, part, mark) in crate::times::segments(offset, &data, marks) {
        if mark.is_some_and(|m| m.stream() == pb::Stream::Stderr) {
            out.extend_from_slice(b"\x1b[31m");
            out.extend_from_slice(part);
            out.extend_from_slice(b"\x1b[39m");
        } else {
            out.extend_from_slice(part);
        }
    }
    Bytes::from(out)
}

/// Sends output in chunks, each holding credit until drawn.
async fn forward(tx: &Tx, credit: &Arc<Semaphore>, session: SessionId, data: Bytes) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        let n = rest.len().min(CHUNK);
        let chunk = rest.split_to(n);
        let Ok(permit) = Arc::clone(credit).acquire_many_owned(n as u32).await else {
            return false;
        };
        let event = Event {
            action: Action::Attach(session, AttachEvent::Output(chunk)),
            credit: Some(permit),
        };
        if tx.send(event).await.is_err() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(offset: u64, stream: pb::Stream) -> pb::Mark {
        pb::Mark {
            offset,
            time: None,
            stream: stream.into(),
        }
    }

    #[test]
    fn a_pipe_jobs_stderr_is_red_in_the_pane() {
        let marks = [
            mark(0, pb::Stream::Stdout),
            mark(4, pb::Stream::Stderr),
            mark(8, pb::Stream::Stdout),
        ];
        let shown = stderr_apart(0, Bytes::from_static(b"out\nerr\nout\n"), &marks);
        assert_eq!(&shown[..], b"out\n\x1b[31merr\n\x1b[39mout\n");
        // A chunk that starts inside the stderr part.
        let shown = stderr_apart(6, Bytes::from_static(b"r\nou"), &marks);
        assert_eq!(&shown[..], b"\x1b[31mr\n\x1b[39mou");
        // Only stdout (or a tty): untouched.
        let plain = Bytes::from_static(b"x\n");
        assert_eq!(stderr_apart(0, plain.clone(), &marks[..1]), plain);
    }
}
