//! The crew's gRPC edge: `tasker.v1.Crew` over mutual TLS 1.3.
//!
//! Layout:
//! - `serve.rs`: [`serve`], the accept loop: the listener, each
//!   connection's TLS handshake on its shard, and the end of it all.
//! - `admission.rs`: who may hold a connection: caps per source address,
//!   per certificate identity and in all, on connections and handshakes.
//! - `connection.rs`: a connection past its handshake: who it is, whether
//!   its certificate still stands, and its deadline for HTTP/2.
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
//! tonic would have done for us there, and more: deadlines for the
//! handshake and for the HTTP/2 preface, fair caps on handshakes and
//! connections (`admission.rs`), TCP keepalive.

pub mod admission;
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

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

pub use self::admission::ConnectionLimits;
pub use self::serve::serve;

/// The most of a client-provided string (a name, an error quoting a
/// request, a certificate's subject) a log line copies: a line must not
/// cost what a request chose.
pub const LOGGED_BYTES: usize = 256;

/// `text` as a log line may copy it: at most [`LOGGED_BYTES`] bytes, cut
/// at a character boundary, with "…" where it was cut.
pub fn logged(text: &str) -> Cow<'_, str> {
    if text.len() <= LOGGED_BYTES {
        return text.into();
    }
    let mut end = LOGGED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// How the API serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub crew_name: String,
    pub tls: Arc<tls::ServerTls>,
    pub allow_root: bool,
    /// Caps on connections and handshakes, and their deadlines.
    pub connections: ConnectionLimits,
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
            connections: ConnectionLimits::default(),
            max_concurrent_streams: 256,
            max_request_bytes: 2 << 20,
            usage_every: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_text_is_cut_at_a_character_boundary() {
        assert_eq!(super::logged("short"), "short");
        let long = "é".repeat(200);
        let cut = super::logged(&long);
        assert!(cut.len() <= super::LOGGED_BYTES + "…".len(), "{}", cut.len());
        assert!(cut.ends_with('…') && cut.starts_with("éé"));
    }
}
