//! One task per job in the crew: it listens to the job's shim, forwards
//! stdin, resizes and stops to it, enforces the timeout and the stop's grace
//! period, and when the shim reports the end, records the final state and
//! removes the cgroup.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::unix::AsyncFdReadyGuard;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cgroup::JobCgroup;
use super::error::EngineError;
use super::job::{Ended, Outcome, Termination, Totals};
use super::registry::{Control, JobChannels, JobEntry, Registry, StdinOp, StopReason};
use tasker_shim::wire::{FromShim, MAX_FROM_SHIM, STDIN_CHUNK, ToShim};

use super::spawn::{ShimLink, drain_eventfd, try_recv, try_send};

type Reply = oneshot::Sender<Result<(), EngineError>>;

/// What a supervisor starts with.
pub(crate) struct SupervisorArgs {
    pub entry: Arc<JobEntry>,
    /// When the command started; `None` if it failed to.
    pub started_at: Option<SystemTime>,
    /// Why it failed to start, as far as the crew knows (the shim may say
    /// more).
    pub start_failed: Option<String>,
    pub link: ShimLink,
    pub cgroup: Arc<JobCgroup>,
    pub channels: JobChannels,
    /// Time left until the job's timeout (the whole timeout for a job just
    /// started; what remains of it for one adopted).
    pub timeout: Option<Duration>,
    /// The grace period of a stop made by the timeout.
    pub default_grace: Duration,
    /// Whether the job's stdin is still open (an adopted job's may not be).
    pub stdin_open: bool,
    pub registry: Arc<Registry>,
    /// Cancelled when the crew leaves its jobs running (it exits): the
    /// supervisor lets go of the shim without a word, and the job goes on.
    pub leave: CancellationToken,
}

/// The task that follows one job: a loop over events (the shim's messages,
/// new output, requests, stdin, the socket's room, the timeout, the end of
/// a stop's grace), one method each.
pub(crate) struct Supervisor {
    entry: Arc<JobEntry>,
    /// The job's handle, for logs.
    job: String,
    link: ShimLink,
    cgroup: Arc<JobCgroup>,
    channels: JobChannels,
    default_grace: Duration,
    registry: Arc<Registry>,
    leave: CancellationToken,
    heard: Heard,
    /// Messages for the shim, each with whom to tell once it is sent.
    outbox: VecDeque<(Vec<u8>, Option<Reply>)>,
    stdin_open: bool,
    /// Why the job is being stopped, once it is.
    stop: Option<StopReason>,
    timeout_at: Option<Instant>,
    /// When a stop's grace period ends (the earliest of all stops').
    kill_at: Option<Instant>,
    killed: bool,
}

/// What the shim has told us so far.
#[derive(Default)]
struct Heard {
    started_at: Option<SystemTime>,
    start_failed: Option<String>,
    exited: Option<(Option<i32>, Option<String>)>,
    eof: bool,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    pub(crate) fn new(args: SupervisorArgs) -> Self {
        let SupervisorArgs {
            entry,
            started_at,
            start_failed,
            link,
            cgroup,
            channels,
            timeout,
            default_grace,
            stdin_open,
            registry,
            leave,
        } = args;
        Self {
            job: entry.info().handle,
            entry,
            link,
            cgroup,
            channels,
            default_grace,
            registry,
            leave,
            heard: Heard {
                started_at,
                start_failed,
                ..Heard::default()
            },
            outbox: VecDeque::new(),
            stdin_open,
            stop: None,
            timeout_at: started_at.and(timeout).map(|t| Instant::now() + t),
            kill_at: None,
            killed: false,
        }
    }

