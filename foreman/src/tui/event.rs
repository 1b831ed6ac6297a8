//! Everything that feeds the loop: on a channel of its own, the terminal's
//! keys, mouse and resizes; on the other, a tick, one task per crew (its
//! connection and `WatchJobs`), one task per attach, and the answers to
//! effects.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use tasker_proto::v1 as pb;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use super::action::{Action, CrewEvent, CrewIx, Input, MemberOutput, Notice, SessionId};
use super::logview::LogRead;
use crate::client::{self, Crew};

/// What travels on the channel: an action, and for job output the credit
/// it holds until `update` has drawn it into the emulator.
#[derive(Debug)]
pub struct Event {
    pub action: Action,
    pub credit: Option<OwnedSemaphorePermit>,
}

pub type Tx = mpsc::Sender<Event>;

pub async fn send(tx: &Tx, action: Action) -> bool {
    tx.send(Event { action, credit: None }).await.is_ok()
}

/// Keys, mouse, paste and resizes from the terminal.
pub async fn terminal_input(tx: Tx, cancel: CancellationToken) {
    use crossterm::event::Event as T;
    let mut events = crossterm::event::EventStream::new();
    loop {
        let ev = tokio::select! {
            () = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let action = match ev {
            Some(Ok(T::Key(k))) => Action::Key(k),
            Some(Ok(T::Mouse(m))) => Action::Mouse(m),
            Some(Ok(T::Paste(p))) => Action::Paste(p),
            Some(Ok(T::Resize(c, r))) => Action::Resize(c, r),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return,
        };
        if !send(&tx, action).await {
            return;
        }
    }
}

/// Whether the terminal event is a person's doing (a key, a click, a
/// paste, a resize), as opposed to the mouse merely moving over the window:
/// its frame is drawn at once.
pub fn is_a_persons(action: &Action) -> bool {
    use crossterm::event::MouseEventKind;
    !matches!(
        action,
        Action::Mouse(m) if matches!(m.kind, MouseEventKind::Moved | MouseEventKind::Drag(_))
    )
}

/// A tick a second, for ages and "since" times.
pub async fn ticks(tx: Tx, cancel: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {
                if !send(&tx, Action::Tick(SystemTime::now())).await {
                    return;
                }
            }
        }
    }
}

/// Backoff before the next try: 0.5 s doubling to 30 s, ±20%.
pub fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(6)).min(30_000);
    // Jitter from the clock's nanoseconds: crews that failed together do
    // not all come back in step.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = (u64::from(nanos) % 400) as i64 - 200; // per mille
    Duration::from_millis((base as i64 + base as i64 * jitter / 1000).max(100) as u64)
}

/// Why a crew is down, for people: refused (certificate, permission) or
/// unreachable.
pub fn classify(status: &tonic::Status) -> (String, bool) {
    use tonic::Code;
    let text = client::explain(status);
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => (format!("permission: {}", status.message()), true),
        _ => {
            let lower = text.to_lowercase();
            let cert = [
                "certificate",
                "unknownissuer",
                "notvalidforname",
                "expired",
                "badencoding",
                "alert",
            ]
            .iter()
            .any(|w| lower.contains(w));
            if cert {
                (format!("certificate: {text}"), true)
            } else {
                (format!("unreachable: {text}"), false)
            }
        }
    }
}

