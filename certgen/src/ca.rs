//! The Tasker CA: made once per installation, then loaded from `DIR/ca.{crt,key}`
//! to sign crew and client certificates (see `leaf.rs`).

use std::fmt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
};

use crate::error::{Error, Result};
use crate::layout;
use crate::params::{self, CA_COMMON_NAME, Validity};

/// A CA certificate together with its signing key.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Makes a new self-signed CA: `CN=Tasker CA, O=Tasker`, a P-256 key,
    /// `CA:TRUE, pathlen:0` (it signs leaves only, never another CA) and key
    /// usages `keyCertSign` and `cRLSign`.
    ///
    /// # Errors
    ///
    /// An invalid `validity`, or key generation / signing failing.
    pub fn generate(validity: &Validity) -> Result<Ca> {
        Ca::generate_with_subject(validity, CA_COMMON_NAME, None)
    }

    /// [`Ca::generate`] with another subject; `testing` uses it to make CAs
    /// that impersonate the real one or a client.
    pub(crate) fn generate_with_subject(validity: &Validity, cn: &str, ou: Option<&str>) -> Result<Ca> {
        validity.check()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = params::subject(cn, ou);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(params::random_serial()?);
        let key = params::new_key()?;
        let cert = params.self_signed(&key).map_err(|source| Error::Sign {
            subject: cn.to_owned(),
            source,
        })?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `DIR/ca.crt` and `DIR/ca.key`, checking that the certificate is a
    /// CA and that the key is its key (a mismatched pair would sign
    /// certificates that nothing verifies, which is much harder to debug).
    ///
    /// # Errors
    ///
    /// [`Error::NoCa`] when `ca.crt` does not exist; otherwise I/O and parse
    /// errors naming the file.
    pub fn load(dir: &Path) -> Result<Ca> {
        let files = layout::ca_files(dir);
        let cert_pem = match std::fs::read_to_string(&files.cert) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoCa {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(Error::io("read", &files.cert)(e)),
        };
        let key_pem = std::fs::read_to_string(&files.key).map_err(Error::io("read", &files.key))?;

        let bad_cert = |reason: String| Error::BadCertificate {
            path: files.cert.clone(),
            reason,
        };
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| bad_cert(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(bad_cert(format!(
                "found a PEM {:?} block, not a CERTIFICATE",
                pem.label
            )));
        }
        let x509 = pem.parse_x509().map_err(|e| bad_cert(e.to_string()))?;
        if !x509.is_ca() {
            return Err(Error::NotACa { path: files.cert });
        }

        let key = KeyPair::from_pem(&key_pem).map_err(|source| Error::BadKey {
            path: files.key.clone(),
            source,
        })?;
        if key.subject_public_key_info() != x509.public_key().raw {
            return Err(Error::KeyMismatch {
                cert: files.cert,
                key: files.key,
            });
        }

        let issuer = Issuer::from_ca_cert_der(&pem.contents.as_slice().into(), key)
            .map_err(|e| bad_cert(e.to_string()))?;
        Ok(Ca {
            cert_pem,
            key_pem,
            issuer,
        })
    }

    /// The CA certificate, PEM. This is what crews and foremen trust.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM. Keep it secret: it signs identities.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for Ca {
    /// Shows the issuer but never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("issuer", &self.issuer)
            .field("key_pem", &"[elided]")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pem::write_ca;
    use crate::test_support::{parse, signed_by};
    use crate::{Role, Validity};

    #[test]
    fn generated_ca_has_the_tasker_subject_and_ca_extensions() {
        let validity = Validity::days_from_now(3650).unwrap();
        let ca = Ca::generate(&validity).unwrap();
        let cert = parse(ca.cert_pem());
        assert_eq!(cert.cn, ["Tasker CA"]);
        assert_eq!(cert.o, ["Tasker"]);
        assert!(cert.ou.is_empty(), "the CA has no role: {:?}", cert.ou);
        assert_eq!(cert.issuer, cert.subject, "self-signed");
        assert_eq!(cert.ca, Some((true, Some(0))), "CA:TRUE, pathlen:0");
        assert!(cert.basic_constraints_critical);
        assert_eq!(cert.key_usage.as_deref(), Some(&["keyCertSign", "cRLSign"][..]));
        assert_eq!(cert.eku, None);
        assert_eq!(cert.sans, None);
        assert_eq!(cert.not_before, validity.not_before);
        assert_eq!(cert.not_after, validity.not_after);
        assert!(cert.p256_sha256);
        assert!(
            cert.serial.len() >= 8,
            "at least 64 random bits: {:?}",
            cert.serial
        );
        assert!(signed_by(ca.cert_pem(), ca.cert_pem()));
        assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn two_cas_have_different_keys_and_serials() {
        let validity = Validity::ca_default().unwrap();
        let (a, b) = (Ca::generate(&validity).unwrap(), Ca::generate(&validity).unwrap());
        assert_ne!(a.key_pem(), b.key_pem());
        assert_ne!(parse(a.cert_pem()).serial, parse(b.cert_pem()).serial);
        assert!(!signed_by(a.cert_pem(), b.cert_pem()));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let ca = Ca::generate(&Validity::ca_default().unwrap()).unwrap();
        let debug = format!("{ca:?}");
        assert!(
            !debug.contains("PRIVATE KEY") && !debug.contains(&ca.key_pem()[30..60]),
            "{debug}"
        );
    }

    #[test]
    fn a_loaded_ca_signs_certificates_that_verify_against_the_written_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(&Validity::ca_default().unwrap()).unwrap();
        write_ca(dir.path(), &ca, false).unwrap();
        let loaded = Ca::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        assert_eq!(loaded.key_pem(), ca.key_pem());
        let leaf = loaded
            .issue_client("alice", Role::User, &Validity::leaf_default().unwrap())
            .unwrap();
        assert!(signed_by(leaf.cert_pem(), ca.cert_pem()));
        assert_eq!(parse(leaf.cert_pem()).issuer, parse(ca.cert_pem()).subject);
    }

    #[test]
    fn loading_from_a_directory_without_a_ca_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NoCa { .. }), "{err}");
        let expected = format!(
            "no CA in {} (run `certgen ca --dir {}` first)",
            dir.path().display(),
            dir.path().display()
        );
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn loading_refuses_a_missing_key_a_foreign_key_a_leaf_and_garbage() {
        let validity = Validity::ca_default().unwrap();
        let ca = Ca::generate(&validity).unwrap();
        let other = Ca::generate(&validity).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = layout::ca_files(dir.path());

        std::fs::write(&files.cert, ca.cert_pem()).unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Io { op: "read", path, .. } if *path == files.key),
            "{err}"
        );

        std::fs::write(&files.key, other.key_pem()).unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("ca.key is not the key of"), "{err}");

        let leaf = ca
            .issue_client("alice", Role::Admin, &Validity::leaf_default().unwrap())
            .unwrap();
        std::fs::write(&files.cert, leaf.cert_pem()).unwrap();
        std::fs::write(&files.key, leaf.key_pem()).unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotACa { .. }), "{err}");

        std::fs::write(&files.cert, "not a certificate\n").unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::BadCertificate { .. }), "{err}");
        assert!(err.to_string().contains("ca.crt"), "{err}");

        std::fs::write(&files.cert, ca.cert_pem()).unwrap();
        std::fs::write(
            &files.key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = Ca::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::BadKey { .. }), "{err}");
    }
}
