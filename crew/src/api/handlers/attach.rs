//! AttachJob: the job's output from a start point, replayed then live with
//! no gap (one reader, one offset), then the final state; and, for callers
//! who may manage the job, stdin, EOF and resize.
//!
//! The response is the output reader itself, polled by the connection as
//! the client takes it (so a slow client slows only itself, and a chunk
//! goes from the file to the socket without a hand-off between tasks),
//! merged with what the input task has to say. The input task applies
//! what the client sends. Either ending ends both; nothing of the job
//! stops, and dropping the response releases the reader.

use std::sync::Arc;
use std::time::Duration;

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg as In, open::From};

use tasker_proto::v1::attach_job_response::{Attached, Dropped, Msg as Out, Output, Until};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::{Audited, reader, resolve};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::identity::Identity;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::{EngineError, JobInfo, OutputEvent, ReadFrom, WinSize};

/// Output chunk size: large enough for throughput, small enough for a
/// snappy terminal and for memory: a follower holds a few chunks (the
/// reader's read-ahead, tonic's encoder, h2's send buffer), and 100
/// followers of a busy job peaked at 90-144 MiB of crew RSS with 128 KiB
/// chunks, 219 MiB with 256 KiB (docs/benchmarks.md).
const CHUNK: usize = 128 << 10;
/// How long a client may take to say what it wants.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

type Stream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::AttachJobResponse, Status>> + Send + 'static>,
>;
type Tx = mpsc::Sender<Result<pb::AttachJobResponse, Status>>;

pub async fn handle(
    state: &Arc<State>,
    req: Request<Streaming<pb::AttachJobRequest>>,
) -> Result<Response<Stream>, ApiError> {
    let who = reader(state, &req, "attach")?;
    let mut inbound = req.into_inner();
    let open = match tokio::time::timeout(OPEN_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(pb::AttachJobRequest {
            msg: Some(In::Open(open)),
        }))) => open,
        Ok(Ok(_)) => return Err(ApiError::invalid("an attach starts with an open message")),
        Ok(Err(status)) => return Err(ApiError(status)),
        Err(_) => return Err(ApiError::invalid("no open message within 10 seconds")),
    };
    let job = resolve(&state.engine, &state.crew_name, &open.job)?;
    // Asking to write is not an error for a reader: the attach is then
    // read-only, and says so.
    let writable = open.write && {
        let mut trail = Audited::new(state, "attach", &Ok(who.clone()));
        trail.job(&job.id);
        trail.detail(serde_json::json!({ "write": true }));
        let may = authorize(&who, Action::Write, Some(&job.owner)).map_err(ApiError::from);
        trail.finish(may).is_ok()
    };
    let from = match open.from {
        None | Some(From::Beginning(_)) => ReadFrom::Start,
        Some(From::Offset(o)) => ReadFrom::Offset(o),
        Some(From::TailBytes(n)) => ReadFrom::TailBytes(n),
        Some(From::TailLines(n)) => ReadFrom::TailLines(n),
        Some(From::Now(_)) => ReadFrom::TailBytes(0),
    };
    let mut reader = state.engine.reader(&job.id, from)?.with_chunk_size(CHUNK);
    let since = open.since.as_ref().map(boot_time).transpose()?;
    let until = open.until.as_ref().map(boot_time).transpose()?;
    let timestamps = open.timestamps;
    if timestamps || since.is_some() || until.is_some() {
        reader = reader.with_times(since, until)?;
    }
    let done = state.shutdown.child_token();
    let attached = pb::AttachJobResponse {
        msg: Some(Out::Attached(Attached {
            job: Some(convert::job_summary(&job)),
            offset: reader.offset(),
            writable,
            end: reader.stored_end(),
        })),
    };
    tracing::info!(job = %job.handle, by = ?who.name, writable, ?from, "attach");

    // What the input task says (an error for the client), one at a time.
    let (tx, rx) = mpsc::channel(1);
    let output = output(reader, timestamps, done.clone(), state.shutdown.clone());
    let input = Input {
        state: Arc::clone(state),
        who,
        job,
        writable,
        tx,
        done,
        typed: std::sync::Mutex::default(),
    };
    tokio::spawn(input.run(inbound));
    // The response ends when both parts have: the output at the job's end
    // (or a detach, or shutdown), then the input task, which sees that.
    let said = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Response::new(Box::pin(
        tokio_stream::once(Ok(attached)).chain(output.merge(said)),
    )))
}

