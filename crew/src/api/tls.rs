//! The crew's TLS: rustls configured by hand, because tonic's own TLS
//! config also allows TLS 1.2 and cannot require a client EKU.
//!
//! - TLS 1.3 only (the ring provider's suites: AES-128-GCM, AES-256-GCM,
//!   CHACHA20-POLY1305, in that order of the crew's preference), ALPN `h2`.
//! - A client certificate is required and verified against the Tasker CA
//!   (webpki), and must carry the clientAuth extended key usage: webpki
//!   accepts a certificate with no EKU at all, and a crew's own certificate
//!   (serverAuth) must never act as a client.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use tasker_common::pem::PemError;

/// What can go wrong loading the crew's certificates and CRLs.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that cannot be used, named with its problem.
    #[error(transparent)]
    File(#[from] PemError),
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Checks the crew's own certificate as its clients will: signed by the
/// CA in `roots`, valid now, and for serverAuth. A crew whose certificate
/// every client would refuse says so at its start instead of serving
/// handshakes that all fail.
pub fn check_own_certificate(
    roots: &RootCertStore,
    chain: &[CertificateDer<'_>],
    name: &str,
) -> Result<(), String> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("it holds no certificate".to_owned());
    };
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("it cannot be parsed: {e}"))?;
    let algs = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let when = |f: fn(&x509_parser::certificate::Validity) -> &x509_parser::time::ASN1Time| {
        x509_parser::parse_x509_certificate(leaf.as_ref())
            .map(|(_, c)| f(c.validity()).to_string())
            .unwrap_or_default()
    };
    match cert.verify_for_usage(
        algs,
        &roots.roots,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    ) {
        Ok(_) => Ok(()),
        Err(webpki::Error::CertExpired { .. }) => Err(format!(
            "it expired ({}); make a new one with `certgen crew {name} --force`",
            when(|v| &v.not_after)
        )),
        Err(webpki::Error::CertNotValidYet { .. }) => Err(format!(
            "it is not valid yet (from {}; is this host's clock right?)",
            when(|v| &v.not_before)
        )),
        // Another CA of the same name: the issuer is found, its signature
        // does not match.
        Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
            Err("it is not signed by the CA in ca.crt, so no client would accept it".to_owned())
        }
        #[allow(deprecated)]
        Err(webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_)) => {
            Err("it lacks the serverAuth extended key usage a crew's certificate needs".to_owned())
        }
        Err(e) => Err(format!("clients would refuse it: {e}")),
    }
}

