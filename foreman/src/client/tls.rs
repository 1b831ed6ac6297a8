//! The foreman's side of mutual TLS 1.3: our certificate, the Tasker CA,
//! and rules of ours on top of webpki's: the server must hold a *crew*
//! certificate (OU=crew) naming the address we dialed, and for a crew
//! found by discovery, whose name no person wrote, naming the crew (CN).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct};
use tasker_common::pem::{self, PemError};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file that cannot be used, named with its
    /// problem.
    #[error(transparent)]
    File(#[from] PemError),
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// What the last verified crew certificate said, for `foreman crews`.
#[derive(Clone, Debug, Default)]
pub struct SeenCert {
    pub subject: String,
    pub not_after: Option<i64>,
}

/// Builds the client config; `seen` receives the crew's certificate
/// details; `crew_named`: the name the crew's certificate must have.
pub fn client_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    seen: Arc<Mutex<SeenCert>>,
    crew_named: Option<String>,
) -> Result<Arc<ClientConfig>, TlsError> {
    Identity::load(ca, cert, key)?.client_config(seen, crew_named)
}

/// Our CA, certificate and key, read and checked once: a config per crew
/// is then made from them without reading a file (250 crews, one read).
#[derive(Clone, Debug)]
pub struct Identity {
    provider: Arc<rustls::crypto::CryptoProvider>,
    webpki: Arc<WebPkiServerVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<rustls::pki_types::PrivateKeyDer<'static>>,
    cert_path: std::path::PathBuf,
}

impl Identity {
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let roots = pem::load_roots(ca)?;
        let chain = pem::load_certs(cert)?;
        let key_der = pem::load_key(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        Ok(Self {
            provider,
            webpki,
            chain,
            key: Arc::new(key_der),
            cert_path: cert.to_owned(),
        })
    }

    /// A config for one crew: what it shows is kept in `seen`; a crew found
    /// by discovery must be named `crew_named` in its certificate.
    pub fn client_config(
        &self,
        seen: Arc<Mutex<SeenCert>>,
        crew_named: Option<String>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CrewOnly {
                webpki: Arc::clone(&self.webpki),
                seen,
                crew_named,
            }))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Setup(format!("{}: {e}", self.cert_path.display())))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// webpki (chain to our CA, validity, SAN = the dialed name, serverAuth)
/// plus: the certificate's OU is `crew`. A user's certificate from the same
/// CA can never pose as a crew.
#[derive(Debug)]
struct CrewOnly {
    webpki: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<SeenCert>>,
    crew_named: Option<String>,
}

impl ServerCertVerifier for CrewOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ok = self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let ous: Vec<&str> = cert
            .subject()
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok())
            .collect();
        if ous != ["crew"] {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        if let Some(want) = &self.crew_named {
            let cn = cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok());
            if cn != Some(want.as_str()) {
                // "certificate not valid for name "web09"; certificate is
                // only valid for crew "web01" (its CN)".
                let expected = ServerName::try_from(want.clone())
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext {
                        expected,
                        presented: vec![format!("crew {:?} (its CN)", cn.unwrap_or_default())],
                    },
                ));
            }
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = SeenCert {
                subject: cert.subject().to_string(),
                not_after: Some(cert.validity().not_after.timestamp()),
            };
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
