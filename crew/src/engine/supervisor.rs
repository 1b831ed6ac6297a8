//! One task per job in the crew: it listens to the job's shim, forwards
//! stdin, resizes and stops to it, enforces the timeout and the stop's grace
//! period, and when the shim reports the end, records the final state and
//! removes the cgroup.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::cgroup::JobCgroup;
use super::error::EngineError;
use super::job::{Ended, JobState, Outcome, Termination, Totals};
use super::registry::{Control, JobChannels, JobEntry, StdinOp, StopReason};
use tasker_shim::wire::{FromShim, MAX_FROM_SHIM, STDIN_CHUNK, ToShim};

use super::spawn::{ShimLink, drain_eventfd, try_recv, try_send};

type Reply = oneshot::Sender<Result<(), EngineError>>;

pub(crate) struct Supervisor {
    pub entry: Arc<JobEntry>,
    /// When the command started; `None` if it failed to.
    pub started_at: Option<SystemTime>,
    /// Why it failed to start, as far as the crew knows (the shim may say
    /// more).
    pub start_failed: Option<String>,
    pub link: ShimLink,
    pub cgroup: Arc<JobCgroup>,
    pub channels: JobChannels,
    pub timeout: Option<Duration>,
    /// The grace period of a stop made by the timeout.
    pub default_grace: Duration,
}

/// What the shim has told us so far.
#[derive(Default)]
struct Heard {
    started_at: Option<SystemTime>,
    start_failed: Option<String>,
    exited: Option<(Option<i32>, Option<String>)>,
    eof: bool,
}

