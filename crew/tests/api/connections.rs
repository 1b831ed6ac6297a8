//! Fair connections: a silent-connect flood from one address, or one
//! certificate holding connections, keeps no one else out; a handshake or
//! an HTTP/2 start that never comes is cut off by its deadline; a revoked
//! or expired certificate's idle connection is closed promptly; a CRL file
//! that turns bad keeps the last good one. Every client is on loopback: a
//! second source address is 127.0.0.2.
//!
//! Figures (connects/s of the flood, how long the real client took, time
//! from the CRL change to the close) are printed: `--no-capture`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use certgen::Role;
use crew::testing::{bounded, connect_from, tcp_from, wait_for};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The bytes an HTTP/2 client starts with, and an empty SETTINGS frame.
const H2_START: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A relay to `crew` from `from` that holds every chunk `delay` each way:
/// a client that far away, whose handshake takes several `delay`s.
async fn far_relay(crew: SocketAddr, from: IpAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind((HERE, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(upstream) = tcp_from(from, crew).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::join!(pump(cr, uw, delay), pump(ur, cw, delay));
            });
        }
    });
    addr
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let mut buf = vec![0; 16 << 10];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        tokio::time::sleep(delay).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A TLS connection to the crew with `files`' certificate, from `from`,
/// that has said nothing yet past its handshake.
async fn tls_to(
    crew: &TestCrew,
    files: &certgen::CertFiles,
    from: IpAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = tcp_from(from, crew.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(crew::testing::user_tls(&crew.pki, files))
        .connect(name, tcp)
        .await
        .expect("the handshake succeeds")
}

/// Reads (and drops) what comes until the peer closes; how long that took,
/// or `None` if it was still open after `limit`.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0; 4096];
    tokio::time::timeout(limit, async {
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await
    .ok()
    .map(|()| t0.elapsed())
}

/// A flood of silent connects from 127.0.0.2 (every connection left open
/// and saying nothing, a thousand a second) while a client 50 ms away (each
/// way) connects from 127.0.0.1: the client gets in and is answered every
/// time, promptly. Before the caps per address, every flooded connect
/// evicted the oldest pending handshake, the client's among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_flood_from_one_address_keeps_a_client_from_another_in() {
    let crew = crew_or_skip!();
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let flood = tokio::spawn({
        let (stop, made, addr) = (Arc::clone(&stop), Arc::clone(&made), crew.addr);
        async move {
            let mut open = VecDeque::new();
            let mut every = tokio::time::interval(Duration::from_millis(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                if let Ok(tcp) = tcp_from(THERE, addr).await {
                    made.fetch_add(1, Ordering::Relaxed);
                    // Each held open (until the crew closes it), silent.
                    open.push_back(tcp);
                    if open.len() > 512 {
                        open.pop_front();
                    }
                }
            }
            t0.elapsed()
        }
    });
    wait_for("the flood to be under way", Duration::from_secs(10), || {
        made.load(Ordering::Relaxed) >= 300
    })
    .await;

    let relay = far_relay(crew.addr, HERE, Duration::from_millis(50)).await;
    let files = crew.pki.user(ALICE, Role::User);
    let mut took = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let got = bounded(
            "the far client to connect during the flood",
            Duration::from_secs(10),
            connect_from(None, relay, crew::testing::user_tls(&crew.pki, &files)),
        )
        .await;
        took.push(t0.elapsed());
        let mut client = got.expect("the far client gets in during the flood");
        client
            .list_jobs(tasker_proto::v1::ListJobsRequest::default())
            .await
            .expect("and is answered");
    }
    stop.store(true, Ordering::Relaxed);
    let flooded = flood.await.unwrap();
    let rate = made.load(Ordering::Relaxed) as f64 / flooded.as_secs_f64();
    eprintln!(
        "flood: {} silent connects from {THERE} in {flooded:.1?} ({rate:.0}/s); the client 50 ms away \
         (each way) got in and was answered in {took:.0?}",
        made.load(Ordering::Relaxed)
    );
    assert!(
        rate > 300.0,
        "the flood was too slow to prove anything: {rate:.0}/s"
    );
    for t in &took {
        assert!(*t < Duration::from_secs(2), "the client took {took:?}");
    }
    crew.stop().await;
}

/// One certificate holds at most its share of the slots: past
/// `max_connections_per_identity` its new connections are closed, while
/// another identity still gets in; one of its own closing frees a slot.
#[tokio::test]
async fn one_certificate_cannot_hold_every_slot() {
    let crew = crew_or_skip!(|c| {
        c.connections.max_connections = 8;
        c.connections.max_connections_per_address = 8;
        c.connections.max_handshakes = 8;
        c.connections.max_handshakes_per_address = 8;
        c.connections.max_connections_per_identity = 3;
    });
    let vic = crew.pki.user(VIC, Role::Viewer);
    let tls = || crew::testing::user_tls(&crew.pki, &vic);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            connect(crew.addr, tls())
                .await
                .expect("within the viewer's share"),
        );
    }
    let err = connect(crew.addr, tls())
        .await
        .expect_err("a fourth connection of one identity");
    assert!(!err.is_empty());
    // From another address too: the cap is the identity's.
    connect_from(Some(THERE), crew.addr, tls())
        .await
        .expect_err("a fourth connection of one identity, from elsewhere");
    let mut bob = crew.client(BOB, Role::User).await;
    bob.info(tasker_proto::v1::InfoRequest {})
        .await
        .expect("another identity is served");
    for c in &mut held {
        c.info(tasker_proto::v1::InfoRequest {})
            .await
            .expect("the viewer's three still serve");
    }
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while connect(crew.addr, tls()).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "a closed connection did not free its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crew.stop().await;
}

