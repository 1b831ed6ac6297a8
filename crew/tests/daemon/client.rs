//! A foreman-like client of a [`Crew`] process (`crew::testing::connect`:
//! mutual TLS 1.3 over TCP with `TCP_NODELAY`), and calls tests share.

#![allow(dead_code)]

use certgen::Role;
use tasker_proto::v1 as pb;

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
        })),
    }
}