impl Supervisor {
    pub(crate) async fn run(self) {
        let Self {
            entry,
            started_at,
            start_failed,
            link,
            cgroup,
            mut channels,
            timeout,
            default_grace,
        } = self;
        let job = entry.info().handle;
        let mut heard = Heard {
            started_at,
            start_failed,
            ..Heard::default()
        };
        let mut outbox: VecDeque<(Vec<u8>, Option<Reply>)> = VecDeque::new();
        let mut stdin_open = true;
        let mut stop: Option<StopReason> = None;
        let timeout_at: Option<Instant> = started_at.and(timeout).map(|t| Instant::now() + t);
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;

        while !heard.eof && heard.exited.is_none() {
            let timeout_deadline = if stop.is_none() { timeout_at } else { None };
            let kill_deadline = if killed { None } else { kill_at };
            let timeout_due = async move {
                match timeout_deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let kill_due = async move {
                match kill_deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ready = link.ctl.readable() => match ready {
                    Ok(mut guard) => loop {
                        // On the stack: a running job holds no buffer.
                        let mut buf = [0u8; MAX_FROM_SHIM];
                        match try_recv(&link, &mut buf) {

                            Ok(Some(0)) | Err(_) => {
                                heard.eof = true;
                                break;
                            }
                            Ok(Some(n)) => match FromShim::decode(&buf[..n]) {
                                Ok(msg) => heard.apply(msg, &job, &mut stdin_open),
                                Err(e) => tracing::warn!(%job, error = %e, "bad message from shim"),
                            },
                            Ok(None) => {
                                guard.clear_ready();
                                break;
                            }
                        }
                    },
                    Err(_) => heard.eof = true,
                },
                ready = link.events.readable() => {
                    if let Ok(mut guard) = ready {
                        while drain_eventfd(&link) {}
                        guard.clear_ready();
                        entry.output_grew();
                    }
                }
                Some(control) = channels.control.recv() => match control {
                    Control::Stop { grace, reason } => {
                        begin_stop(&mut stop, &mut kill_at, &mut outbox, reason, grace);
                    }
                    Control::Resize(size) => outbox.push_back((
                        ToShim::Resize { rows: size.rows, cols: size.cols }.encode(),
                        None,
                    )),
                },
                Some(op) = channels.stdin.recv(), if outbox.is_empty() => match op {
                    StdinOp::Data(bytes, reply) if stdin_open => {
                        let mut chunks = bytes.chunks(STDIN_CHUNK).peekable();
                        if chunks.peek().is_none() {
                            let _ = reply.send(Ok(()));
                        } else {
                            let mut reply = Some(reply);
                            while let Some(c) = chunks.next() {
                                let last = chunks.peek().is_none();
                                let r = if last { reply.take() } else { None };
                                outbox.push_back((ToShim::Stdin(c.to_vec()).encode(), r));
                            }
                        }
                    }
                    StdinOp::Close(reply) if stdin_open => {
                        stdin_open = false;
                        outbox.push_back((ToShim::CloseStdin.encode(), Some(reply)));
                    }
                    StdinOp::Data(_, reply) | StdinOp::Close(reply) => {
                        let _ = reply.send(Err(EngineError::StdinClosed(job.clone())));
                    }
                },
                ready = link.ctl.writable(), if !outbox.is_empty() => {
                    if let Ok(mut guard) = ready && !flush(&link, &mut outbox) {
                        guard.clear_ready();
                    }
                }
                () = timeout_due => {
                    tracing::info!(%job, "timeout reached; stopping the job");
                    begin_stop(&mut stop, &mut kill_at, &mut outbox, StopReason::Timeout, default_grace);
                }
                () = kill_due => {
                    killed = true;
                    tracing::info!(%job, "grace period over; killing every process of the job");
                    let cg = Arc::clone(&cgroup);
                    match tokio::task::spawn_blocking(move || cg.kill()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(%job, error = %e, "cgroup kill failed"),
                        Err(e) => tracing::warn!(%job, error = %e, "cgroup kill task failed"),
                    }
                    outbox.push_back((ToShim::Kill.encode(), None));
                }
            }
            // Try to send right away; the writable branch takes over when
            // the socket is full.
            if !outbox.is_empty() {
                flush(&link, &mut outbox);
            }
        }

        for (_, reply) in outbox.drain(..) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(EngineError::StdinClosed(job.clone())));
            }
        }
        channels.stdin.close();
        while let Some(op) = channels.stdin.recv().await {
            let (StdinOp::Data(_, reply) | StdinOp::Close(reply)) = op;
            let _ = reply.send(Err(EngineError::StdinClosed(job.clone())));
        }

        let (totals, cleanup_error) = finish_processes(link, Arc::clone(&cgroup), &job).await;
        let outcome = decide_outcome(&heard, stop, totals.oom_kills);
        let output_error = heard
            .exited
            .as_ref()
            .and_then(|(_, e)| e.clone())
            .or(cleanup_error);
        tracing::info!(%job, %outcome, "job ended");
        entry.set_state(JobState::Ended(Ended {
            started_at: heard.started_at,
            ended_at: SystemTime::now(),
            outcome,
            totals,
            output_error,
        }));
    }
}

impl Heard {
    fn apply(&mut self, msg: FromShim, job: &str, stdin_open: &mut bool) {
        match msg {
            FromShim::StartFailed { reason } => {
                tracing::info!(%job, %reason, "job failed to start");
                self.start_failed = Some(reason);
            }
            FromShim::StdinClosed { reason } => {
                tracing::debug!(%job, %reason, "stdin closed");
                *stdin_open = false;
            }
            FromShim::Log { message } => tracing::warn!(%job, %message, "shim"),
            FromShim::Exited {
                status, output_error, ..
            } => self.exited = Some((status, output_error)),
        }
    }
}

/// The first stop sets the reason and sends SIGTERM; every stop may bring
/// the SIGKILL deadline closer.
fn begin_stop(
    stop: &mut Option<StopReason>,
    kill_at: &mut Option<Instant>,
    outbox: &mut VecDeque<(Vec<u8>, Option<Reply>)>,
    reason: StopReason,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    *kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
    if stop.is_none() {
        *stop = Some(reason);
        outbox.push_back((ToShim::Terminate.encode(), None));
    }
}

