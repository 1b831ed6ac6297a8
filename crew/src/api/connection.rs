//! A connection past its TLS handshake: the peer its certificate names,
//! its place in the admission books, and the watch that closes it when its
//! certificate stops standing (revoked by a CRL loaded since, expired) or
//! when it never starts HTTP/2 — idle or not.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use super::admission::{Slot, why};
use super::identity::{Peer, identity_in};
use super::{shards, tls};

/// The bytes every HTTP/2 connection starts with (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;

/// A connection past its handshake, with what it proved.
pub(super) struct Authed {
    tls: TlsStream<TcpStream>,
    peer: Peer,
    standing: Standing,
    /// Held for as long as the connection lives.
    slot: Slot,
    _load: shards::Load,
}

/// What a connection past its handshake is given.
pub(super) struct AuthedOptions {
    pub addr: SocketAddr,
    pub server: Arc<tls::ServerTls>,
    pub slot: Slot,
    pub load: shards::Load,
    pub preface_timeout: Duration,
}

impl Authed {
    /// A connection whose handshake just succeeded, with its certificate
    /// parsed once: who it is, and how long it stands. `None` (logged by
    /// the admission books) when its identity holds all its slots already.
    /// Must be called on the runtime the connection will run on (its
    /// timers are made here).
    pub(super) fn new(tls: TlsStream<TcpStream>, opts: AuthedOptions) -> Option<Self> {
        let AuthedOptions {
            addr,
            server,
            mut slot,
            load,
            preface_timeout,
        } = opts;
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
            let why = super::logged(why);
            tracing::warn!(%addr, %why, "a verified certificate gives no identity");
        }
        if !slot.identify(identity.as_ref().ok().map(|i| i.name.as_str())) {
            return None;
        }
        let revocation = server.watch(&serial);
        Some(Self {
            tls,
            peer: Peer {
                addr: Some(addr),
                identity,
            },
            standing: Standing {
                not_after,
                revocation,
                expiry: Box::pin(tokio::time::sleep_until(expiry_alarm(not_after))),
                expiry_waker: None,
                preface: Some((Box::pin(tokio::time::sleep(preface_timeout)), 0)),
                over: None,
            },
            slot,
            _load: load,
        })
    }
}

/// The longest a connection's expiry alarm sleeps before it looks at the
/// wall clock again (which can be set while it sleeps).
const EXPIRY_LOOK_EVERY: Duration = Duration::from_secs(3600);

/// When to look next whether a certificate valid to `not_after` (seconds
/// since the epoch, inclusive) has expired: as its last second ends, or in
/// an hour.
fn expiry_alarm(not_after: i64) -> Instant {
    let end = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after + 1).unwrap_or(0));
    let left = end
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(EXPIRY_LOOK_EVERY);
    Instant::now() + left
}

/// Whether a connection may go on: its certificate still stands (a CRL
/// loaded later does not revoke it, its validity has not ended) and, until
/// it has sent the HTTP/2 preface, its deadline for that has not passed.
/// The connection's task is woken by each (a CRL load, the end of the
/// validity, the deadline), so an idle connection is closed as promptly as
/// a busy one: hyper always has a read pending on it.
struct Standing {
    /// The certificate's notAfter, in seconds since the epoch.
    not_after: i64,
    /// Set when a CRL loaded later revokes the certificate.
    revocation: Arc<tls::Revocation>,
    expiry: Pin<Box<Sleep>>,
    /// The waker `expiry` was last polled with. Polling a tokio timer
    /// spends the task's cooperative budget; a read or a write only polls
    /// it when it is due or the waker changed.
    expiry_waker: Option<std::task::Waker>,
    /// The deadline for the HTTP/2 preface and the bytes of it seen, until
    /// it has all come.
    preface: Option<(Pin<Box<Sleep>>, usize)>,
    /// Why the connection is over, once it is.
    over: Option<Over>,
}

impl Standing {
    /// Looks again at whatever woke us, and arranges to be woken by each.
    fn check(&mut self, cx: &mut Context<'_>, peer: &Peer, slot: &Slot) -> std::io::Result<()> {
        if self.over.is_none() {
            if self.revocation.poll_revoked(cx) {
                self.over = Some(Over::Standing("revoked"));
            }
            let due = Instant::now() >= self.expiry.deadline();
            let known = self
                .expiry_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()));
            if due || !known {
                self.expiry_waker = Some(cx.waker().clone());
                while self.over.is_none() && self.expiry.as_mut().poll(cx).is_ready() {
                    if tls::unix_now() > self.not_after {
                        self.over = Some(Over::Standing("expired"));
                    } else {
                        let next = expiry_alarm(self.not_after);
                        self.expiry.as_mut().reset(next);
                    }
                }
            }
            if let Some(Over::Standing(why)) = self.over {
                let who = peer.identity.as_ref().map(|i| i.name.as_str()).unwrap_or("?");
                let who = super::logged(who);
                tracing::warn!(addr = ?peer.addr, %who, why, "closing a connection: its certificate no longer stands");
            }
        }
        if self.over.is_none()
            && let Some((deadline, _)) = &mut self.preface
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.over = Some(Over::Silent);
            slot.refused(why::PREFACE_TIMEOUT);
        }
        match self.over {
            Some(Over::Silent) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no HTTP/2 preface in time",
            )),
            Some(Over::Standing(why)) => Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("the client's certificate was {why}"),
            )),
            None => Ok(()),
        }
    }

    /// Counts bytes read towards the preface; its deadline ends with it.
    fn read(&mut self, n: usize) {
        if let Some((_, seen)) = &mut self.preface {
            *seen += n;
            if *seen >= PREFACE_LEN {
                self.preface = None;
            }
        }
    }
}

/// Why a connection is over.
#[derive(Clone, Copy, Debug)]
enum Over {
    /// Its certificate was revoked, or expired.
    Standing(&'static str),
    /// It never sent the HTTP/2 preface.
    Silent,
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
        me.standing.check(cx, &me.peer, &me.slot)?;
        let before = buf.filled().len();
        let read = Pin::new(&mut me.tls).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            me.standing.read(buf.filled().len() - before);
        }
        read
    }
}

impl AsyncWrite for Authed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        me.standing.check(cx, &me.peer, &me.slot)?;
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
        me.standing.check(cx, &me.peer, &me.slot)?;
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }
}
