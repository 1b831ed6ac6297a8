//! Opening an attach to a job (`AttachJob`): our requests go up one
//! stream, the crew's answers come down the other. `foreman attach`, `run`
//! and `logs` and the dashboard's attach tasks all open it here.

use tasker_proto::v1 as pb;
use tasker_proto::v1::attach_job_request::{Msg as In, open::From};
use tasker_proto::v1::attach_job_response::{Attached, Msg as Out};
use tokio::sync::mpsc;

use super::Crew;

/// What to attach to, and how.
#[derive(Debug)]
pub struct Request<'a> {
    /// The job's id.
    pub job: &'a str,
    /// Where in the output to begin.
    pub from: From,
    /// Ask to write (input, resizes); `Attached` says whether we may.
    pub write: bool,
    /// How many of our requests may wait unsent before sending waits.
    pub queue: usize,
}

/// An open attach: the crew's answers, the way to send it requests, and
/// what it said first.
#[derive(Debug)]
pub struct Opened {
    pub stream: tonic::Streaming<pb::AttachJobResponse>,
    pub tx: mpsc::Sender<pb::AttachJobRequest>,
    pub attached: Attached,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The call failed or the crew refused it.
    #[error("{}", .0.message())]
    Status(tonic::Status),
    /// The stream ended, or began with something other than `Attached`.
    #[error("the attach did not start")]
    NotStarted,
}

/// What to ask of the job's time index.
#[derive(Clone, Debug, Default)]
pub struct Times {
    /// Marks with each output chunk: when, and from which stream.
    pub marks: bool,
    /// Begin at the first byte stored at or after this.
    pub since: Option<pb::TimePoint>,
    /// End (with `Until`) at the first byte stored after this.
    pub until: Option<pb::TimePoint>,
}

/// Opens the attach and waits for the crew's first answer, `Attached`.
pub async fn open(crew: &Crew, request: Request<'_>) -> Result<Opened, OpenError> {
    open_timed(crew, request, Times::default()).await
}

/// [`open`], asking for times too.
pub async fn open_timed(crew: &Crew, request: Request<'_>, times: Times) -> Result<Opened, OpenError> {
    let (tx, rx) = mpsc::channel(request.queue);
    let open = pb::AttachJobRequest {
        msg: Some(In::Open(pb::attach_job_request::Open {
            job: request.job.to_owned(),
            from: Some(request.from),
            write: request.write,
            timestamps: times.marks,
            since: times.since,
            until: times.until,
        })),
    };
    // The channel is new and empty: the open cannot wait.
    let _ = tx.send(open).await;
    let mut client = crew.client.clone();
    let mut stream = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(OpenError::Status)?
        .into_inner();
    match stream.message().await {
        Ok(Some(pb::AttachJobResponse {
            msg: Some(Out::Attached(attached)),
        })) => Ok(Opened { stream, tx, attached }),
        Ok(_) => Err(OpenError::NotStarted),
        Err(s) => Err(OpenError::Status(s)),
    }
}
