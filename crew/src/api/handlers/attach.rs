//! AttachJob: the job's output from a start point, replayed then live with
//! no gap (one reader, one offset), then the final state; and, for callers
//! who may manage the job, stdin, EOF and resize.
//!
//! Two tasks per attach: one pumps output to the client (each send waits
//! for the client, so a slow client slows only itself), one applies what
//! the client sends. Either ending ends both; nothing of the job stops.

use std::sync::Arc;
use std::time::Duration;

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg as In, open::From};

use tasker_proto::v1::attach_job_response::{Attached, Dropped, Msg as Out, Output};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::{caller, resolve};
use crate::api::authz::{Action, authorize};
use crate::api::convert;
use crate::api::identity::Identity;
use crate::api::service::State;
use crate::api::status::ApiError;
use crate::engine::{EngineError, JobInfo, OutputEvent, ReadFrom, WinSize};

/// Output chunk size: large enough for throughput, small enough for a
/// snappy terminal and for memory: a follower holds a few chunks (its
/// queue, tonic's encoder, h2's send buffer), and 100 followers of a busy
/// job peaked at 90 MiB of crew RSS with 128 KiB chunks, 219 MiB with
/// 256 KiB (docs/benchmarks.md).
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
    let who = caller(&req)?;
    authorize(&who, Action::Read, None)?;
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
    let writable = open.write && authorize(&who, Action::Write, Some(&job.owner)).is_ok();
    let from = match open.from {
        None | Some(From::Beginning(_)) => ReadFrom::Start,
        Some(From::Offset(o)) => ReadFrom::Offset(o),
        Some(From::TailBytes(n)) => ReadFrom::TailBytes(n),
        Some(From::TailLines(n)) => ReadFrom::TailLines(n),
        Some(From::Now(_)) => ReadFrom::TailBytes(0),
    };
    let reader = state.engine.reader(&job.id, from)?.with_chunk_size(CHUNK);
    // Two chunks queued per follower: enough to keep the connection busy
    // while the next is read, and a hundred followers stay within memory.
    let (tx, rx) = mpsc::channel(2);
    let attached = Out::Attached(Attached {
        job: Some(convert::job(&job)),
        offset: reader.offset(),
        writable,
        end: reader.stored_end(),
    });

    tx.send(Ok(pb::AttachJobResponse { msg: Some(attached) }))
        .await
        .map_err(|_| ApiError::invalid("the client left"))?;
    tracing::info!(job = %job.handle, by = ?who.name, writable, ?from, "attach");

    let done = state.shutdown.child_token();
    tokio::spawn(pump_output(
        reader,
        tx.clone(),
        done.clone(),
        state.shutdown.clone(),
    ));
    let input = Input {
        state: Arc::clone(state),
        who,
        job,
        writable,
        tx,
        done,
    };
    tokio::spawn(input.run(inbound));
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

async fn send(tx: &Tx, done: &CancellationToken, msg: Result<Out, Status>) -> bool {
    let msg = msg.map(|m| pb::AttachJobResponse { msg: Some(m) });
    tokio::select! {
        () = done.cancelled() => false,
        sent = tx.send(msg) => sent.is_ok(),
    }
}

async fn pump_output(
    mut reader: crate::engine::OutputReader,
    tx: Tx,
    done: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = done.cancelled() => {
                // Not a detach: the crew is going. Say so, so that a
                // follower does not take the end of the stream for the
                // end of the job.
                if shutdown.is_cancelled() {
                    let gone = Err(Status::unavailable(
                        "the crew is shutting down (its jobs are being stopped)",
                    ));
                    let _ = tokio::time::timeout(Duration::from_millis(200), tx.send(gone)).await;
                }
                break;
            }
            () = tx.closed() => break,
            ev = reader.next() => ev,
        };
        let (msg, last) = match event {
            Ok(Some(OutputEvent::Data { offset, bytes })) => {
                (Ok(Out::Output(Output { offset, data: bytes })), false)
            }
            Ok(Some(OutputEvent::Dropped { offset, len })) => {
                (Ok(Out::Dropped(Dropped { offset, len })), false)
            }
            Ok(Some(OutputEvent::End(info))) => (Ok(Out::Ended(convert::job(&info))), true),
            Ok(None) => break,
            Err(e) => (Err(ApiError::from(e).0), true),
        };
        if !send(&tx, &done, msg).await || last {
            break;
        }
    }
    // The response stream ends when every sender is gone: the input task
    // holds one until the client leaves or detaches.
    done.cancel();
}

struct Input {
    state: Arc<State>,
    who: Identity,
    job: JobInfo,
    writable: bool,
    tx: Tx,
    done: CancellationToken,
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
                let _ = send(&self.tx, &self.done, Err(e.0)).await;
                break;
            }
        }
        self.done.cancel();
    }

    async fn apply(&self, msg: In) -> Result<(), ApiError> {
        let engine = &self.state.engine;
        let write = |what: &str| -> Result<(), ApiError> {
            if self.writable {
                return Ok(());
            }
            authorize(&self.who, Action::Write, Some(&self.job.owner))?;
            Err(ApiError::denied(format!(
                "this attach is read-only ({what} needs an attach opened with write)"
            )))
        };
        match msg {
            In::Open(_) => Err(ApiError::invalid("an attach is opened once")),
            // Input for a job whose stdin is gone (it closed it, or ended)
            // is dropped, as keys typed at a finished program are: ending
            // the stream for it would lose the output still to come.
            In::Stdin(bytes) => {
                write("stdin")?;
                match engine.write_stdin(&self.job.id, bytes).await {
                    Err(EngineError::StdinClosed(_)) => Ok(()),
                    other => other.map_err(Into::into),
                }
            }
            In::Eof(_) => {
                write("EOF")?;
                match engine.close_stdin(&self.job.id).await {
                    Err(EngineError::StdinClosed(_)) => Ok(()),
                    other => other.map_err(Into::into),
                }
            }

            In::Resize(size) => {
                write("resize")?;
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