    pub(crate) async fn run(mut self) {
        while !self.heard.eof && self.heard.exited.is_none() {
            let timeout_due = sleep_until(self.timeout_at.filter(|_| self.stop.is_none()));
            let kill_due = sleep_until(self.kill_at.filter(|_| !self.killed));
            tokio::select! {
                () = self.leave.cancelled() => {
                    // The job runs on without us; its shim, if ours, is
                    // reaped when it ends (see `ShimLink`'s drop).
                    return;
                }
                ready = self.link.ctl.readable() => {
                    let (messages, eof) = match ready {
                        Ok(guard) => receive(&self.link, guard),
                        Err(_) => (Vec::new(), true),
                    };
                    self.on_messages(messages, eof);
                }
                ready = self.link.events.readable() => {
                    if let Ok(mut guard) = ready {
                        while drain_eventfd(&self.link) {}
                        guard.clear_ready();
                        self.entry.output_grew();
                    }
                }
                Some(control) = self.channels.control.recv() => self.on_control(control),
                Some(op) = self.channels.stdin.recv(), if self.outbox.is_empty() => {
                    // What a caller sent before this input (a resize before
                    // the line typed at the new size) goes to the shim first.
                    while let Ok(control) = self.channels.control.try_recv() {
                        self.on_control(control);
                    }
                    self.on_stdin(op);
                }
                ready = self.link.ctl.writable(), if !self.outbox.is_empty() => {
                    if let Ok(mut guard) = ready && !flush(&self.link, &mut self.outbox) {
                        guard.clear_ready();
                    }
                }
                () = timeout_due => self.on_timeout(),
                () = kill_due => self.on_grace_over().await,
            }
            // Try to send right away; the writable branch takes over when
            // the socket is full.
            if !self.outbox.is_empty() {
                flush(&self.link, &mut self.outbox);
            }
        }
        self.finish().await;
    }

    fn on_messages(&mut self, messages: Vec<FromShim>, eof: bool) {
        for msg in messages {
            self.heard.apply(msg, &self.job, &mut self.stdin_open);
        }
        self.heard.eof |= eof;
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Stop { grace, reason } => self.begin_stop(reason, grace),
            Control::Resize(size) => self.outbox.push_back((
                ToShim::Resize {
                    rows: size.rows,
                    cols: size.cols,
                }
                .encode(),
                None,
            )),
        }
    }

    fn on_stdin(&mut self, op: StdinOp) {
        match op {
            StdinOp::Data(bytes, reply) if self.stdin_open => {
                let mut chunks = bytes.chunks(STDIN_CHUNK).peekable();
                if chunks.peek().is_none() {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let mut reply = Some(reply);
                while let Some(c) = chunks.next() {
                    let last = chunks.peek().is_none();
                    let r = if last { reply.take() } else { None };
                    self.outbox.push_back((ToShim::Stdin(c.to_vec()).encode(), r));
                }
            }
            StdinOp::Close(reply) if self.stdin_open => {
                self.stdin_open = false;
                self.outbox.push_back((ToShim::CloseStdin.encode(), Some(reply)));
            }
            StdinOp::Data(_, reply) | StdinOp::Close(reply) => {
                let _ = reply.send(Err(EngineError::StdinClosed(self.job.clone())));
            }
        }
    }

    fn on_timeout(&mut self) {
        tracing::info!(job = %self.job, "timeout reached; stopping the job");
        self.begin_stop(StopReason::Timeout, self.default_grace);
    }

    async fn on_grace_over(&mut self) {
        self.killed = true;
        let job = &self.job;
        tracing::info!(%job, "grace period over; killing every process of the job");
        let cg = Arc::clone(&self.cgroup);
        match tokio::task::spawn_blocking(move || cg.kill()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%job, error = %e, "cgroup kill failed"),
            Err(e) => tracing::warn!(%job, error = %e, "cgroup kill task failed"),
        }
        self.outbox.push_back((ToShim::Kill.encode(), None));
    }

    /// The first stop sets the reason and sends SIGTERM; every stop may
    /// bring the SIGKILL deadline closer.
    fn begin_stop(&mut self, reason: StopReason, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.kill_at = Some(self.kill_at.map_or(deadline, |k| k.min(deadline)));
        if self.stop.is_none() {
            self.stop = Some(reason);
            self.outbox.push_back((ToShim::Terminate.encode(), None));
            if flush(&self.link, &mut self.outbox) {
                super::failpoint::here("stop:signalled");
            }
        }
    }

    /// The shim is gone: answers whoever still waits on stdin, cleans up
    /// and records the final state.
    async fn finish(mut self) {
        let job = self.job.clone();
        for (_, reply) in self.outbox.drain(..) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(EngineError::StdinClosed(job.clone())));
            }
        }
        self.channels.stdin.close();
        while let Some(op) = self.channels.stdin.recv().await {
            let (StdinOp::Data(_, reply) | StdinOp::Close(reply)) = op;
            let _ = reply.send(Err(EngineError::StdinClosed(job.clone())));
        }

        // The shim waits for its end to be on record (or goes, if it died):
        // the job's cgroup first, for the totals.
        let cgroup = Arc::clone(&self.cgroup);
        let handle = job.clone();
        let (totals, cleanup_error) = tokio::task::spawn_blocking(move || settle_cgroup(&cgroup, &handle))
            .await
            .unwrap_or_else(|e| (Totals::default(), Some(format!("cleanup task failed: {e}"))));
        let outcome = decide_outcome(&self.heard, self.stop, totals.oom_kills);
        let output_error = self
            .heard
            .exited
            .as_ref()
            .and_then(|(_, e)| e.clone())
            .or(cleanup_error);
        tracing::info!(%job, %outcome, "job ended");
        super::failpoint::here("end:unrecorded");
        let recorded = self.registry.ended(
            &self.entry,
            Ended {
                started_at: self.heard.started_at,
                ended_at: SystemTime::now(),
                outcome,
                totals,
                output_error,
            },
        );
        if recorded && self.heard.exited.is_some() {
            // Best effort: a shim that does not hear it writes its exit
            // record, which the next crew finds already on record.
            let _ = try_send(&self.link, &ToShim::Recorded.encode());
        }
        reap(self.link, &job).await;
    }
}

