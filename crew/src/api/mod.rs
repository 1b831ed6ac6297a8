//! The crew's gRPC edge: `tasker.v1.Crew` over mutual TLS 1.3.
//!
//! Layout:
//! - `serve.rs`: [`serve`], the accept loop: the listener, each
//!   connection's TLS handshake on its shard, and the end of it all.
//! - `connection.rs`: a connection past its handshake: who it is, and
//!   whether its certificate still stands.
//! - `tls.rs`: the rustls server config (TLS 1.3 only, client certificates
//!   required, clientAuth EKU required).
//! - `identity.rs`: the caller's CN and OU from its verified certificate.
//! - `authz.rs`: who may do what, as one pure function.
//! - `service.rs` + `handlers/`: one file per RPC.
//! - `convert.rs`: proto ⇄ engine; `status.rs`: engine errors → gRPC codes.
//! - `reclaim.rs`: freed memory back to the kernel after long requests end.
//! - `shards.rs`: the threads that own connections (one-thread runtimes,
//!   one per core), so that a connection's tasks never bounce between
//!   threads.
//!
//! We run our own accept loop rather than tonic's TLS, so we also own what
//! tonic would have done for us there: a handshake timeout, a cap on
//! concurrent handshakes (the oldest goes when a new one comes) and on
//! connections, TCP keepalive.

pub mod authz;
mod connection;
pub mod convert;
pub mod handlers;
pub mod identity;
mod reclaim;
mod serve;
pub mod service;
mod shards;
pub mod status;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use self::serve::serve;

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