/// The crew's server config: TLS 1.3 only, client certificates required,
/// verified against `roots` (and, when there are any, the CRLs: a revoked
/// certificate, an expired CRL, or a certificate whose status the CRLs
/// cannot tell are all refused), with the clientAuth EKU.
pub fn server_config(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
    if !crls.is_empty() {
        builder = builder
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration();
    }
    let webpki = builder.build().map_err(|e| TlsError::Setup(e.to_string()))?;
    let verifier = Arc::new(RequireClientAuthEku(webpki));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Setup(format!("the crew's certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Our order, not the client's: see `provider`.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// Reads the CRLs of a PEM file (`certgen revoke` writes one).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    Ok(tasker_common::pem::load_all(path, "CRL")?)
}

/// What the crew itself needs from the CRLs (the handshake's check is
/// webpki's): the serial numbers (raw DER bytes) they revoke, to close open
/// connections; and when the first of them expires (its nextUpdate,
/// seconds since the epoch), to say so in the log.
fn crl_facts(crls: &[CertificateRevocationListDer<'_>]) -> (HashSet<Vec<u8>>, Option<i64>) {
    let mut revoked = HashSet::new();
    let mut expires: Option<i64> = None;
    for (_, crl) in crls
        .iter()
        .filter_map(|der| x509_parser::parse_x509_crl(der.as_ref()).ok())
    {
        revoked.extend(crl.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()));
        if let Some(at) = crl.next_update().map(|t| t.timestamp()) {
            expires = Some(expires.map_or(at, |e| e.min(at)));
        }
    }
    (revoked, expires)
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A CRL this close to its end is worth a warning when it is loaded.
const CRL_WARN_BEFORE: i64 = 14 * 86_400;

/// Says, once per CRL, what its end means, as it comes.
fn warn_about_expiry(path: &Path, expires: Option<i64>, said: &mut Option<i64>) {
    let Some(at) = expires else { return };
    let left = at - unix_now();
    if left <= 0 && *said != Some(at) {
        tracing::error!(crl = %path.display(), "the CRL has expired: every client is refused until it is signed again (`certgen crl`) and copied here");
        *said = Some(at);
    } else if left > 0 && left < CRL_WARN_BEFORE && said.is_none() {
        tracing::warn!(crl = %path.display(), days_left = left / 86_400, "the CRL expires soon; after that every client is refused: sign it again with `certgen crl` and copy it here");
        *said = Some(0);
    }
}

/// How often at most the CRL file is looked at for a change.
const CRL_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The crew's TLS, following its CRL file: each new connection is accepted
/// with [`current`](Self::current), which is rebuilt when the file
/// changes (looked at once a second at most, and once a second by the
/// server whatever comes in), so a revocation takes effect without a
/// restart. Each open connection [`watch`](Self::watch)es its certificate's
/// serial: a CRL loaded later that revokes it signals the connection at
/// once, idle or not. A CRL that cannot be read keeps the last good one
/// (logged); so does a CRL file that disappears: revocations are never
/// dropped behind the operator's back.
#[derive(Debug)]
pub struct ServerTls {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crl: PathBuf,
    current: std::sync::Mutex<Current>,
    /// The serials the loaded CRLs revoke.
    revoked: std::sync::RwLock<HashSet<Vec<u8>>>,
    /// The open connections' signals, by their certificate's serial.
    watchers: std::sync::Mutex<Watchers>,
}

/// Who to tell when a serial is revoked: weak, so that a closed
/// connection's entry only waits for the next sweep.
#[derive(Debug, Default)]
struct Watchers {
    by_serial: HashMap<Vec<u8>, Vec<std::sync::Weak<Revocation>>>,
    /// Entries added since the last sweep of closed connections' entries.
    added: usize,
}

/// One open connection's line to the CRL: set, and its task woken, when a
/// CRL loaded later revokes its certificate. Polling it is two atomic
/// operations (no lock shared with other connections), so every read and
/// write of every connection can afford it.
#[derive(Debug, Default)]
pub struct Revocation {
    revoked: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl Revocation {
    /// Whether the certificate was revoked; if not yet, `cx`'s task is
    /// woken when it is.
    pub fn poll_revoked(&self, cx: &mut std::task::Context<'_>) -> bool {
        use std::sync::atomic::Ordering;
        if self.revoked.load(Ordering::Acquire) {
            return true;
        }
        self.waker.register(cx.waker());
        self.revoked.load(Ordering::Acquire)
    }

    fn revoke(&self) {
        self.revoked.store(true, std::sync::atomic::Ordering::Release);
        self.waker.wake();
    }
}

#[derive(Debug)]
struct Current {
    config: Arc<ServerConfig>,
    /// The CRL file as last loaded (None: there was none).
    stamp: Option<Stamp>,
    checked: Instant,
    /// When the loaded CRL expires, and what was said about it (0: that
    /// it is near; its end: that it passed).
    expires: Option<i64>,
    said: Option<i64>,
}

/// What tells a changed file: inode, size, modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(u64, u64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

impl ServerTls {
    /// The config for `chain` and `key`, verifying clients against `roots`
    /// and the CRL file `crl` whenever it exists. An invalid CRL file here,
    /// at the start, is an error.
    pub fn new(
        roots: RootCertStore,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        crl: PathBuf,
    ) -> Result<Self, TlsError> {
        let roots = Arc::new(roots);
        let stamp = stamp(&crl);
        let crls = match stamp {
            Some(_) => load_crls(&crl)?,
            None => Vec::new(),
        };
        let (revoked, expires) = crl_facts(&crls);
        let config = server_config(Arc::clone(&roots), chain.clone(), key.clone_key(), crls)?;
        Ok(Self {
            roots,
            chain,
            key,
            crl,
            current: std::sync::Mutex::new(Current {
                config,
                stamp,
                checked: Instant::now(),
                expires,
                said: None,
            }),
            revoked: std::sync::RwLock::new(revoked),
            watchers: std::sync::Mutex::new(Watchers::default()),
        })
    }

    /// The signal that the certificate with this serial (its raw DER
    /// bytes) is revoked by a CRL loaded from now on (or was, by the one
    /// loaded now: a CRL can load between a handshake and this).
    pub fn watch(&self, serial: &[u8]) -> Arc<Revocation> {
        let signal = Arc::new(Revocation::default());
        {
            let mut w = tasker_common::lock(&self.watchers);
            // Closed connections' entries go once as many were added as
            // there were serials after the last sweep: amortized, bounded
            // by twice the open connections.
            if w.added > w.by_serial.len().max(64) {
                w.by_serial.retain(|_, v| {
                    v.retain(|s| s.strong_count() > 0);
                    !v.is_empty()
                });
                w.added = 0;
            }
            w.added += 1;
            w.by_serial
                .entry(serial.to_vec())
                .or_default()
                .push(Arc::downgrade(&signal));
        }
        // After the entry is in: a CRL loaded meanwhile is either seen here
        // or signals the entry.
        if self.is_revoked(serial) {
            signal.revoke();
        }
        signal
    }

    /// Whether the loaded CRLs revoke the certificate with this serial
    /// (its raw DER bytes).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        tasker_common::read(&self.revoked).contains(serial)
    }

    /// The config to accept the next connection with.
    pub fn current(&self) -> Arc<ServerConfig> {
        let mut cur = tasker_common::lock(&self.current);
        if cur.checked.elapsed() >= CRL_CHECK_EVERY {
            cur.checked = Instant::now();
            self.look(&mut cur);
        }
        Arc::clone(&cur.config)
    }

    /// Looks at the CRL file: says what its end means as it comes, and
    /// loads it if it changed.
    fn look(&self, cur: &mut Current) {
        let path = &self.crl;
        warn_about_expiry(path, cur.expires, &mut cur.said);
        let now = stamp(path);
        if now == cur.stamp {
            return;
        }
        let Some(now) = now else {
            tracing::warn!(crl = %path.display(), "the CRL file is gone; still refusing what it revoked (restart the crew to drop it)");
            cur.stamp = None;
            return;
        };
        let rebuilt = load_crls(path).and_then(|crls| {
            let (revoked, expires) = crl_facts(&crls);
            server_config(
                Arc::clone(&self.roots),
                self.chain.clone(),
                self.key.clone_key(),
                crls,
            )
            .map(|c| (c, revoked, expires))
        });
        match rebuilt {
            Ok((config, revoked, expires)) => {
                tracing::info!(crl = %path.display(), revoked = revoked.len(), "loaded the CRL");
                cur.config = config;
                cur.expires = expires;
                cur.said = None;
                *tasker_common::write(&self.revoked) = revoked;
                // After the set is in: a connection that starts watching
                // meanwhile is either signalled here or sees the set.
                let revoked = tasker_common::read(&self.revoked);
                let w = tasker_common::lock(&self.watchers);
                for signal in revoked
                    .iter()
                    .filter_map(|serial| w.by_serial.get(serial))
                    .flatten()
                    .filter_map(std::sync::Weak::upgrade)
                {
                    signal.revoke();
                }
            }
            Err(e) => tracing::error!(error = %e, "the CRL changed but cannot be used; keeping the last one"),
        }
        cur.stamp = Some(now);
    }
}

/// ring's suites with AES-128-GCM first (rustls puts AES-256-GCM first):
/// both are strong, AES-128 does 10 rounds to AES-256's 14, and output
/// streams are bulk data (it is also what ssh's aes128-gcm and Go's TLS
/// pick). AES-256-GCM and CHACHA20-POLY1305 stay for clients that want them.
fn provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

/// webpki's verifier plus a rule of ours: the certificate must say it is
/// for client authentication.
#[derive(Debug)]
struct RequireClientAuthEku(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequireClientAuthEku {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now)?;
        if has_client_auth_eku(end_entity) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn has_client_auth_eku(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    matches!(parsed.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth)
}