/// Reads what the shim sent: the messages, and whether its end is closed.
fn receive(link: &ShimLink, mut guard: AsyncFdReadyGuard<'_, OwnedFd>) -> (Vec<FromShim>, bool) {
    let mut messages = Vec::new();
    loop {
        // On the stack: a running job holds no buffer.
        let mut buf = [0u8; MAX_FROM_SHIM];
        match try_recv(link, &mut buf) {
            Ok(Some(0)) | Err(_) => return (messages, true),
            Ok(Some(n)) => match FromShim::decode(&buf[..n]) {
                Ok(msg) => messages.push(msg),
                Err(e) => tracing::warn!(error = %e, "bad message from shim"),
            },
            Ok(None) => {
                guard.clear_ready();
                return (messages, false);
            }
        }
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
            FromShim::Welcome { .. } => tracing::warn!(%job, "a welcome on an introduced link was ignored"),
            FromShim::Exited {
                status, output_error, ..
            } => self.exited = Some((status, output_error)),
        }
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

/// Lets go of the shim and reaps it, if it is this crew's child.
async fn reap(link: ShimLink, job: &str) {
    let mut link = link;
    let child = link.child.take();
    drop(link);
    let Some(mut child) = child else { return };
    let job = job.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = child.wait() {
            tracing::warn!(%job, error = %e, "reaping the shim");
        }
    })
    .await;
}

/// Makes sure nothing of an ended job is left in its cgroup, reads the
/// totals and removes the cgroup (blocking). Says what went wrong, if
/// anything did.
pub(crate) fn settle_cgroup(cgroup: &JobCgroup, job: &str) -> (Totals, Option<String>) {
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
}

fn decide_outcome(heard: &Heard, stop: Option<StopReason>, oom_kills: u64) -> Outcome {
    if let Some(reason) = &heard.start_failed {
        return Outcome::StartFailed(reason.clone());
    }
    match &heard.exited {
        Some((status, _)) => outcome_of(*status, stop, oom_kills),
        None => Outcome::Lost("the job's shim exited without reporting the job's end".into()),
    }
}

/// How a job ended, from the command's wait status as its shim reported it
/// (`None`: it has none), why it was stopped if it was, and the kernel's OOM
/// kill counter of its cgroup.
pub(crate) fn outcome_of(status: Option<i32>, stop: Option<StopReason>, oom_kills: u64) -> Outcome {
    let Some(status) = status else {
        return Outcome::Lost("the job's shim saw no exit status for the command".into());
    };
    let t = Termination::from_wait_status(status);
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
