//! The accept loop: takes each TCP connection the admission books let in
//! (see `admission.rs`), hands it to the least loaded shard for its TLS
//! handshake (with a deadline), and gives tonic the connections that made
//! it; at shutdown, stops taking them and waits for the shards to drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tasker_proto::v1::crew_server::CrewServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::ServeOptions;
use super::admission::{Admission, Handshake, why};
use super::connection::{Authed, AuthedOptions};
use super::service::{CrewService, State};
use super::shards::{self, Shard, Shards};
use crate::engine::EngineHandle;

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
    let admission = Admission::new(opts.connections.clone());
    // The CRL is looked at once a second even when no connection comes in,
    // so that open connections of a revoked certificate close; the
    // refusals since the last look are logged, counted.
    let (tls, books, stop) = (Arc::clone(&opts.tls), Arc::clone(&admission), shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {
                    drop(tls.current());
                    books.report();
                }
            }
        }
    });
    tokio::spawn(accept_loop(
        listener,
        opts.clone(),
        admission,
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
    admission: Arc<Admission>,
    shards: Arc<[Shard]>,
    shutdown: CancellationToken,
) {
    let limits = admission.limits().clone();
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
        // Refused: dropped here, closed before a byte of TLS.
        let Some((slot, pending)) = admission.admit(addr) else {
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
        let shard = shards::least_loaded(&shards);
        let server = Arc::clone(&opts.tls);
        let (acceptor, tx, handshake_timeout, preface_timeout, load) = (
            // The CRL as it is now (see `tls::ServerTls`).
            TlsAcceptor::from(opts.tls.current()),
            shard.incoming.clone(),
            limits.handshake_timeout,
            limits.preface_timeout,
            shard.load(),
        );
        shard.runtime.spawn(async move {
            let tls = handshake(tcp, addr, acceptor, handshake_timeout, pending).await;
            let Some(tls) = tls else { return };
            let opts = AuthedOptions {
                addr,
                server,
                slot,
                load,
                preface_timeout,
            };
            if let Some(authed) = Authed::new(tls, opts) {
                let _ = tx.send(Ok(authed)).await;
            }
        });
    }
}

/// Takes a connection through its TLS handshake, on the shard's runtime.
/// None, logged (throttled), when it failed, timed out, or was evicted for
/// a newer one.
async fn handshake(
    tcp: std::net::TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    timeout: Duration,
    pending: Handshake,
) -> Option<TlsStream<TcpStream>> {
    let tcp = match TcpStream::from_std(tcp) {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot take a connection over");
            return None;
        }
    };
    tune(&tcp);
    let outcome = tokio::select! {
        // Logged by the books, for the source.
        () = pending.evicted.cancelled() => return None,
        r = tokio::time::timeout(timeout, acceptor.accept(tcp)) => r,
    };
    match outcome {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            pending.refused(why::HANDSHAKE_FAILED, Some(&e.to_string()));
            None
        }
        Err(_) => {
            pending.refused(why::HANDSHAKE_TIMEOUT, None);
            None
        }
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
