//! Admission: who may hold a connection, decided at accept time (by source
//! address) and after the handshake (by certificate identity), so that the
//! crew's slots are shared and a flood from one place hurts that place
//! only.
//!
//! - A **source** is an IPv4 address, or an IPv6 /64 (one host, or one
//!   LAN, gets a /64; counting single IPv6 addresses would let one host
//!   take as many "addresses" as it likes). An IPv4-mapped IPv6 address is
//!   its IPv4 address.
//! - **Handshakes** in progress: at most `max_handshakes_per_address` per
//!   source and `max_handshakes` in all. When a new connection would pass
//!   either, the oldest pending handshake of the source with the most of
//!   them goes (for the per-source cap, the source's own): a real client
//!   finishes in milliseconds, so the oldest pending one is the one saying
//!   nothing, and the source that floods is the one that loses them. A
//!   thousand silent connects a second from one address keep one address
//!   busy, not the crew.
//! - **Connections** (from accept to close, handshake included): at most
//!   `max_connections_per_address` per source and `max_connections` in
//!   all; past either, a new one is closed before TLS. After the
//!   handshake, at most `max_connections_per_identity` per certificate CN
//!   (certificates that give no identity share one count); past it, the
//!   new connection is closed.
//! - Refusals and evictions are logged once per source (or identity) per
//!   [`REPORT_EVERY`], with a count: never a line per connection.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// The crew's connection caps and deadlines (`crew --max-connections` and
/// friends; docs/operations.md says when to change them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in all (pending handshakes included).
    pub max_connections: usize,
    /// Open connections from one source (an IPv4 address, an IPv6 /64).
    pub max_connections_per_address: usize,
    /// Open connections of one certificate identity (CN).
    pub max_connections_per_identity: usize,
    /// TLS handshakes in progress, in all.
    pub max_handshakes: usize,
    /// TLS handshakes in progress from one source.
    pub max_handshakes_per_address: usize,
    /// A TLS handshake not done by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection past TLS that has not sent the HTTP/2 preface by then
    /// is closed.
    pub preface_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: 256,
            max_connections_per_identity: 128,
            max_handshakes: 64,
            max_handshakes_per_address: 16,
            handshake_timeout: Duration::from_secs(10),
            preface_timeout: Duration::from_secs(10),
        }
    }
}

/// The longest deadline that makes sense for a handshake or a preface: a
/// client slower than this is not one.
const MAX_DEADLINE: Duration = Duration::from_secs(300);

impl ConnectionLimits {
    /// Caps and deadlines that make sense together; otherwise what is
    /// wrong, naming the flag.
    ///
    /// # Errors
    ///
    /// A zero cap or deadline, a deadline over 5 minutes, or a per-source
    /// or per-identity cap above the total it is part of.
    pub fn check(&self) -> Result<(), String> {
        let caps = [
            ("--max-connections", self.max_connections),
            ("--max-connections-per-address", self.max_connections_per_address),
            (
                "--max-connections-per-identity",
                self.max_connections_per_identity,
            ),
            ("--max-handshakes", self.max_handshakes),
            ("--max-handshakes-per-address", self.max_handshakes_per_address),
        ];
        if let Some((flag, _)) = caps.iter().find(|(_, n)| *n == 0) {
            return Err(format!("{flag} 0: no client could ever connect; at least 1"));
        }
        let within = [
            (
                "--max-connections-per-address",
                self.max_connections_per_address,
                "--max-connections",
                self.max_connections,
            ),
            (
                "--max-connections-per-identity",
                self.max_connections_per_identity,
                "--max-connections",
                self.max_connections,
            ),
            (
                "--max-handshakes-per-address",
                self.max_handshakes_per_address,
                "--max-handshakes",
                self.max_handshakes,
            ),
            (
                "--max-handshakes",
                self.max_handshakes,
                "--max-connections",
                self.max_connections,
            ),
        ];
        if let Some((part, n, whole, m)) = within.iter().find(|(_, n, _, m)| n > m) {
            return Err(format!(
                "{part} {n} is more than {whole} {m}, which it is part of"
            ));
        }
        for (flag, d) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--preface-timeout", self.preface_timeout),
        ] {
            if d.is_zero() {
                return Err(format!(
                    "{flag} 0: every connection would be dropped; at least 1ms"
                ));
            }
            if d > MAX_DEADLINE {
                return Err(format!(
                    "{flag} {d:?}: at most {MAX_DEADLINE:?} (it bounds how long a silent client holds a slot)"
                ));
            }
        }
        Ok(())
    }
}

