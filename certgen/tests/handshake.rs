//! The certificates certgen makes, proven by real TLS 1.3 handshakes over TCP
//! on 127.0.0.1 between a rustls server (a crew cert, client certificates
//! required and verified by webpki against the CA) and a rustls client (a
//! user cert, verifying the server against the CA) — the same setup the crew
//! and foreman use. Nothing is checked in: `TestPki` generates everything.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use certgen::testing::{ClientVariant, TestPki};
use certgen::{CertFiles, Issued, Role};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Every handshake is bounded, so a bug shows as a failure, not a hung test.
const LIMIT: Duration = Duration::from_secs(20);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and key as rustls wants them.
struct Pair {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Pair {
    fn from_pems(cert: &str, key: &str) -> Pair {
        Pair {
            chain: vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert PEM")],
            key: PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
        }
    }

    fn from_files(files: &CertFiles) -> Pair {
        Pair::from_pems(&read(&files.cert), &read(&files.key))
    }

    fn from_issued(issued: &Issued) -> Pair {
        Pair::from_pems(issued.cert_pem(), issued.key_pem())
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("CA accepted as root");
    Arc::new(roots)
}

/// A crew's server config: TLS 1.3 only, client certificates required.
fn server_config(ca_pem: &str, crew: Pair) -> Arc<ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider())
        .build()
        .expect("verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(verifier)
        .with_single_cert(crew.chain, crew.key)
        .expect("crew cert and key");
    Arc::new(config)
}

/// A foreman's client config: TLS 1.3 only, trusting only `ca_pem`.
fn client_config(ca_pem: &str, client: Option<Pair>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots(ca_pem));
    let config = match client {
        Some(client) => builder
            .with_client_auth_cert(client.chain, client.key)
            .expect("client cert and key"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// The subject of a certificate as the other side sees it.
#[derive(Debug, PartialEq, Eq)]
struct Peer {
    cn: String,
    ou: String,
}

fn peer(certs: Option<&[CertificateDer<'_>]>) -> Peer {
    let der = certs.and_then(<[_]>::first).expect("a peer certificate");
    let (_, cert) = X509Certificate::from_der(der).expect("peer cert parses");
    let first = |mut iter: Box<dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>> + '_>| {
        iter.next()
            .map(|a| a.as_str().expect("UTF-8").to_owned())
            .unwrap_or_default()
    };
    Peer {
        cn: first(Box::new(cert.subject().iter_common_name())),
        ou: first(Box::new(cert.subject().iter_organizational_unit())),
    }
}

/// What each side saw of one connection attempt.
#[derive(Debug)]
struct Outcome {
    /// The server accepted: the TLS version and the client's subject.
    server: Result<(ProtocolVersion, Peer), String>,
    /// The client got the server's greeting: the TLS version and the server's subject.
    client: Result<(ProtocolVersion, Peer), String>,
}

/// Connects once to a fresh server on 127.0.0.1. In TLS 1.3 the client
/// finishes its half of the handshake before the server has judged the
/// client certificate, so the client only counts as connected once it has
/// read the server's greeting; a refused client instead reads the alert.
async fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: ServerName<'static>) -> Outcome {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| format!("accept: {e}"))?;
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let seen = (
            conn.protocol_version().expect("version"),
            peer(conn.peer_certificates()),
        );
        tls.write_all(b"hello\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
        Ok::<_, String>(seen)
    });
    let client_side = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut greeting = String::new();
        tls.read_to_string(&mut greeting)
            .await
            .map_err(|e| e.to_string())?;
        if greeting != "hello\n" {
            return Err(format!("unexpected greeting {greeting:?}"));
        }
        let (_, conn) = tls.get_ref();
        Ok((
            conn.protocol_version().expect("version"),
            peer(conn.peer_certificates()),
        ))
    };
    let client = tokio::time::timeout(LIMIT, client_side)
        .await
        .expect("client side finished in time");
    let server = tokio::time::timeout(LIMIT, server_task)
        .await
        .expect("server side finished in time")
        .expect("server task did not panic");
    Outcome { server, client }
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("valid name")
}

#[tokio::test]
async fn user_and_crew_certificates_complete_a_tls13_handshake_by_name_and_by_ip() {
    let pki = TestPki::new();
    let crew = pki.crew("alpha");
    let alice = pki.user("alice", Role::Admin);
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&crew));
    let client = client_config(pki.ca_cert_pem(), Some(Pair::from_files(&alice)));

    for name in [
        localhost(),
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
        ServerName::try_from("alpha").expect("valid name"),
    ] {
        let outcome = connect(server.clone(), client.clone(), name.clone()).await;
        let (version, seen_client) = outcome
            .server
            .unwrap_or_else(|e| panic!("{name:?}: server refused: {e}"));
        assert_eq!(version, ProtocolVersion::TLSv1_3);
        assert_eq!(
            seen_client,
            Peer {
                cn: "alice".into(),
                ou: "admin".into()
            }
        );
        let (version, seen_server) = outcome
            .client
            .unwrap_or_else(|e| panic!("{name:?}: client failed: {e}"));
        assert_eq!(version, ProtocolVersion::TLSv1_3);
        assert_eq!(
            seen_server,
            Peer {
                cn: "alpha".into(),
                ou: "crew".into()
            }
        );
    }
}

