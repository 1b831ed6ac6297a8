//! Revocation: `DIR/crl.pem`, the CA's signed list of the certificates it
//! no longer vouches for. Crews read it at start and again whenever it
//! changes. A CRL expires (its nextUpdate); after that crews refuse every
//! client until it is signed again (`certgen crl`), so that a CRL nobody
//! maintains fails closed.
//!
//! The file is the whole state: revoking reads the revoked serials from
//! the current list, adds one and signs a new list with the next number.
//! It is written to a temporary file and renamed over the old one, so a
//! crew never reads half a list.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use crate::ca::Ca;
use crate::error::{Error, Result};
use crate::params::CLOCK_SKEW;

/// The CRL's file name in the certificate directory.
pub const CRL_FILE: &str = "crl.pem";
/// How long a new CRL is valid unless told otherwise.
pub const DEFAULT_CRL_DAYS: u32 = 90;

/// A revoked serial number (its raw bytes) and when it was revoked.
type Entry = (Vec<u8>, OffsetDateTime);

/// A CRL just written.
#[derive(Debug, Clone)]
pub struct CrlWritten {
    pub path: PathBuf,
    /// Certificates it revokes.
    pub revoked: usize,
    /// When crews stop accepting it.
    pub next_update: OffsetDateTime,
}

/// Where the CRL of the certificate directory `dir` lives.
#[must_use]
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join(CRL_FILE)
}

/// Adds the certificate in `cert` (a PEM file this CA issued) to the CRL
/// and signs a new one, valid for `days`. Revoking a certificate twice
/// changes nothing but the dates.
///
/// # Errors
///
/// No CA, a certificate this CA did not issue, an unreadable CRL, or a
/// failed write; each names its file.
pub fn revoke(dir: &Path, cert: &Path, days: u32) -> Result<CrlWritten> {
    let ca = Ca::load(dir)?;
    let pem = std::fs::read(cert).map_err(Error::io("read", cert))?;
    let bad = |reason: String| Error::BadCertificate {
        path: cert.to_owned(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let x509 = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes())
        .map_err(|e| bad(format!("the CA certificate: {e}")))?;
    let ca_x509 = ca_cert
        .parse_x509()
        .map_err(|e| bad(format!("the CA certificate: {e}")))?;
    if x509.verify_signature(Some(ca_x509.public_key())).is_err() {
        return Err(bad("this CA did not issue it".to_owned()));
    }
    let serial = x509.raw_serial().to_vec();
    let (mut revoked, number) = read(dir)?;
    if !revoked.iter().any(|(s, _)| *s == serial) {
        revoked.push((serial, OffsetDateTime::now_utc()));
    }
    write(dir, &ca, &revoked, number + 1, days)
}

/// Signs the CRL again, valid for `days` from now, with the same
/// revocations (an empty list if there was none).
///
/// # Errors
///
/// No CA, an unreadable CRL, or a failed write.
pub fn refresh(dir: &Path, days: u32) -> Result<CrlWritten> {
    let ca = Ca::load(dir)?;
    let (revoked, number) = read(dir)?;
    write(dir, &ca, &revoked, number + 1, days)
}

/// The revoked serials (with their dates) and the number of the current
/// CRL; nothing and 0 when there is none.
fn read(dir: &Path) -> Result<(Vec<Entry>, u64)> {
    let path = crl_path(dir);
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let bad = |reason: String| Error::BadCrl {
        path: path.clone(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    if pem.label != "X509 CRL" {
        return Err(bad(format!("found a PEM {:?} block, not an X509 CRL", pem.label)));
    }
    let (_, crl) = x509_parser::parse_x509_crl(&pem.contents).map_err(|e| bad(e.to_string()))?;
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| (r.raw_serial().to_vec(), r.revocation_date.to_datetime()))
        .collect();
    let number = crl.crl_number().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    Ok((revoked, number))
}

fn write(dir: &Path, ca: &Ca, revoked: &[Entry], number: u64, days: u32) -> Result<CrlWritten> {
    let now = OffsetDateTime::now_utc();
    let next_update = now + time::Duration::days(i64::from(days.max(1)));
    write_dated(dir, ca, revoked, number, now - CLOCK_SKEW, next_update)
}

/// [`write`] with explicit dates (tests make expired CRLs with it).
pub(crate) fn write_dated(
    dir: &Path,
    ca: &Ca,
    revoked: &[Entry],
    number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<CrlWritten> {
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|(serial, at)| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: *at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let sign = |source| Error::Sign {
        subject: "the CRL".to_owned(),
        source,
    };
    let pem = params.signed_by(&ca.issuer).and_then(|c| c.pem()).map_err(sign)?;
    let path = crl_path(dir);
    let tmp = dir.join(format!(".{CRL_FILE}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(pem.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", &path)(e));
    }
    Ok(CrlWritten {
        path,
        revoked: revoked.len(),
        next_update,
    })
}
