//! `firehose`: a synthetic crew for the dashboard's responsiveness under a
//! given rate of job updates, without the CPU that real jobs changing that
//! often would take from the host the dashboard runs on.
//!
//! It speaks the real API over mutual TLS 1.3 with a crew certificate of
//! the PKI (`certs/crews/NAME.{crt,key}`, clients of `certs/ca.crt` only):
//! `Info`, `ListJobs` and `WatchJobs`. The watch sends a snapshot of `jobs`
//! running jobs, then `rate` usage figures a second (a report every 10 ms,
//! each job's cpu and memory figures changing every time), and every other
//! call is refused as unimplemented. Serves until stdin closes, then prints
//! how many figures it sent.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use foreman::config::Config;
use tasker_proto::v1 as pb;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::{Request, Response, Status};

/// A TLS connection, as tonic serves it.
struct Conn(TlsStream<TcpStream>);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[derive(Clone)]
struct Firehose {
    name: String,
    jobs: Arc<Vec<pb::Job>>,
    rate: u64,
    sent: Arc<AtomicU64>,
}

type Watch = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchJobsResponse, Status>> + Send>>;
type Attach = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AttachJobResponse, Status>> + Send>>;

fn no<T>() -> Result<T, Status> {
    Err(Status::unimplemented("a synthetic crew (tasker-bench firehose)"))
}

#[tonic::async_trait]
impl pb::crew_server::Crew for Firehose {
    async fn start_job(
        &self,
        _: Request<pb::StartJobRequest>,
    ) -> Result<Response<pb::StartJobResponse>, Status> {
        no()
    }
    async fn stop_job(
        &self,
        _: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        no()
    }
    async fn archive_job(
        &self,
        _: Request<pb::ArchiveJobRequest>,
    ) -> Result<Response<pb::ArchiveJobResponse>, Status> {
        no()
    }
    async fn unarchive_job(
        &self,
        _: Request<pb::UnarchiveJobRequest>,
    ) -> Result<Response<pb::UnarchiveJobResponse>, Status> {
        no()
    }
    async fn get_job(&self, _: Request<pb::GetJobRequest>) -> Result<Response<pb::GetJobResponse>, Status> {
        no()
    }
    async fn list_jobs(
        &self,
        _: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        Ok(Response::new(pb::ListJobsResponse {
            jobs: self.jobs.to_vec(),
            next_page_token: String::new(),
        }))
    }

    type WatchJobsStream = Watch;

    async fn watch_jobs(&self, _: Request<pb::WatchJobsRequest>) -> Result<Response<Watch>, Status> {
        use pb::watch_jobs_response::{Event, Snapshot, UsageReport};
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let me = self.clone();
        tokio::spawn(async move {
            let snapshot = Event::Snapshot(Snapshot {
                jobs: me.jobs.to_vec(),
                more: false,
            });
            if tx
                .send(Ok(pb::WatchJobsResponse {
                    event: Some(snapshot),
                }))
                .await
                .is_err()
            {
                return;
            }
            // A report every 10 ms with the figures due by then.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let t0 = Instant::now();
            let (mut due, mut next, mut round) = (0u64, 0usize, 0u64);
            loop {
                tick.tick().await;
                let target = (t0.elapsed().as_secs_f64() * me.rate as f64) as u64;
                let n = target.saturating_sub(due);
                due = target;
                let mut jobs = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let job = &me.jobs[next % me.jobs.len()];
                    next += 1;
                    round += 1;
                    jobs.push(pb::Usage {
                        job_id: job.id.clone(),
                        cpu_usec: round * 1000,
                        memory_bytes: (16 << 20) + (round % 4096) * 4096,
                        cpu_cores: (round % 100) as f64 / 100.0,
                    });
                }
                if jobs.is_empty() {
                    continue;
                }
                let sent = jobs.len() as u64;
                let report = Event::Usage(UsageReport { jobs });
                if tx
                    .send(Ok(pb::WatchJobsResponse { event: Some(report) }))
                    .await
                    .is_err()
                {
                    return;
                }
                me.sent.fetch_add(sent, Ordering::Relaxed);
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    type AttachJobStream = Attach;

    async fn attach_job(
        &self,
        _: Request<tonic::Streaming<pb::AttachJobRequest>>,
    ) -> Result<Response<Attach>, Status> {
        no()
    }

    async fn audit_trail(
        &self,
        _: Request<pb::AuditTrailRequest>,
    ) -> Result<Response<pb::AuditTrailResponse>, Status> {
        no()
    }

    async fn info(&self, _: Request<pb::InfoRequest>) -> Result<Response<pb::InfoResponse>, Status> {
        Ok(Response::new(pb::InfoResponse {
            crew_name: self.name.clone(),
            version: "firehose".into(),
            identity: "bench".into(),
            role: "viewer".into(),
            ..Default::default()
        }))
    }
}

fn job(n: usize) -> pb::Job {
    let created = std::time::SystemTime::now() - Duration::from_secs(60);
    pb::Job {
        id: format!("{:032x}", 0xf17e_u128 << 64 | n as u128),
        handle: format!("job-{n}"),
        owner: "bench".into(),
        user: "bench".into(),
        argv: vec!["synthetic".into(), format!("{n}")],
        created_at: Some(created.into()),
        phase: pb::JobPhase::Running as i32,
        ..Default::default()
    }
}

/// Serves until stdin closes; reports the figures sent.
pub async fn run(
    config: &Config,
    name: &str,
    listen: SocketAddr,
    jobs: usize,
    rate: u64,
) -> anyhow::Result<serde_json::Value> {
    let ca = config.ca();
    let certs = ca.parent().context("the CA's directory")?;
    let roots = tasker_common::pem::load_roots(&ca)?;
    let chain = tasker_common::pem::load_certs(&certs.join("crews").join(format!("{name}.crt")))?;
    let key = tasker_common::pem::load_key(&certs.join("crews").join(format!("{name}.key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let (conns_tx, conns) = tokio::sync::mpsc::channel::<std::io::Result<Conn>>(64);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, conns_tx) = (acceptor.clone(), conns_tx.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                {
                    let _ = conns_tx.send(Ok(Conn(tls))).await;
                }
            });
        }
    });
    let sent = Arc::new(AtomicU64::new(0));
    let service = Firehose {
        name: name.to_owned(),
        jobs: Arc::new((1..=jobs.max(1)).map(job).collect()),
        rate,
        sent: Arc::clone(&sent),
    };
    eprintln!("firehose: {name} on {listen}: {jobs} jobs, {rate} usage figures a second to each watcher");
    let stdin_closed = async {
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    };
    let t0 = Instant::now();
    tonic::transport::Server::builder()
        .add_service(pb::crew_server::CrewServer::new(service))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(conns), stdin_closed)
        .await?;
    Ok(serde_json::json!({
        "figures_sent": sent.load(Ordering::Relaxed),
        "seconds": t0.elapsed().as_secs_f64(),
    }))
}