/// One crew, for the life of the dashboard: connect, `Info`, `WatchJobs`,
/// forward every change; on any failure say why, back off, try again.
pub async fn watch_crew(ix: CrewIx, crew: Crew, tx: Tx, cancel: CancellationToken) {
    let mut attempt = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        let ended = tokio::select! {
            () = cancel.cancelled() => return,
            e = watch_once(ix, &crew, &tx) => e,
        };
        let Some((why, refused)) = ended else { return };
        if started.elapsed() > Duration::from_secs(30) {
            attempt = 0;
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        if !send(
            &tx,
            Action::Crew(
                ix,
                CrewEvent::Down {
                    why,
                    refused,
                    retry_in: delay,
                },
            ),
        )
        .await
        {
            return;
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One connection's worth of watching. `None`: the dashboard is gone.
async fn watch_once(ix: CrewIx, crew: &Crew, tx: &Tx) -> Option<(String, bool)> {
    let mut c = crew.client.clone();
    // A crew that accepts TCP and then says nothing must not hold us.
    let info = match tokio::time::timeout(Duration::from_secs(10), c.info(pb::InfoRequest {})).await {
        Err(_) => return Some(("unreachable: no answer in 10 s".into(), false)),
        Ok(Err(s)) => return Some(classify(&s)),
        Ok(Ok(r)) => r.into_inner(),
    };
    let mut stream = match c.watch_jobs(pb::WatchJobsRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Some(classify(&s)),
    };
    let up = CrewEvent::Up {
        identity: info.identity,
        role: info.role,
    };
    if !send(tx, Action::Crew(ix, up)).await {
        return None;
    }
    use pb::watch_jobs_response::Event as W;
    // A snapshot may come in parts; it is applied whole.
    let mut parts: Vec<pb::Job> = Vec::new();
    loop {
        let ev = match stream.message().await {
            Ok(Some(m)) => m.event,
            Ok(None) => return Some(("unreachable: the crew ended the stream".into(), false)),
            Err(s) => return Some(classify(&s)),
        };
        let ev = match ev {
            Some(W::Snapshot(s)) => {
                parts.extend(s.jobs);
                if s.more {
                    continue;
                }
                CrewEvent::Snapshot(std::mem::take(&mut parts))
            }
            Some(W::Created(j) | W::Changed(j)) => CrewEvent::Job(Box::new(j)),
            Some(W::Archived(j)) => CrewEvent::Archived(Box::new(j)),
            Some(W::Usage(u)) => CrewEvent::Usage(u.jobs),
            None => continue,
        };
        if !send(tx, Action::Crew(ix, ev)).await {
            return None;
        }
    }
}

/// The answer to a start, stop or archive, as an action.
pub async fn start(ix: CrewIx, crew: Crew, spec: pb::JobSpec, tx: Tx) {
    let mut c = crew.client.clone();
    let action = match c.start_job(pb::StartJobRequest { spec: Some(spec) }).await {
        Ok(r) => match r.into_inner().job {
            Some(job) => Action::Started(ix, Box::new(job)),
            None => Action::Done(Notice::error(format!("{}: the crew sent no job", crew.name))),
        },
        Err(s) => Action::Done(Notice::error(format!("{}: {}", crew.name, client::explain(&s)))),
    };
    send(&tx, action).await;
}

pub async fn stop(crew: Crew, job: String, label: String, tx: Tx) {
    let mut c = crew.client.clone();
    let action = match c.stop_job(pb::StopJobRequest { job, grace: None }).await {
        Ok(r) => {
            let summary = r
                .into_inner()
                .job
                .and_then(|j| j.outcome)
                .map(|o| crate::sanitize::Sanitizer::clean(&o.summary))
                .unwrap_or_default();
            Action::Done(Notice::info(format!("{label}: {summary}")))
        }
        Err(s) => Action::Done(Notice::error(format!("{label}: {}", client::explain(&s)))),
    };
    send(&tx, action).await;
}

/// The newest records of a job's trail the detail view shows.
const TRAIL_LINES: u32 = 12;

/// A job's audit trail, as lines for people (filtered).
pub async fn trail(crew: Crew, job: String, tx: Tx) {
    let mut c = crew.client.clone();
    let asked = pb::AuditTrailRequest {
        job: job.clone(),
        limit: TRAIL_LINES,
    };
    let trail = match tokio::time::timeout(Duration::from_secs(10), c.audit_trail(asked)).await {
        Ok(Ok(r)) => Ok(r
            .into_inner()
            .records
            .iter()
            .map(|r| crate::sanitize::Sanitizer::clean(&crate::present::audit_line(r)))
            .collect()),
        Ok(Err(s)) => Err(client::explain(&s)),
        Err(_) => Err(format!("{}: no answer in 10 s", crew.name)),
    };
    send(&tx, Action::Trail { job, trail }).await;
}

/// A job's stored output for the log view: its last `LOG_LIMIT` bytes,
/// with marks, up to where it is now, within 10 s. With `follow`, the
/// attach stays open and each later chunk is sent as it comes, until the
/// job ends or the session's sender is dropped (`Effect::Detach`).
pub async fn read_log(crew: Crew, job: String, follow: Option<(SessionId, mpsc::Receiver<Input>)>, tx: Tx) {
    use pb::attach_job_request::open::From;
    use pb::attach_job_response::Msg as Out;
    let session = follow.as_ref().map(|(s, _)| *s);
    let read = async {
        let request = client::attach::Request {
            job: &job,
            from: From::TailBytes(crate::tui::logview::LOG_LIMIT),
            write: false,
            queue: 4,
        };
        let marks = client::attach::Times {
            marks: true,
            ..client::attach::Times::default()
        };
        let mut opened = client::attach::open_timed(&crew, request, marks)
            .await
            .map_err(|e| match e {
                client::attach::OpenError::Status(s) => client::explain(&s),
                e => e.to_string(),
            })?;
        let end = opened.attached.end;
        let mut read = LogRead::at(opened.attached.offset);
        let mut ended = false;
        while read.end < end {
            match opened.stream.message().await {
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Output(o)),
                })) => read.output(o.offset, &o.data, o.marks),
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Dropped(d)),
                })) => read.dropped(d.offset, d.len),
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Ended(_) | Out::Until(_)),
                }))
                | Ok(None) => {
                    ended = true;
                    break;
                }
                Ok(Some(_)) => {}
                Err(s) => return Err(client::explain(&s)),
            }
        }
        Ok((read, opened, ended))
    };
    let read = match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(r) => r,
        Err(_) => Err(format!("{}: no answer in 10 s", crew.name)),
    };
    let (read, follow) = match read {
        Ok((read, opened, ended)) => {
            let follow = follow.map(|(s, input)| (s, input, opened, ended));
            (Ok(read), follow)
        }
        Err(e) => (Err(e), None),
    };
    if !send(
        &tx,
        Action::Log {
            job,
            follow: session,
            read,
        },
    )
    .await
    {
        return;
    }
    let Some((session, mut input, mut opened, ended)) = follow else {
        return;
    };
    if ended {
        send(
            &tx,
            Action::LogMore {
                session,
                more: Ok(None),
            },
        )
        .await;
        return;
    }
    let mut end = opened.attached.end;
    loop {
        let more = tokio::select! {
            // The view let go (closed, read again, F again).
            None = input.recv() => return,
            m = opened.stream.message() => m,
        };
        let mut chunk = LogRead::at(end);
        let (more, last) = match more {
            Ok(Some(pb::AttachJobResponse {
                msg: Some(Out::Output(o)),
            })) => {
                chunk.output(o.offset, &o.data, o.marks);
                (Ok(Some(chunk)), false)
            }
            Ok(Some(pb::AttachJobResponse {
                msg: Some(Out::Dropped(d)),
            })) => {
                chunk.dropped(d.offset, d.len);
                (Ok(Some(chunk)), false)
            }
            Ok(Some(pb::AttachJobResponse {
                msg: Some(Out::Ended(_) | Out::Until(_)),
            }))
            | Ok(None) => (Ok(None), true),
            Ok(Some(_)) => continue,
            Err(s) => (Err(client::explain(&s)), true),
        };
        if let Ok(Some(c)) = &more {
            end = c.end;
        }
        if !send(&tx, Action::LogMore { session, more }).await || last {
            return;
        }
    }
}

