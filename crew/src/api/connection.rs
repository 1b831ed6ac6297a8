//! A connection past its TLS handshake: the peer its certificate names,
//! and the check, at each read and write, that the certificate still
//! stands (not revoked by a CRL loaded since, not expired).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::server::TlsStream;

use super::identity::{Peer, identity_in};
use super::{shards, tls};

/// A connection past its handshake, with what it proved.
pub(super) struct Authed {
    tls: TlsStream<TcpStream>,
    peer: Peer,
    standing: Standing,
    /// Held for as long as the connection lives.
    _permit: OwnedSemaphorePermit,
    _load: shards::Load,
}

impl Authed {
    /// A connection whose handshake just succeeded, with its certificate
    /// parsed once: who it is, and how long it stands.
    pub(super) fn new(
        tls: TlsStream<TcpStream>,
        addr: SocketAddr,
        server: Arc<tls::ServerTls>,
        permit: OwnedSemaphorePermit,
        load: shards::Load,
    ) -> Self {
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
        Self {
            tls,
            peer: Peer {
                addr: Some(addr),
                identity,
            },
            standing: Standing {
                server,
                serial,
                not_after,
                seen: u64::MAX,
                over: None,
            },
            _permit: permit,
            _load: load,
        }
    }
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
