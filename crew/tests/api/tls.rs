//! Who gets in: only a client with a certificate of our CA, for client
//! authentication, valid now, over TLS 1.3.

use certgen::Role;
use certgen::testing::ClientVariant;

use crate::support::*;

#[tokio::test]
async fn only_a_valid_client_certificate_of_our_ca_gets_any_rpc() {
    let crew = crew_or_skip!();
    // The control: a good certificate works.
    let mut good = crew.client(ALICE, Role::User).await;
    let info = good
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.identity.as_str(), info.role.as_str()), (ALICE, "user"));

    assert!(crew.anonymous().await.is_err(), "no client certificate");
    for variant in [
        ClientVariant::ForeignCa,
        ClientVariant::SelfSigned,
        ClientVariant::Expired,
        ClientVariant::NotYetValid,
        ClientVariant::NoEku,
        ClientVariant::ServerAuthOnly,
        ClientVariant::CrewCert,
    ] {
        let got = crew.client_variant(ALICE, Role::Admin, variant).await;
        assert!(got.is_err(), "{variant:?} got in");
    }
    // Certificates TLS lets through but that name no usable identity: every
    // call is refused, with the reason.
    for variant in [
        ClientVariant::CrewOuClientAuth,
        ClientVariant::UnknownOu,
        ClientVariant::NoOu,
    ] {
        let err = crew
            .client_variant(ALICE, Role::Admin, variant)
            .await
            .unwrap_err();
        assert!(
            err.contains("not a client") || err.contains("gives no identity"),
            "{variant:?}: {err}"
        );
    }
    // And the crew still serves the good client.
    good.info(tasker_proto::v1::InfoRequest {}).await.unwrap();
    crew.stop().await;
}

#[tokio::test]
async fn a_tls_1_2_client_is_refused() {
    let crew = crew_or_skip!();
    let files = crew.pki.user(ALICE, Role::User);
    let chain = tasker_common::pem::load_certs(&files.cert).unwrap();
    let key = tasker_common::pem::load_key(&files.key).unwrap();
    let tls12 = client_tls(
        &crew.pki.ca_cert_path(),
        Some((chain, key)),
        &[&rustls::version::TLS12],
    );
    let err = connect(crew.addr, tls12).await.unwrap_err();
    assert!(!err.is_empty());
    crew.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_does_not_block_others() {
    let crew = crew_or_skip!(|c| {
        let _ = c;
    });
    // Connections that never say a word.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(crew.addr).await.unwrap());
    }
    let t0 = std::time::Instant::now();
    let mut c = crew.client(ALICE, Role::User).await;
    c.list_jobs(tasker_proto::v1::ListJobsRequest::default())
        .await
        .unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    drop(idle);
    crew.stop().await;
}

/// The crew picks the suite, AES-128-GCM first, whatever order the client
/// offers (rustls's own client lists AES-256-GCM first); a client that
/// offers only another TLS 1.3 suite still gets it.
#[tokio::test]
async fn the_crew_chooses_aes_128_gcm_and_still_serves_other_suites() {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256};
    let crew = crew_or_skip!();
    let files = crew.pki.user(ALICE, Role::User);
    let chain = || tasker_common::pem::load_certs(&files.cert).unwrap();
    let key = || tasker_common::pem::load_key(&files.key).unwrap();
    let addr = crew.addr;
    let negotiated = |config: std::sync::Arc<rustls::ClientConfig>| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        tls.get_ref().1.negotiated_cipher_suite().unwrap().suite()
    };

    let default = client_tls(
        &crew.pki.ca_cert_path(),
        Some((chain(), key())),
        &[&rustls::version::TLS13],
    );
    assert_ne!(
        default.crypto_provider().cipher_suites[0].suite(),
        TLS13_AES_128_GCM_SHA256,
        "the client prefers another suite, or this proves nothing"
    );
    assert_eq!(negotiated(default).await, TLS13_AES_128_GCM_SHA256);

    let mut only_chacha = rustls::crypto::ring::default_provider();
    only_chacha
        .cipher_suites
        .retain(|s| s.suite() == TLS13_CHACHA20_POLY1305_SHA256);
    let roots = tasker_common::pem::load_roots(&crew.pki.ca_cert_path()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(only_chacha))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain(), key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    assert_eq!(
        negotiated(std::sync::Arc::new(config)).await,
        TLS13_CHACHA20_POLY1305_SHA256
    );
    crew.stop().await;
}