/// Where a connection comes from, as far as caps go: an IPv4 address, or
/// an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6(Ipv6Addr::from_bits(
                    v6.to_bits() & !((1u128 << 64) - 1),
                ))),
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// How often at most a source (or identity) gets a log line about what
/// was refused to it.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Distinct sources and identities the refusal log keeps counts for; past
/// it, counts go to one line for all others (a flood from many addresses
/// must not grow the crew's memory either).
const REPORTED_AT_MOST: usize = 1024;

/// The books: what every source and identity holds now.
#[derive(Debug)]
pub struct Admission {
    limits: ConnectionLimits,
    books: Mutex<Books>,
}

#[derive(Debug, Default)]
struct Books {
    next: u64,
    connections: usize,
    handshakes: usize,
    sources: HashMap<Source, Held>,
    identities: HashMap<String, usize>,
    refused: HashMap<(String, &'static str), Tally>,
}

/// What one source holds: connections, and its pending handshakes, oldest
/// first (each with the token that drops it).
#[derive(Debug, Default)]
struct Held {
    connections: usize,
    handshakes: VecDeque<(u64, CancellationToken)>,
}

/// Refusals of one kind to one source or identity since its last line.
#[derive(Debug)]
struct Tally {
    since: Instant,
    more: u64,
}

/// Why a connection was refused or dropped, as the log says it.
pub mod why {
    pub const FULL: &str = "too many connections; closed a new one";
    pub const FULL_ADDRESS: &str = "too many connections from this address; closed a new one";
    pub const FULL_IDENTITY: &str = "too many connections of this identity; closed a new one after TLS";
    pub const EVICTED: &str = "handshake slots full: dropped this address's oldest pending handshake";
    pub const HANDSHAKE_TIMEOUT: &str = "TLS handshake timed out";
    pub const HANDSHAKE_FAILED: &str = "TLS handshake refused";
    pub const PREFACE_TIMEOUT: &str = "no HTTP/2 preface after TLS in time; closed";
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            books: Mutex::new(Books::default()),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// A slot for a connection just accepted from `addr`, with its pending
    /// handshake (whose token is cancelled if the handshake is evicted);
    /// `None` (logged) when a connection cap refuses it.
    pub fn admit(self: &Arc<Self>, addr: SocketAddr) -> Option<(Slot, Handshake)> {
        let source = Source::of(addr.ip());
        let l = &self.limits;
        let mut evicted = Vec::new();
        let admitted = {
            let mut b = tasker_common::lock(&self.books);
            let held = b.sources.get(&source).map_or(0, |h| h.connections);
            if b.connections >= l.max_connections {
                Err(why::FULL)
            } else if held >= l.max_connections_per_address {
                Err(why::FULL_ADDRESS)
            } else {
                // Room for a handshake of this source, then in all: the
                // oldest of the busiest source goes.
                let own = b.sources.get(&source).map_or(0, |h| h.handshakes.len());
                if own >= l.max_handshakes_per_address {
                    evicted.extend(b.evict(Some(source)));
                }
                if b.handshakes >= l.max_handshakes {
                    evicted.extend(b.evict(None));
                }
                let id = b.next;
                b.next += 1;
                let token = CancellationToken::new();
                b.connections += 1;
                b.handshakes += 1;
                let held = b.sources.entry(source).or_default();
                held.connections += 1;
                held.handshakes.push_back((id, token.clone()));
                Ok((id, token))
            }
        };
        for victim in evicted {
            self.refused(victim.to_string(), why::EVICTED, None);
        }
        match admitted {
            Ok((id, token)) => Some((
                Slot {
                    admission: Arc::clone(self),
                    source,
                    identity: None,
                },
                Handshake {
                    admission: Arc::clone(self),
                    source,
                    id,
                    evicted: token,
                },
            )),
            Err(why) => {
                self.refused(source.to_string(), why, None);
                None
            }
        }
    }

    /// Counts a refusal (or a drop) for `who`: its first in a while is
    /// logged at once, the rest as a count by [`report`](Self::report).
    /// `detail` goes with the first line only.
    pub fn refused(&self, who: String, why: &'static str, detail: Option<&str>) {
        let mut b = tasker_common::lock(&self.books);
        let who = if b.refused.len() >= REPORTED_AT_MOST && !b.refused.contains_key(&(who.clone(), why)) {
            "(other addresses)".to_owned()
        } else {
            who
        };
        match b.refused.get_mut(&(who.clone(), why)) {
            Some(tally) => tally.more += 1,
            None => {
                b.refused.insert(
                    (who.clone(), why),
                    Tally {
                        since: Instant::now(),
                        more: 0,
                    },
                );
                drop(b);
                match detail {
                    Some(detail) => tracing::info!(from = %who, detail = %super::logged(detail), "{why}"),
                    None => tracing::info!(from = %who, "{why}"),
                }
            }
        }
    }

