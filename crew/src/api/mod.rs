//! The crew's gRPC edge: `tasker.v1.Crew` over mutual TLS 1.3.
//!
//! Layout:
//! - `tls.rs`: the rustls server config (TLS 1.3 only, client certificates
//!   required, clientAuth EKU required).
//! - `identity.rs`: the caller's CN and OU from its verified certificate.
//! - `authz.rs`: who may do what, as one pure function.
//! - `service.rs` + `handlers/`: one file per RPC.
//! - `convert.rs`: proto ⇄ engine; `status.rs`: engine errors → gRPC codes.
//! - `shards.rs`: the threads that own connections (one-thread runtimes,
//!   one per core), so that a connection's tasks never bounce between
//!   threads.
//!
//! We run our own accept loop rather than tonic's TLS, so we also own what
//! tonic would have done for us there: a handshake timeout, a cap on
//! concurrent handshakes (the oldest goes when a new one comes) and on
//! connections, TCP keepalive.

pub mod authz;
pub mod convert;
pub mod handlers;
pub mod identity;
pub mod service;
mod shards;
pub mod status;
pub mod tls;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tasker_proto::v1::crew_server::CrewServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use self::identity::{Peer, identity_in};
use self::service::{CrewService, State};
use self::shards::{Shard, Shards};
use crate::engine::EngineHandle;

/// How the API serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub crew_name: String,
    pub tls: Arc<tls::ServerTls>,
    pub allow_root: bool,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; a new connection past this evicts
    /// the oldest pending handshake.
    pub max_handshakes: usize,
    /// Open connections; past this, new ones are closed at once.
    pub max_connections: usize,
    /// Streams per connection.
    pub max_concurrent_streams: u32,
    /// The largest request message (a start's argv and environment).
    pub max_request_bytes: usize,
    /// How often WatchJobs reports usage.
    pub usage_every: Duration,
}

impl ServeOptions {
    pub fn new(crew_name: &str, tls: Arc<tls::ServerTls>) -> Self {
        Self {
            crew_name: crew_name.to_owned(),
            tls,
            allow_root: false,
            handshake_timeout: Duration::from_secs(10),
            max_handshakes: 64,
            max_connections: 1024,
            max_concurrent_streams: 256,
            max_request_bytes: 2 << 20,
            usage_every: Duration::from_secs(1),
        }
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled, then ends
/// every stream and returns once the connections have drained. Dropping
/// the future closes every connection at once.
pub async fn serve(
    listener: TcpListener,
    engine: EngineHandle,
    opts: ServeOptions,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let state = Arc::new(State {
        engine,
        crew_name: opts.crew_name.clone(),
        allow_root: opts.allow_root,
        started_at: SystemTime::now(),
        shutdown: shutdown.clone(),
        usage_every: opts.usage_every,
        main: tokio::runtime::Handle::current(),
    });
    let service = CrewServer::new(CrewService { state })
        .max_decoding_message_size(opts.max_request_bytes)
        .max_encoding_message_size(4 << 20);
    let server = |incoming: mpsc::Receiver<std::io::Result<Authed>>, stop: CancellationToken| {
        tonic::transport::Server::builder()
            .max_concurrent_streams(opts.max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .http2_max_pending_accept_reset_streams(Some(32))
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .add_service(service.clone())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::ReceiverStream::new(incoming),
                async move { stop.cancelled().await },
            )
    };
    let count = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_SHARDS);
    let shards = Shards::start(count, server, &shutdown)
        .map_err(|e| format!("cannot start the connection threads: {e}"))?;
    // The CRL is looked at once a second even when no connection comes in,
    // so that open connections of a revoked certificate close.
    let (tls, stop) = (Arc::clone(&opts.tls), shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => drop(tls.current()),
            }
        }
    });
    tokio::spawn(accept_loop(
        listener,
        opts.clone(),
        Arc::clone(&shards.shards),
        shutdown.clone(),
    ));
    shards.wait().await
}

/// Connection shards at most, one per core below that.
const MAX_SHARDS: usize = 16;