/// A time point as `CLOCK_BOOTTIME`, the clock the time index searches
/// by: measured back from this crew's now, on its own clocks.
fn boot_time(at: &pb::TimePoint) -> Result<u64, ApiError> {
    use tasker_proto::v1::time_point::At;
    use tasker_shim::timeindex::clock_ns;
    let boot_now = clock_ns(libc::CLOCK_BOOTTIME) as i128;
    let ago_ns: i128 = match &at.at {
        Some(At::Time(t)) => {
            let wall_now = clock_ns(libc::CLOCK_REALTIME) as i128;
            wall_now - (i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
        }
        Some(At::Ago(d)) if d.seconds >= 0 && d.nanos >= 0 => {
            i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos)
        }
        Some(At::Ago(_)) => return Err(ApiError::invalid("a time point's \"ago\" is negative")),
        None => return Err(ApiError::invalid("a time point with neither a time nor an ago")),
    };
    Ok((boot_now - ago_ns).clamp(0, i128::from(u64::MAX)) as u64)
}

async fn send(tx: &Tx, done: &CancellationToken, msg: Status) -> bool {
    tokio::select! {
        () = done.cancelled() => false,
        sent = tx.send(Err(msg)) => sent.is_ok(),
    }
}

/// The job's output as response messages, then its final state. Ends (and
/// cancels `done`, so the input task ends too) at the job's end, a
/// detach, an error, shutdown, or when the client leaves and the response
/// is dropped.
fn output(
    reader: crate::engine::OutputReader,
    timestamps: bool,
    done: CancellationToken,
    shutdown: CancellationToken,
) -> impl tokio_stream::Stream<Item = Result<pb::AttachJobResponse, Status>> + Send + 'static {
    struct Pump {
        reader: crate::engine::OutputReader,
        done: CancellationToken,
        shutdown: CancellationToken,
        _ends: tokio_util::sync::DropGuard,
    }
    let pump = Pump {
        reader,
        _ends: done.clone().drop_guard(),
        done,
        shutdown,
    };
    futures_util::stream::unfold(Some(pump), move |pump| async move {
        let mut pump = pump?;
        let event = tokio::select! {
            () = pump.done.cancelled() => {
                // Not a detach: the crew is going. Say so, so that a
                // follower does not take the end of the stream for the
                // end of the job.
                if pump.shutdown.is_cancelled() {
                    let gone = Status::unavailable(
                        "the crew is shutting down; a crew that comes back serves its running jobs again",
                    );
                    return Some((Err(gone), None));
                }
                return None;
            }
            ev = pump.reader.next() => ev,
        };
        let (msg, more) = match event {
            Ok(Some(OutputEvent::Data { offset, bytes })) => {
                let marks = pump.reader.take_marks();
                let marks = if timestamps {
                    marks.iter().map(convert::mark).collect()
                } else {
                    Vec::new()
                };
                let output = Output {
                    offset,
                    data: bytes,
                    marks,
                };
                (Ok(Out::Output(output)), true)
            }
            Ok(Some(OutputEvent::Until)) => (Ok(Out::Until(Until {})), false),
            Ok(Some(OutputEvent::Dropped { offset, len })) => {
                (Ok(Out::Dropped(Dropped { offset, len })), true)
            }
            Ok(Some(OutputEvent::End(info))) => (Ok(Out::Ended(convert::job_summary(&info))), false),
            Ok(None) => return None,
            Err(e) => (Err(ApiError::from(e).0), false),
        };
        let msg = msg.map(|m| pb::AttachJobResponse { msg: Some(m) });
        Some((msg, more.then_some(pump)))
    })
}