/// Sends what the outbox holds; `false` if the socket filled up first.
fn flush(link: &ShimLink, outbox: &mut VecDeque<(Vec<u8>, Option<Reply>)>) -> bool {
    while let Some((msg, _)) = outbox.front() {
        match try_send(link, msg) {
            Ok(true) => {
                if let Some((_, Some(reply))) = outbox.pop_front() {
                    let _ = reply.send(Ok(()));
                }
            }
            Ok(false) => return false,
            // The shim is gone; its EOF ends the loop.
            Err(_) => {
                outbox.clear();
                return true;
            }
        }
    }
    true
}

/// Reaps the shim, makes sure nothing of the job is left, reads the totals
/// and removes the cgroup.
async fn finish_processes(link: ShimLink, cgroup: Arc<JobCgroup>, job: &str) -> (Totals, Option<String>) {
    let ShimLink {
        ctl,
        events,
        mut child,
    } = link;
    drop((ctl, events));
    let job = job.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = child.wait() {
            tracing::warn!(%job, error = %e, "reaping the shim");
        }
        let mut problem = None;
        // Only a shim that died abnormally leaves processes behind: its init
        // dies with it, and the kernel kills the PID namespace.
        if cgroup.populated().unwrap_or(false) {
            problem = Some("the job's shim died; its processes were killed".to_owned());
            if let Err(e) = cgroup
                .kill()
                .and_then(|()| cgroup.wait_empty(Duration::from_secs(10)))
            {
                tracing::error!(%job, error = %e, "could not empty the job's cgroup");
            }
        }
        let totals = cgroup.totals();
        if let Err(e) = cgroup.remove() {
            tracing::error!(%job, error = %e, "could not remove the job's cgroup");
        }
        (totals, problem)
    })
    .await
    .unwrap_or_else(|e| (Totals::default(), Some(format!("cleanup task failed: {e}"))))
}

fn decide_outcome(heard: &Heard, stop: Option<StopReason>, oom_kills: u64) -> Outcome {
    if let Some(reason) = &heard.start_failed {
        return Outcome::StartFailed(reason.clone());
    }
    let Some((Some(status), _)) = &heard.exited else {
        return Outcome::Lost("the job's shim exited without reporting the job's end".into());
    };
    let t = Termination::from_wait_status(*status);
    match stop {
        Some(StopReason::Timeout) => Outcome::TimedOut(t),
        Some(StopReason::By(who)) => Outcome::StoppedBy { who, termination: t },
        // The kernel's counter says the OOM killer acted in this cgroup; if
        // the command then failed, that is why. A job whose child was
        // OOM-killed but which still succeeded is a success.
        None if oom_kills > 0 && t != Termination::Exited(0) => Outcome::OomKilled(t),
        None => Outcome::Finished(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(status: i32) -> Heard {
        Heard {
            exited: Some((Some(status), None)),
            ..Heard::default()
        }
    }

    #[test]
    fn oom_needs_the_kernel_counter() {
        // SIGKILL alone is not an OOM kill.
        assert_eq!(
            decide_outcome(&exited(9), None, 0),
            Outcome::Finished(Termination::Signaled(9))
        );
        assert_eq!(
            decide_outcome(&exited(9), None, 1),
            Outcome::OomKilled(Termination::Signaled(9))
        );
        assert_eq!(
            decide_outcome(&exited(0), None, 1),
            Outcome::Finished(Termination::Exited(0))
        );
    }

    #[test]
    fn stops_and_failures_take_precedence() {
        assert_eq!(
            decide_outcome(&exited(15), Some(StopReason::By("bob".into())), 0),
            Outcome::StoppedBy {
                who: "bob".into(),
                termination: Termination::Signaled(15)
            }
        );
        assert_eq!(
            decide_outcome(&exited(9), Some(StopReason::Timeout), 1),
            Outcome::TimedOut(Termination::Signaled(9))
        );
        let failed = Heard {
            start_failed: Some("no such file: /x".into()),
            exited: Some((Some(127 << 8), None)),
            ..Heard::default()
        };
        assert_eq!(
            decide_outcome(&failed, None, 0),
            Outcome::StartFailed("no such file: /x".into())
        );
        assert!(matches!(
            decide_outcome(&Heard::default(), None, 0),
            Outcome::Lost(_)
        ));
    }
}
