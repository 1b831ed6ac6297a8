//! A foreman-like client of a [`Crew`] process: mutual TLS 1.3 over TCP with
//! `TCP_NODELAY`, as `crew/tests/api/support.rs` builds it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certgen::Role;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject as _;
use tasker_proto::v1 as pb;
use tasker_proto::v1::crew_client::CrewClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::support::Crew;

pub type Client = CrewClient<Channel>;

impl Crew {
    /// A client with a good certificate for `name` in `role`.
    pub async fn client(&self, name: &str, role: Role) -> Client {
        let files = self.pki.user(name, role);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
        let tls = client_tls(&self.pki.ca_cert_path(), chain, key);
        connect(self.addr, tls).await.expect("connects")
    }
}

fn client_tls(
    ca: &Path,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Connects and makes one call (Info), so that a refused handshake shows up
/// here rather than at the first real call.
async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Result<Client, String> {
    let connector = tower::service_fn(move |_: Uri| {
        let tls = Arc::clone(&tls);
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            // Without it, Nagle and delayed ACKs stall each call ~40 ms.
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from("localhost").unwrap();
            let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut client = CrewClient::new(channel).max_decoding_message_size(8 << 20);
    client
        .info(pb::InfoRequest {})
        .await
        .map_err(|e| format!("{}: {}", e.code(), e.message()))?;
    Ok(client)
}

pub fn spec(argv: &[&str]) -> pb::JobSpec {
    pb::JobSpec {
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
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