struct Input {
    state: Arc<State>,
    who: Identity,
    job: JobInfo,
    writable: bool,
    tx: Tx,
    done: CancellationToken,
    /// What went to the job, for the audit trail when the attach ends.
    typed: std::sync::Mutex<Typed>,
}

/// Input counted for the audit trail: how much, never what.
#[derive(Debug, Default)]
struct Typed {
    stdin_bytes: u64,
    stdin_writes: u64,
    eof: bool,
    resizes: u64,
}

impl Input {
    async fn run(self, mut inbound: Streaming<pb::AttachJobRequest>) {
        loop {
            let msg = tokio::select! {
                () = self.done.cancelled() => break,
                m = inbound.message() => m,
            };
            let msg = match msg {
                Ok(Some(pb::AttachJobRequest { msg: Some(m) })) => m,
                Ok(Some(_)) => continue,
                // Half-closed: the client sends nothing more but still reads.
                Ok(None) => {
                    self.done.cancelled().await;
                    break;
                }
                // Gone.
                Err(_) => break,
            };
            if let Err(e) = self.apply(msg).await {
                let _ = send(&self.tx, &self.done, e.0).await;
                break;
            }
        }
        self.done.cancel();
        let typed = std::mem::take(&mut *tasker_common::lock(&self.typed));
        if self.writable && (typed.stdin_writes > 0 || typed.eof || typed.resizes > 0) {
            let mut trail = Audited::new(&self.state, "input", &Ok(self.who.clone()));
            trail.job(&self.job.id);
            trail.detail(serde_json::json!({
                "stdin_bytes": typed.stdin_bytes,
                "stdin_writes": typed.stdin_writes,
                "eof": typed.eof,
                "resizes": typed.resizes,
            }));
            let _ = trail.finish(Ok(()));
        }
    }

    async fn apply(&self, msg: In) -> Result<(), ApiError> {
        let engine = &self.state.engine;
        let write = |what: &str| -> Result<(), ApiError> {
            if self.writable {
                return Ok(());
            }
            let mut trail = Audited::new(&self.state, "input", &Ok(self.who.clone()));
            trail.job(&self.job.id);
            trail.detail(serde_json::json!({ "refused": what }));
            let refused = authorize(&self.who, Action::Write, Some(&self.job.owner))
                .map_err(ApiError::from)
                .and_then(|()| {
                    Err(ApiError::denied(format!(
                        "this attach is read-only ({what} needs an attach opened with write)"
                    )))
                });
            trail.finish(refused)
        };
        match msg {
            In::Open(_) => Err(ApiError::invalid("an attach is opened once")),
            // Input for a job whose stdin is gone (it closed it, or ended)
            // is dropped, as keys typed at a finished program are: ending
            // the stream for it would lose the output still to come.
            In::Stdin(bytes) => {
                write("stdin")?;
                {
                    let mut t = tasker_common::lock(&self.typed);
                    t.stdin_bytes += bytes.len() as u64;
                    t.stdin_writes += 1;
                }
                match engine.write_stdin(&self.job.id, bytes).await {
                    Err(EngineError::StdinClosed(_)) => Ok(()),
                    other => other.map_err(Into::into),
                }
            }
            In::Eof(_) => {
                write("EOF")?;
                tasker_common::lock(&self.typed).eof = true;
                match engine.close_stdin(&self.job.id).await {
                    Err(EngineError::StdinClosed(_)) => Ok(()),
                    other => other.map_err(Into::into),
                }
            }

            In::Resize(size) => {
                write("resize")?;
                tasker_common::lock(&self.typed).resizes += 1;
                let rows =
                    u16::try_from(size.rows).map_err(|_| ApiError::invalid("rows must be under 65536"))?;
                let cols =
                    u16::try_from(size.cols).map_err(|_| ApiError::invalid("columns must be under 65536"))?;
                engine
                    .resize(&self.job.id, WinSize { rows, cols })
                    .await
                    .map_err(Into::into)
            }
            In::Detach(_) => {
                tracing::info!(job = %self.job.handle, by = ?self.who.name, "detach");
                self.done.cancel();
                Ok(())
            }
        }
    }
}