    /// Logs the counts of refusals older than [`REPORT_EVERY`], one line
    /// per source (or identity) and kind, and forgets those with none
    /// since. The server calls it once a second.
    pub fn report(&self) {
        let mut lines = Vec::new();
        {
            let mut b = tasker_common::lock(&self.books);
            b.refused.retain(|(who, why), tally| {
                if tally.since.elapsed() < REPORT_EVERY {
                    return true;
                }
                if tally.more == 0 {
                    return false;
                }
                lines.push((who.clone(), *why, tally.more, tally.since.elapsed()));
                *tally = Tally {
                    since: Instant::now(),
                    more: 0,
                };
                true
            });
        }
        for (who, why, count, over) in lines {
            tracing::info!(from = %who, count, over = ?Duration::from_secs(over.as_secs()), "{why} (again)");
        }
    }

    /// How many connections and pending handshakes there are (for tests
    /// and the log).
    pub fn counts(&self) -> (usize, usize) {
        let b = tasker_common::lock(&self.books);
        (b.connections, b.handshakes)
    }
}

impl Books {
    /// Forgets a source that holds nothing: the books cost memory for the
    /// sources connected now, not for every one ever seen.
    fn forget_if_idle(&mut self, source: Source) {
        if self
            .sources
            .get(&source)
            .is_some_and(|h| h.connections == 0 && h.handshakes.is_empty())
        {
            self.sources.remove(&source);
        }
    }

    /// Drops the oldest pending handshake of `source`, or of the source
    /// with the most of them; the source that lost it.
    fn evict(&mut self, source: Option<Source>) -> Option<Source> {
        let victim = source.or_else(|| {
            self.sources
                .iter()
                .filter(|(_, h)| !h.handshakes.is_empty())
                // Most pending; among equals, the oldest pending one.
                .max_by_key(|(_, h)| (h.handshakes.len(), std::cmp::Reverse(h.handshakes[0].0)))
                .map(|(s, _)| *s)
        })?;
        let held = self.sources.get_mut(&victim)?;
        let (_, token) = held.handshakes.pop_front()?;
        self.handshakes -= 1;
        token.cancel();
        Some(victim)
    }
}

/// A pending handshake's place; dropped when the handshake ends, however.
#[derive(Debug)]
pub struct Handshake {
    admission: Arc<Admission>,
    source: Source,
    id: u64,
    /// Cancelled when a newer connection took this handshake's place.
    pub evicted: CancellationToken,
}

impl Handshake {
    /// Counts (and, throttled, logs) a failed handshake for its source;
    /// `detail` (the TLS error) goes with the source's first line.
    pub fn refused(&self, why: &'static str, detail: Option<&str>) {
        self.admission.refused(self.source.to_string(), why, detail);
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut b = tasker_common::lock(&self.admission.books);
        let Some(held) = b.sources.get_mut(&self.source) else {
            return;
        };
        // Gone already if it was evicted.
        if let Some(at) = held.handshakes.iter().position(|(id, _)| *id == self.id) {
            held.handshakes.remove(at);
            b.handshakes -= 1;
        }
        b.forget_if_idle(self.source);
    }
}

/// A connection's place in the books, from accept to close.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    source: Source,
    /// The identity it counts against, once it has one.
    identity: Option<String>,
}

impl Slot {
    /// Counts this connection against its certificate's identity (`None`:
    /// a certificate that gives none; those share one count). False
    /// (logged) when the identity holds its cap already.
    pub fn identify(&mut self, identity: Option<&str>) -> bool {
        let key = identity.unwrap_or("").to_owned();
        {
            let mut b = tasker_common::lock(&self.admission.books);
            let n = b.identities.entry(key.clone()).or_default();
            if *n < self.admission.limits.max_connections_per_identity {
                *n += 1;
                self.identity = Some(key);
                return true;
            }
        }
        let who = identity.map_or_else(|| "(no identity)".to_owned(), |i| super::logged(i).into_owned());
        self.admission
            .refused(format!("{who} at {}", self.source), why::FULL_IDENTITY, None);
        false
    }