async fn accept_loop(
    listener: TcpListener,
    opts: ServeOptions,
    shards: Arc<[Shard]>,
    shutdown: CancellationToken,
) {
    let pending = Arc::new(Pending::new(opts.max_handshakes));
    let connections = Arc::new(Semaphore::new(opts.max_connections));
    loop {
        let (tcp, addr) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%addr, "too many connections; closing a new one");
            continue;
        };
        // The connection moves to its shard's runtime, handshake and all.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot hand a connection over");
                continue;
            }
        };
        // Every handshake slot taken: the oldest pending handshake goes. A
        // real client finishes in milliseconds, so the oldest is the one
        // saying nothing; connections that never speak cannot lock others
        // out (slowloris).
        let (id, evicted) = pending.admit();
        let shard = shards::least_loaded(&shards);
        let server_tls = Arc::clone(&opts.tls);
        let (acceptor, tx, timeout, pending, load) = (
            // The CRL as it is now (see `tls::ServerTls`).
            TlsAcceptor::from(opts.tls.current()),
            shard.incoming.clone(),
            opts.handshake_timeout,
            Arc::clone(&pending),
            shard.load(),
        );
        shard.runtime.spawn(async move {
            let outcome = match TcpStream::from_std(tcp) {
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot take a connection over");
                    None
                }
                Ok(tcp) => {
                    tune(&tcp);
                    tokio::select! {
                        () = evicted.cancelled() => {
                            tracing::info!(%addr, "handshake slots full: dropped the oldest pending handshake");
                            None
                        }
                        r = tokio::time::timeout(timeout, acceptor.accept(tcp)) => Some(r),
                    }
                }
            };
            pending.done(id);
            match outcome {
                Some(Ok(Ok(tls))) => {
                    // The certificate, parsed once: who, and how long it stands.
                    let (identity, serial, not_after) = match tls.get_ref().1.peer_certificates() {
                        Some([leaf, ..]) => match x509_parser::parse_x509_certificate(leaf.as_ref()) {
                            Ok((_, cert)) => (
                                identity_in(&cert),
                                cert.raw_serial().to_vec(),
                                cert.validity().not_after.timestamp(),
                            ),
                            Err(e) => (Err(format!("unreadable certificate: {e}")), Vec::new(), 0),
                        },
                        _ => (Err("no client certificate".to_owned()), Vec::new(), 0),
                    };
                    if let Err(why) = &identity {
                        tracing::warn!(%addr, why = ?why, "a verified certificate gives no identity");
                    }
                    let peer = Peer {
                        addr: Some(addr),
                        identity,
                    };
                    let _ = tx
                        .send(Ok(Authed {
                            tls,
                            peer,
                            standing: Standing {
                                server: server_tls,
                                serial,
                                not_after,
                                seen: u64::MAX,
                                over: None,
                            },
                            _permit: permit,
                            _load: load,
                        }))
                        .await;
                }
                Some(Ok(Err(e))) => tracing::info!(%addr, error = %e, "TLS handshake refused"),
                Some(Err(_)) => tracing::info!(%addr, "TLS handshake timed out"),
                None => {}
            }
        });
    }
}

/// The handshakes in progress, oldest first, at most `max`.
struct Pending {
    max: usize,
    inner: std::sync::Mutex<(u64, std::collections::BTreeMap<u64, CancellationToken>)>,
}

impl Pending {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            inner: std::sync::Mutex::new((0, std::collections::BTreeMap::new())),
        }
    }

    /// A slot for a new handshake, evicting the oldest if all are taken.
    fn admit(&self) -> (u64, CancellationToken) {
        let mut g = tasker_common::lock(&self.inner);
        let (next, slots) = &mut *g;
        while slots.len() >= self.max {
            if let Some((_, oldest)) = slots.pop_first() {
                oldest.cancel();
            }
        }
        let id = *next;
        *next += 1;
        let token = CancellationToken::new();
        slots.insert(id, token.clone());
        (id, token)
    }

    fn done(&self, id: u64) {
        let mut g = tasker_common::lock(&self.inner);
        g.1.remove(&id);
    }
}

/// TCP keepalive finds peers that vanished without a word; no delay keeps
/// a typed key from waiting for the next one.
fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// A connection past its handshake, with what it proved.
struct Authed {
    tls: TlsStream<TcpStream>,
    peer: Peer,
    standing: Standing,
    /// Held for as long as the connection lives.
    _permit: OwnedSemaphorePermit,
    _load: shards::Load,
}

/// Whether the certificate a connection came with still stands: a CRL
/// loaded later that revokes it, or its end of validity, closes the
/// connection at its next read or write (within a second of either; an
/// idle connection at its next HTTP/2 keepalive ping, 30 s at most). The
/// handshake checked both once; a connection can outlive either.
struct Standing {
    server: Arc<tls::ServerTls>,
    serial: Vec<u8>,
    /// The certificate's notAfter, in seconds since the epoch.
    not_after: i64,
    /// The server's CRL epoch when this last looked.
    seen: u64,
    /// Why the connection is over, once it is.
    over: Option<&'static str>,
}

impl Standing {
    fn check(&mut self, peer: &Peer) -> std::io::Result<()> {
        let epoch = self.server.epoch();
        if self.over.is_none() && epoch != self.seen {
            self.seen = epoch;
            if self.server.is_revoked(&self.serial) {
                self.over = Some("revoked");
            } else if tls::unix_now() > self.not_after {
                self.over = Some("expired");
            }
            if let Some(why) = self.over {
                let who = peer.identity.as_ref().map(|i| i.name.as_str()).unwrap_or("?");
                tracing::warn!(addr = ?peer.addr, who, why, "closing a connection: its certificate no longer stands");
            }
        }
        match self.over {
            Some(why) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the client's certificate was {why}"),
            )),
            None => Ok(()),
        }
    }
}

impl tonic::transport::server::Connected for Authed {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Authed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        me.standing.check(&me.peer)?;
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for Authed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        me.standing.check(&me.peer)?;
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        me.standing.check(&me.peer)?;
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}
