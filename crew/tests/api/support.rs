//! A crew served in-process on 127.0.0.1 with a PKI made at test time, and
//! clients that connect to it over real mutual TLS 1.3.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use certgen::Role;
use certgen::testing::{ClientVariant, TestPki};
use crew::CrewConfig;
use crew::testing::LocalCrew;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pki_types::pem::PemObject as _;
use tasker_proto::v1 as pb;
use tasker_proto::v1::crew_client::CrewClient;
use tonic::transport::Channel;

pub use crew::testing::{ADA, ALICE, BOB, VIC, client_tls, connect, ensure_user, skip_reason, spec};

macro_rules! crew_or_skip {
    () => {
        crew_or_skip!(|_c| {})
    };
    ($configure:expr) => {
        match $crate::support::skip_reason() {
            Some(why) => {
                eprintln!("SKIPPED {}: {why}", module_path!());
                return;
            }
            None => $crate::support::TestCrew::start($configure).await,
        }
    };
}
pub(crate) use crew_or_skip;

/// The shared in-process crew ("alpha"), with raw gRPC clients.
pub struct TestCrew(LocalCrew);

impl std::ops::Deref for TestCrew {
    type Target = LocalCrew;
    fn deref(&self) -> &LocalCrew {
        &self.0
    }
}

impl TestCrew {
    pub async fn start(configure: impl FnOnce(&mut CrewConfig)) -> Self {
        let shim = crew::testing::shim_binary();
        Self(LocalCrew::start(Arc::new(TestPki::new()), "alpha", shim, configure).await)
    }

    /// A client with a good certificate for `name` in `role`.
    pub async fn client(&self, name: &str, role: Role) -> CrewClient<Channel> {
        let tls = crew::testing::user_tls(&self.pki, &self.pki.user(name, role));
        connect(self.addr, tls).await.expect("connects")
    }

    /// A client presenting a hostile or broken certificate.
    pub async fn client_variant(
        &self,
        name: &str,
        role: Role,
        v: ClientVariant,
    ) -> Result<CrewClient<Channel>, String> {
        let issued = self.pki.client_with(name, role, v);
        self.client_with_pem(issued.cert_pem().as_bytes(), issued.key_pem().as_bytes())
            .await
    }

    pub async fn client_with_pem(&self, cert: &[u8], key: &[u8]) -> Result<CrewClient<Channel>, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| e.to_string())?;
        let config = client_tls(
            &self.pki.ca_cert_path(),
            Some((chain, key)),
            &[&rustls::version::TLS13],
        );
        connect(self.addr, config).await
    }

    /// A client with no certificate at all.
    pub async fn anonymous(&self) -> Result<CrewClient<Channel>, String> {
        connect(
            self.addr,
            client_tls(&self.pki.ca_cert_path(), None, &[&rustls::version::TLS13]),
        )
        .await
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }
}

pub async fn start(client: &mut CrewClient<Channel>, argv: &[&str]) -> Result<pb::Job, tonic::Status> {
    client
        .start_job(pb::StartJobRequest {
            spec: Some(spec(argv)),
        })
        .await
        .map(|r| r.into_inner().job.unwrap())
}

/// Everything an attach yields: bytes (checked contiguous), drops, final job.
pub struct Attached {
    pub start: u64,
    pub bytes: Vec<u8>,
    pub dropped: u64,
    pub end: Option<pb::Job>,
    pub writable: bool,
}

/// Attaches read-only from `from` and reads to the end.
pub async fn read_to_end(
    client: &mut CrewClient<Channel>,
    job: &str,
    from: pb::attach_job_request::open::From,
) -> Result<Attached, tonic::Status> {
    let open = open_msg(job, from, false);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(open).await.unwrap();
    let mut stream = client
        .attach_job(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let out = collect(&mut stream).await;
    drop(tx);
    out
}

pub fn open_msg(job: &str, from: pb::attach_job_request::open::From, write: bool) -> pb::AttachJobRequest {
    pb::AttachJobRequest {
        msg: Some(pb::attach_job_request::Msg::Open(pb::attach_job_request::Open {
            job: job.to_owned(),
            from: Some(from),
            write,
            ..Default::default()
        })),
    }
}

pub async fn collect(
    stream: &mut tonic::Streaming<pb::AttachJobResponse>,
) -> Result<Attached, tonic::Status> {
    use pb::attach_job_response::Msg;
    let mut out = Attached {
        start: 0,
        bytes: Vec::new(),
        dropped: 0,
        end: None,
        writable: false,
    };
    let mut next = 0;
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("attach stalled")?
    {
        match msg.msg {
            Some(Msg::Attached(a)) => {
                out.start = a.offset;
                out.writable = a.writable;
                next = a.offset;
            }
            Some(Msg::Output(o)) => {
                assert_eq!(o.offset, next, "gap or overlap in the stream");
                next += o.data.len() as u64;
                out.bytes.extend_from_slice(&o.data);
            }
            Some(Msg::Dropped(d)) => {
                assert_eq!(d.offset, next);
                next += d.len;
                out.dropped += d.len;
            }
            Some(Msg::Ended(j)) => out.end = Some(j),
            Some(Msg::Until(_)) => panic!("no until was asked for"),
            None => {}
        }
    }
    Ok(out)
}

pub fn beginning() -> pb::attach_job_request::open::From {
    pb::attach_job_request::open::From::Beginning(pb::attach_job_request::open::Beginning {})
}

pub fn admin() -> Role {
    Role::Admin
}