    /// Counts (and, throttled, logs) this connection's end for `why`.
    pub fn refused(&self, why: &'static str) {
        self.admission.refused(self.source.to_string(), why, None);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut b = tasker_common::lock(&self.admission.books);
        b.connections -= 1;
        if let Some(held) = b.sources.get_mut(&self.source) {
            held.connections -= 1;
        }
        b.forget_if_idle(self.source);
        if let Some(id) = self.identity.take()
            && let Some(n) = b.identities.get_mut(&id)
        {
            *n -= 1;
            if *n == 0 {
                b.identities.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 8,
            max_connections_per_address: 4,
            max_connections_per_identity: 2,
            max_handshakes: 4,
            max_handshakes_per_address: 2,
            ..ConnectionLimits::default()
        }
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 1234)
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_64s() {
        let s = |ip: &str| Source::of(ip.parse().unwrap());
        assert_eq!(s("2001:db8:1:2:aaaa::1"), s("2001:db8:1:2:bbbb::2"));
        assert_ne!(s("2001:db8:1:2::1"), s("2001:db8:1:3::1"));
        assert_eq!(s("::ffff:10.0.0.1"), s("10.0.0.1"));
        assert_ne!(s("10.0.0.1"), s("10.0.0.2"));
        assert_eq!(s("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn a_flooding_source_loses_its_own_handshakes_not_others() {
        let a = Admission::new(limits());
        let (_s1, h1) = a.admit(at("10.0.0.1")).unwrap();
        let (_s2, h2) = a.admit(at("10.0.0.1")).unwrap();
        // Its third pending handshake evicts its own oldest.
        let (_s3, h3) = a.admit(at("10.0.0.1")).unwrap();
        assert!(h1.evicted.is_cancelled() && !h2.evicted.is_cancelled());
        // Another source fills the total: the busiest source's oldest goes.
        let (_s4, other1) = a.admit(at("10.0.0.2")).unwrap();
        let (_s5, other2) = a.admit(at("10.0.0.9")).unwrap();
        let (_s6, other3) = a.admit(at("10.0.0.8")).unwrap();
        assert!(h2.evicted.is_cancelled(), "the flooder's oldest went");
        assert!(!h3.evicted.is_cancelled());
        assert!(
            ![&other1, &other2, &other3]
                .iter()
                .any(|h| h.evicted.is_cancelled())
        );
        assert_eq!(a.counts(), (6, 4));
    }

    #[test]
    fn connection_caps_per_source_and_in_all() {
        let a = Admission::new(limits());
        let mut held: Vec<_> = (0..4).map(|_| a.admit(at("10.0.0.1")).unwrap()).collect();
        assert!(a.admit(at("10.0.0.1")).is_none(), "a fifth from one address");
        held.extend((0..4).map(|i| a.admit(at(&format!("10.0.1.{i}"))).unwrap()));
        assert!(a.admit(at("10.0.2.1")).is_none(), "past the total");
        held.pop();
        assert!(a.admit(at("10.0.2.1")).is_some(), "a slot came free");
        drop(held);
        assert_eq!(a.counts(), (0, 0));
        assert!(tasker_common::lock(&a.books).sources.is_empty());
    }

    #[test]
    fn an_identity_holds_at_most_its_cap() {
        let a = Admission::new(limits());
        let mut slots: Vec<_> = (0..3)
            .map(|i| a.admit(at(&format!("10.0.0.{i}"))).unwrap().0)
            .collect();
        assert!(slots[0].identify(Some("alice")));
        assert!(slots[1].identify(Some("alice")));
        assert!(!slots[2].identify(Some("alice")));
        assert!(slots[2].identify(Some("bob")));
        slots.remove(0);
        let mut again = a.admit(at("10.0.0.7")).unwrap().0;
        assert!(again.identify(Some("alice")), "a slot of alice's came free");
    }

    #[test]
    fn limits_that_make_no_sense_are_named() {
        assert!(ConnectionLimits::default().check().is_ok());
        let bad = |f: fn(&mut ConnectionLimits)| {
            let mut l = ConnectionLimits::default();
            f(&mut l);
            l.check().unwrap_err()
        };
        assert!(bad(|l| l.max_connections = 0).contains("--max-connections 0"));
        assert!(bad(|l| l.max_connections_per_address = 2000).contains("--max-connections-per-address 2000"));
        assert!(bad(|l| l.max_handshakes_per_address = 100).contains("--max-handshakes-per-address"));
        assert!(bad(|l| l.preface_timeout = Duration::ZERO).contains("--preface-timeout 0"));
        assert!(bad(|l| l.handshake_timeout = Duration::from_secs(3600)).contains("--handshake-timeout"));
    }
}