/// Connects with `files` until `refused` says the outcome is the one
/// wanted, for at most 5 s: the crew looks at its CRL once a second.
async fn until(
    crew: &TestCrew,
    files: &certgen::CertFiles,
    refused: bool,
) -> Result<crew::testing::Client, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let got = connect(crew.addr, crew::testing::user_tls(&crew.pki, files)).await;
        if got.is_err() == refused || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `certgen revoke` takes effect without a restart, for that certificate
/// only: new connections are refused and open ones closed; a CRL past its nextUpdate refuses everyone
/// (fail closed: a CRL nobody maintains must not pass for a clean one).
#[tokio::test]
async fn a_revoked_certificate_is_cut_off_without_a_restart_and_a_stale_crl_refuses_all() {
    let crew = crew_or_skip!();
    let bob = crew.pki.user(BOB, Role::User);
    let alice = crew.pki.user(ALICE, Role::User);
    let mut open = until(&crew, &bob, false).await.expect("bob gets in before");

    crew.pki.revoke(&bob);
    // (In TLS 1.3 the client has finished its side before the crew
    // refuses, so all it learns is that the connection ended.)
    assert!(
        until(&crew, &bob, true).await.is_err(),
        "bob's revoked certificate got in"
    );
    // And the connection bob opened before is closed at its next call.
    let call = open.info(tasker_proto::v1::InfoRequest {}).await;
    assert!(call.is_err(), "bob's open connection still serves: {call:?}");
    until(&crew, &alice, false).await.expect("alice still gets in");
    // A new certificate for bob is another certificate.
    let bob_again = crew.pki.user(BOB, Role::User);
    until(&crew, &bob_again, false)
        .await
        .expect("bob's new certificate gets in");

    crew.pki.write_expired_crl();
    assert!(
        until(&crew, &alice, true).await.is_err(),
        "a stale CRL let alice in"
    );
    // Signed again, it lets her in again: it was the CRL's age.
    certgen::crl::refresh(crew.pki.dir(), 30).unwrap();
    until(&crew, &alice, false)
        .await
        .expect("alice gets in with a fresh CRL");
    crew.stop().await;
}

/// A connection does not outlive its certificate: once the certificate's
/// validity ends, the connection's next call is refused and it is closed
/// (the handshake alone checks the validity only once).
#[tokio::test]
async fn a_connection_ends_when_its_certificate_does() {
    let crew = crew_or_skip!();
    let long = certgen::Validity::days_from_now(1).unwrap();
    // From five minutes ago (certgen's clock skew) to three seconds from now.
    let short = certgen::Validity {
        not_before: long.not_before,
        not_after: long.not_before + certgen::CLOCK_SKEW + std::time::Duration::from_secs(3),
    };
    let issued = crew.pki.ca().issue_client(ALICE, Role::User, &short).unwrap();
    let mut open = crew
        .client_with_pem(issued.cert_pem().as_bytes(), issued.key_pem().as_bytes())
        .await
        .expect("a certificate valid for three more seconds gets in");
    open.info(tasker_proto::v1::InfoRequest {})
        .await
        .expect("a call while it is valid");
    let end: std::time::SystemTime = short.not_after.into();
    if let Ok(left) = end.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    // Cut at its expiry (the crew looks a second after it, to the whole
    // second a certificate names); on a busy machine allow a few more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    loop {
        let call = open.info(tasker_proto::v1::InfoRequest {}).await;
        if call.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the connection outlived its certificate by 6 s: {call:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Others are served as before.
    let mut other = crew.client(BOB, Role::User).await;
    other
        .info(tasker_proto::v1::InfoRequest {})
        .await
        .expect("bob is served");
    crew.stop().await;
}