/// Output kept per member for the gathered view; past it, counted.
pub const GATHER_LIMIT: usize = 256 << 10;

/// Reads each member's output from its start to where it is now, all at
/// once, and sends them back together.
pub async fn gather(batch: String, members: Vec<(CrewIx, Crew, String)>, tx: Tx) {
    let reads = members.into_iter().map(|(ix, crew, job)| async move {
        let (output, cut) = match read_output(&crew, &job).await {
            Ok((out, cut)) => (Ok(out), cut),
            Err(why) => (Err(why), 0),
        };
        MemberOutput {
            crew: ix,
            job,
            output,
            cut,
        }
    });
    let outputs = futures_util::future::join_all(reads).await;
    send(&tx, Action::Gathered { batch, outputs }).await;
}

/// A job's output up to its end now (kept up to `GATHER_LIMIT`), within
/// 10 s.
async fn read_output(crew: &Crew, job: &str) -> Result<(Vec<u8>, u64), String> {
    use pb::attach_job_request::open::{Beginning, From};
    use pb::attach_job_response::Msg as Out;
    let read = async {
        let request = client::attach::Request {
            job,
            from: From::Beginning(Beginning {}),
            write: false,
            queue: 4,
        };
        let mut opened = client::attach::open(crew, request).await.map_err(|e| match e {
            client::attach::OpenError::Status(s) => client::explain(&s),
            e => e.to_string(),
        })?;
        let end = opened.attached.end;
        let mut offset = opened.attached.offset;
        let (mut kept, mut cut) = (Vec::new(), 0u64);
        while offset < end {
            match opened.stream.message().await {
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Output(o)),
                })) => {
                    offset = o.offset + o.data.len() as u64;
                    let keep = o.data.len().min(GATHER_LIMIT.saturating_sub(kept.len()));
                    kept.extend_from_slice(&o.data[..keep]);
                    cut += (o.data.len() - keep) as u64;
                }
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Dropped(d)),
                })) => offset = d.offset + d.len,
                Ok(Some(pb::AttachJobResponse {
                    msg: Some(Out::Ended(_)),
                }))
                | Ok(None) => break,
                Ok(Some(_)) => {}
                Err(s) => return Err(client::explain(&s)),
            }
        }
        Ok((kept, cut))
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| Err(format!("{}: no answer in 10 s", crew.name)))
}