#[tokio::test]
async fn every_role_is_seen_by_the_server() {
    let pki = TestPki::new();
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));
    for role in [Role::User, Role::Viewer] {
        let client = client_config(pki.ca_cert_pem(), Some(Pair::from_files(&pki.user("bob", role))));
        let (_, seen) = connect(server.clone(), client, localhost())
            .await
            .server
            .expect("accepted");
        assert_eq!(
            seen,
            Peer {
                cn: "bob".into(),
                ou: role.as_ou().into()
            }
        );
    }
}

#[tokio::test]
async fn a_client_certificate_from_a_foreign_ca_is_refused() {
    let pki = TestPki::new();
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));
    let foreign = pki.client_with("alice", Role::Admin, ClientVariant::ForeignCa);
    let client = client_config(pki.ca_cert_pem(), Some(Pair::from_issued(&foreign)));
    let outcome = connect(server, client, localhost()).await;
    let err = outcome
        .server
        .expect_err("server must refuse a foreign client certificate");
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );
    assert!(
        outcome.client.is_err(),
        "client must not get a greeting: {:?}",
        outcome.client
    );
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let pki = TestPki::new();
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));
    let expired = pki.client_with("alice", Role::Admin, ClientVariant::Expired);
    let client = client_config(pki.ca_cert_pem(), Some(Pair::from_issued(&expired)));
    let outcome = connect(server, client, localhost()).await;
    let err = outcome
        .server
        .expect_err("server must refuse an expired client certificate");
    assert!(err.to_lowercase().contains("expired"), "{err}");
    assert!(
        outcome.client.is_err(),
        "client must not get a greeting: {:?}",
        outcome.client
    );
}

/// Every hostile variant, against what `ClientVariant::refused_by_tls` says.
/// The ones TLS lets through (no EKU, OU=crew with clientAuth, a bad OU) are
/// left to the crew's identity and authorization checks, which is why this
/// table is written down: the crew's tests must refuse exactly those.
#[tokio::test]
async fn each_hostile_client_certificate_is_refused_by_tls_or_left_to_the_crew() {
    let pki = TestPki::new();
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));
    for variant in ClientVariant::ALL {
        let issued = pki.client_with("alice", Role::Admin, variant);
        let client = client_config(pki.ca_cert_pem(), Some(Pair::from_issued(&issued)));
        let outcome = connect(server.clone(), client, localhost()).await;
        if variant.refused_by_tls() {
            let Err(err) = &outcome.server else {
                panic!("{variant}: server accepted: {outcome:?}")
            };
            // Refused for the right reason, not by accident.
            let reason = match variant {
                ClientVariant::ForeignCa => "BadSignature",
                ClientVariant::SelfSigned => "CaUsedAsEndEntity",
                ClientVariant::Expired => "certificate expired",
                ClientVariant::NotYetValid => "certificate not valid yet",
                _ => "does not allow extended key usage for client authentication",
            };
            assert!(err.contains(reason), "{variant}: expected {reason:?} in {err:?}");
            assert!(
                outcome.client.is_err(),
                "{variant}: client got a greeting: {outcome:?}"
            );
        } else {
            let (_, seen) = outcome
                .server
                .unwrap_or_else(|e| panic!("{variant}: server refused: {e}"));
            assert_eq!(seen.cn, "alice", "{variant}");
        }
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = TestPki::new();
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));
    let outcome = connect(server, client_config(pki.ca_cert_pem(), None), localhost()).await;
    let err = outcome
        .server
        .expect_err("server must require a client certificate");
    assert!(
        err.contains("NoCertificatesPresented") || err.contains("no certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn the_client_refuses_a_crew_from_another_ca_or_under_a_name_not_in_its_sans() {
    let pki = TestPki::new();
    let alice = pki.user("alice", Role::User);
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&pki.crew("alpha")));

    let other = TestPki::foreign_ca();
    let trusting_other = client_config(other.cert_pem(), Some(Pair::from_files(&alice)));
    let outcome = connect(server.clone(), trusting_other, localhost()).await;
    let err = outcome
        .client
        .expect_err("client must refuse a crew it cannot verify");
    assert!(
        err.contains("UnknownIssuer") || err.contains("BadSignature"),
        "{err}"
    );

    let client = client_config(pki.ca_cert_pem(), Some(Pair::from_files(&alice)));
    let outcome = connect(
        server,
        client,
        ServerName::try_from("beta.example.org").expect("name"),
    )
    .await;
    let err = outcome
        .client
        .expect_err("client must refuse a crew whose SANs do not match");
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_crew_certificate_with_extra_hosts_verifies_for_each_of_them() {
    let pki = TestPki::new();
    let crew = pki.crew_with_hosts("alpha", &["alpha.example.org", "127.0.0.2"]);
    let server = server_config(pki.ca_cert_pem(), Pair::from_files(&crew));
    let client = client_config(
        pki.ca_cert_pem(),
        Some(Pair::from_files(&pki.user("alice", Role::User))),
    );
    for name in [
        ServerName::try_from("alpha.example.org").expect("name"),
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)).into()),
        ServerName::IpAddress(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST).into()),
    ] {
        // The TCP connection always goes to 127.0.0.1; the name is what the
        // client checks the crew's certificate against.
        let outcome = connect(server.clone(), client.clone(), name.clone()).await;
        assert!(outcome.client.is_ok(), "{name:?}: {outcome:?}");
    }
}