/// A connection that completes TLS but never speaks HTTP/2 is closed at
/// its preface deadline; a real client's connection, older than the
/// deadline, is not.
#[tokio::test]
async fn a_connection_that_never_speaks_http2_is_closed_at_its_deadline() {
    let crew = crew_or_skip!(|c| c.connections.preface_timeout = Duration::from_secs(1));
    let mut client = crew.client(ALICE, Role::User).await;
    let mut silent = tls_to(&crew, &crew.pki.user(BOB, Role::User), HERE).await;
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a TLS connection that never sent the HTTP/2 preface is still open after 5 s");
    eprintln!("the silent TLS connection was closed {took:?} after its handshake (deadline 1 s)");
    assert!(
        took >= Duration::from_millis(900),
        "closed before its deadline: {took:?}"
    );
    client
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .expect("a connection that spoke HTTP/2 in time outlives the deadline");
    crew.stop().await;
}

/// A handshake that stops halfway (a record header promising a
/// ClientHello that never comes) is dropped at its deadline.
#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_its_deadline() {
    let crew = crew_or_skip!(|c| c.connections.handshake_timeout = Duration::from_secs(1));
    let mut stalled = tcp_from(HERE, crew.addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01])
        .await
        .unwrap();
    let took = closed_within(&mut stalled, Duration::from_secs(5))
        .await
        .expect("a stalled handshake is still open after 5 s");
    eprintln!("the stalled handshake was dropped after {took:?} (deadline 1 s)");
    assert!(
        took >= Duration::from_millis(900),
        "dropped before its deadline: {took:?}"
    );
    crew.stop().await;
}

/// An idle HTTP/2 connection (it sent its preface, then nothing) of a
/// certificate revoked meanwhile is closed within a second or so of the
/// CRL's change, not at a keepalive half a minute later; others' idle
/// connections stay.
#[tokio::test]
async fn a_revoked_certificates_idle_connection_is_closed_promptly() {
    let crew = crew_or_skip!();
    let bob = crew.pki.user(BOB, Role::User);
    let mut idle = tls_to(&crew, &bob, HERE).await;
    idle.write_all(H2_START).await.unwrap();
    let mut alice = crew.client(ALICE, Role::User).await;
    crew.pki.revoke(&bob);
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("the revoked certificate's idle connection is still open 5 s after the CRL changed");
    eprintln!("bob's idle connection closed {took:?} after the CRL changed (the crew looks once a second)");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    alice
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .expect("alice's connection stays");
    crew.stop().await;
}

/// An idle HTTP/2 connection ends with its certificate's validity, without
/// a call to notice it.
#[tokio::test]
async fn an_idle_connection_ends_when_its_certificate_does() {
    let crew = crew_or_skip!();
    let long = certgen::Validity::days_from_now(1).unwrap();
    // From five minutes ago (certgen's clock skew) to two seconds from now.
    let short = certgen::Validity {
        not_before: long.not_before,
        not_after: long.not_before + certgen::CLOCK_SKEW + Duration::from_secs(2),
    };
    let issued = crew.pki.ca().issue_client(ALICE, Role::User, &short).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = certgen::CertFiles {
        cert: dir.path().join("a.crt"),
        key: dir.path().join("a.key"),
    };
    std::fs::write(&files.cert, issued.cert_pem()).unwrap();
    std::fs::write(&files.key, issued.key_pem()).unwrap();
    std::fs::set_permissions(&files.key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut idle = tls_to(&crew, &files, HERE).await;
    idle.write_all(H2_START).await.unwrap();
    closed_within(&mut idle, Duration::from_secs(6))
        .await
        .expect("the connection outlived its certificate by seconds");
    let end: std::time::SystemTime = short.not_after.into();
    let after = std::time::SystemTime::now().duration_since(end);
    eprintln!("the idle connection closed {after:?} after its certificate's end");
    assert!(
        after.as_ref().is_ok_and(|d| *d < Duration::from_millis(2500)),
        "closed {after:?} after its certificate's end"
    );
    crew.stop().await;
}

/// What puts a bad file at a path.
type MakeBad = fn(&std::path::Path);

/// The CRL file turned into a FIFO, then a link to /dev/zero, then a huge
/// file: the crew neither hangs on it nor drops what it revoked; it keeps
/// the last good CRL and goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_that_turns_bad_keeps_the_last_good_one() {
    let crew = crew_or_skip!();
    let bob = crew.pki.user(BOB, Role::User);
    let alice = crew.pki.user(ALICE, Role::User);
    let tls = |f: &certgen::CertFiles| crew::testing::user_tls(&crew.pki, f);
    crew.pki.revoke(&bob);
    let deadline = Instant::now() + Duration::from_secs(5);
    while connect(crew.addr, tls(&bob)).await.is_ok() {
        assert!(Instant::now() < deadline, "bob's revocation did not take");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let crl = crew.pki.dir().join("crl.pem");
    let bad: [(&str, MakeBad); 3] = [
        ("a FIFO", |p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }),
        ("a link to /dev/zero", |p| {
            std::os::unix::fs::symlink("/dev/zero", p).unwrap()
        }),
        ("a 2 MiB file", |p| {
            std::fs::write(p, vec![b'#'; 2 << 20]).unwrap()
        }),
    ];
    for (what, make) in bad {
        std::fs::remove_file(&crl).unwrap();
        make(&crl);
        // Two looks at the CRL at least.
        let until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < until {
            bounded(
                "a connection while the CRL is bad",
                Duration::from_secs(5),
                connect(crew.addr, tls(&alice)),
            )
            .await
            .unwrap_or_else(|e| panic!("alice refused with the CRL {what}: {e}"));
            assert!(
                connect(crew.addr, tls(&bob)).await.is_err(),
                "bob got in with the CRL {what}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    crew.stop().await;
}