pub async fn archive(crew: Crew, job: String, label: String, tx: Tx) {
    let mut c = crew.client.clone();
    let answer = c.archive_job(pb::ArchiveJobRequest { job }).await;
    send(&tx, done(&label, "archived", answer)).await;
}

pub async fn unarchive(crew: Crew, job: String, label: String, tx: Tx) {
    let mut c = crew.client.clone();
    let answer = c.unarchive_job(pb::UnarchiveJobRequest { job }).await;
    send(&tx, done(&label, "un-archived", answer)).await;
}

/// A call on a job, for the status bar: "LABEL DID", or why it failed.
fn done<T>(label: &str, did: &str, answer: Result<T, tonic::Status>) -> Action {
    Action::Done(match answer {
        Ok(_) => Notice::info(format!("{label} {did}")),
        Err(s) => Notice::error(format!("{label}: {}", client::explain(&s))),
    })
}

/// A crew's archived jobs, every page, within 10 s.
pub async fn list_archived(ix: CrewIx, crew: Crew, tx: Tx) {
    let list = async {
        let mut c = crew.client.clone();
        let (mut jobs, mut token) = (Vec::new(), String::new());
        loop {
            let page = c
                .list_jobs(pb::ListJobsRequest {
                    include_archived: true,
                    page_size: 0,
                    page_token: token,
                })
                .await
                .map_err(|s| client::explain(&s))?
                .into_inner();
            jobs.extend(page.jobs.into_iter().filter(|j| j.archived));
            if page.next_page_token.is_empty() {
                return Ok(jobs);
            }
            token = page.next_page_token;
        }
    };
    let listed = match tokio::time::timeout(Duration::from_secs(10), list).await {
        Ok(r) => r,
        Err(_) => Err(format!("{}: no answer in 10 s", crew.name)),
    };
    send(&tx, Action::ArchivedJobs(ix, listed)).await;
}

/// Discovery asked again: every `refresh`, and within a second of a change
/// to a discovery file; each answer goes to the dashboard.
pub async fn rediscover(
    d: crate::config::Discovery,
    statics: Vec<crate::config::CrewEntry>,
    out: mpsc::Sender<crate::discovery::Found>,
    cancel: CancellationToken,
) {
    let every = crate::discovery::refresh(&d);
    let mut stamp = crate::discovery::files_stamp(&d);
    let mut asked = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = crate::discovery::files_stamp(&d);
        if now == stamp && asked.elapsed() < every {
            continue;
        }
        stamp = now;
        asked = tokio::time::Instant::now();
        let found = tokio::select! {
            () = cancel.cancelled() => return,
            f = crate::discovery::discover(&d, &statics) => f,
        };
        if out.send(found).await.is_err() {
            return;
        }
    }
}
