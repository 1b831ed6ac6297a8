//! WatchJobs: a snapshot of every job not archived, then each change as it
//! happens, plus every `usage_every` the usage figures of running jobs
//! that changed since this watcher last heard them.
//!
//! The engine's events are a bounded broadcast: a watcher that falls too
//! far behind (a client not reading) is sent a fresh snapshot instead of
//! the events it missed, so it costs bounded memory and still converges.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tasker_proto::v1 as pb;
use tasker_proto::v1::watch_jobs_response::{Event, Snapshot, UsageReport};
use tokio::sync::{broadcast, mpsc};
use tonic::{Request, Response, Status};

use super::reader;
use crate::api::convert;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::{JobEvent, JobId, JobState};

type Stream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::WatchJobsResponse, Status>> + Send + 'static>,
>;

pub fn handle(state: &Arc<State>, req: Request<pb::WatchJobsRequest>) -> Result<Response<Stream>, ApiError> {
    reader(state, &req, "watch")?;
    let (tx, rx) = mpsc::channel(16);
    // Subscribed before the snapshot is taken: no change falls between.
    let events = state.engine.subscribe();
    tokio::spawn(run(Arc::clone(state), events, tx));
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

type Tx = mpsc::Sender<Result<pb::WatchJobsResponse, Status>>;

async fn run(state: Arc<State>, events: broadcast::Receiver<JobEvent>, tx: Tx) {
    follow(state, events, tx).await;
    crate::api::reclaim::soon();
}

async fn follow(state: Arc<State>, mut events: broadcast::Receiver<JobEvent>, tx: Tx) {
    let mut tick = tokio::time::interval(state.usage_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    let mut last_cpu: HashMap<JobId, (u64, Instant)> = HashMap::new();
    let mut sent: HashMap<JobId, Sent> = HashMap::new();
    if !send_snapshot(&state, &tx).await {
        return;
    }
    loop {
        let event = tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tx.closed() => return,
            ev = events.recv() => match ev {
                Ok(JobEvent::Created(j)) if !j.archived => Event::Created(convert::job_summary(&j)),
                Ok(JobEvent::StateChanged(j)) if !j.archived => Event::Changed(convert::job_summary(&j)),
                Ok(JobEvent::Archived(j)) => Event::Archived(convert::job_summary(&j)),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !send_snapshot(&state, &tx).await {
                        return;
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => match usage(&state, &mut last_cpu, &mut sent) {
                Some(report) => report,
                // Nothing changed: nothing to say (a dashboard of 250 idle
                // crews must not wake 250 times a second).
                None => continue,
            },
        };
        if !send(&state, &tx, event).await {
            return;
        }
    }
}

/// Every job not archived, in messages of about a megabyte (`more` on all
/// but the last), so that no number or size of jobs outgrows a message.
async fn send_snapshot(state: &State, tx: &Tx) -> bool {
    // Read from the store a thousand at a time; sent by size.
    const READ: usize = 1000;
    let mut after = 0;
    let mut read = state.engine.page(false, after, READ);
    let mut rest = read.iter().peekable();
    loop {
        let (page, mut more) = super::list::page(&mut rest, usize::MAX);
        if !more && read.len() == READ {
            after = read.last().map_or(u64::MAX, super::list::seq);
            read = state.engine.page(false, after, READ);
            more = !read.is_empty();
            rest = read.iter().peekable();
        }
        if !send(state, tx, Event::Snapshot(Snapshot { jobs: page, more })).await {
            return false;
        }
        if !more {
            return true;
        }
    }
}

/// A job's figures as last sent to this watcher: cores in thousandths,
/// memory in bytes.
type Sent = (u64, u64);

/// The running jobs' figures that changed since this watcher last heard
/// them (a job that stopped using cpu is sent once more, with 0); None
/// when none did.
fn usage(
    state: &State,
    last: &mut HashMap<JobId, (u64, Instant)>,
    sent: &mut HashMap<JobId, Sent>,
) -> Option<Event> {
    let now = Instant::now();
    let mut jobs = Vec::new();
    let mut seen = HashMap::new();
    let mut still = HashMap::new();
    for job in state.engine.running_jobs() {
        if !matches!(job.state, JobState::Running { .. }) {
            continue;
        }
        let Some(u) = state.engine.usage(&job.id) else {
            continue;
        };
        let cores = match last.get(&job.id) {
            Some((cpu, at)) if now > *at => {
                u.cpu_usec.saturating_sub(*cpu) as f64 / now.duration_since(*at).as_micros() as f64
            }
            _ => 0.0,
        };
        seen.insert(job.id.clone(), (u.cpu_usec, now));
        let figures = ((cores * 1000.0).round() as u64, u.memory_bytes);
        if sent.get(&job.id) != Some(&figures) {
            jobs.push(convert::usage(job.id.as_str(), u, cores));
        }
        still.insert(job.id, figures);
    }
    *last = seen;
    *sent = still;
    (!jobs.is_empty()).then_some(Event::Usage(UsageReport { jobs }))
}

/// Sends one event; `false` when the watcher is gone or the crew stops.
async fn send(state: &State, tx: &Tx, event: Event) -> bool {
    let msg = Ok(pb::WatchJobsResponse { event: Some(event) });
    tokio::select! {
        () = state.shutdown.cancelled() => false,
        sent = tx.send(msg) => sent.is_ok(),
    }
}
