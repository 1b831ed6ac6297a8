//! A foreman-like client of a [`Crew`] process (`crew::testing::connect`:
//! mutual TLS 1.3 over TCP with `TCP_NODELAY`), and calls tests share.

#![allow(dead_code)]

use std::time::Duration;

use certgen::Role;
use crew::testing::bounded;
use tasker_proto::v1 as pb;
use tokio_stream::StreamExt as _;

use crate::support::Crew;

pub use crew::testing::{Client, connect, spec};

impl Crew {
    /// A client with a good certificate for `name` in `role`.
    pub async fn client(&self, name: &str, role: Role) -> Client {
        let tls = crew::testing::user_tls(&self.pki, &self.pki.user(name, role));
        connect(self.addr, tls).await.expect("connects")
    }
}

pub async fn start_spec(client: &mut Client, spec: pb::JobSpec) -> Result<pb::Job, tonic::Status> {
    client
        .start_job(pb::StartJobRequest { spec: Some(spec) })
        .await
        .map(|r| r.into_inner().job.unwrap())
}

pub async fn start(client: &mut Client, argv: &[&str]) -> Result<pb::Job, tonic::Status> {
    start_spec(client, spec(argv)).await
}

pub async fn get(client: &mut Client, job: &str) -> pb::Job {
    client
        .get_job(pb::GetJobRequest { job: job.to_owned() })
        .await
        .expect("GetJob")
        .into_inner()
        .job
        .unwrap()
}

pub fn open_msg(job: &str, write: bool) -> pb::AttachJobRequest {
    use pb::attach_job_request::{Msg, Open, open};
    pb::AttachJobRequest {
        msg: Some(Msg::Open(Open {
            job: job.to_owned(),
            from: Some(open::From::Beginning(open::Beginning {})),
            write,
            ..Default::default()
        })),
    }
}

/// Every byte of a job's output through `AttachJob`, up to its end (the
/// job must end, within 30 s), and its final record.
pub async fn output_of(client: &mut Client, job: &str) -> (Vec<u8>, pb::Job) {
    output_within(client, job, Duration::from_secs(30)).await
}

/// [`output_of`], the job ending within `bound`.
pub async fn output_within(client: &mut Client, job: &str, bound: Duration) -> (Vec<u8>, pb::Job) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(open_msg(job, false)).await.unwrap();
    let mut stream = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("attach")
        .into_inner();
    let mut out = Vec::new();
    bounded("the whole output", bound, async {
        while let Some(msg) = stream.next().await {
            match msg.expect("attach stream").msg {
                Some(pb::attach_job_response::Msg::Output(o)) => {
                    assert_eq!(o.offset, out.len() as u64, "a gap or an overlap in the stream");
                    out.extend_from_slice(&o.data);
                }
                Some(pb::attach_job_response::Msg::Dropped(d)) => panic!("output dropped: {d:?}"),
                Some(pb::attach_job_response::Msg::Ended(job)) => return (std::mem::take(&mut out), job),
                _ => {}
            }
        }
        panic!("the stream ended without the job's final state")
    })
    .await
}
