//! What every Tasker certificate shares: the key type, the serial number, the
//! subject layout and the validity window.

use rcgen::{DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SerialNumber};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// The `O` of every Tasker certificate.
pub const ORGANIZATION: &str = "Tasker";

/// The `CN` of the Tasker CA.
pub const CA_COMMON_NAME: &str = "Tasker CA";

/// Default lifetime of crew and client certificates, in days.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Default lifetime of the CA, in days.
pub const DEFAULT_CA_DAYS: u32 = 3650;

/// How far in the past `not_before` is put, so that a certificate made on one
/// host is already valid on another whose clock is a little behind.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// Octets in a serial number. RFC 5280 allows up to 20; 16 with the top two
/// bits fixed leave 126 random bits (the CA/B forum asks for at least 64).
const SERIAL_LEN: usize = 16;

/// When a certificate is valid. The fields are public so that tests can make
/// expired and not-yet-valid certificates; issuing checks that
/// `not_before < not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant the certificate is valid.
    pub not_before: OffsetDateTime,
    /// Last instant the certificate is valid.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from [`CLOCK_SKEW`] ago until `days` days from now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValidity`] when `days` is 0 or reaches past year 9999.
    pub fn days_from_now(days: u32) -> Result<Validity> {
        if days == 0 {
            return Err(Error::InvalidValidity {
                reason: "a certificate must be valid for at least one day",
            });
        }
        // X.509 time has whole seconds; dropping the fraction here makes what
        // the caller holds equal to what a parser reads back.
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let not_after = now
            .checked_add(Duration::days(i64::from(days)))
            .filter(|t| t.year() <= 9999)
            .ok_or(Error::InvalidValidity {
                reason: "it ends after the year 9999",
            })?;
        Ok(Validity {
            not_before: now - CLOCK_SKEW,
            not_after,
        })
    }

    /// The default for crew and client certificates: [`DEFAULT_LEAF_DAYS`].
    ///
    /// # Errors
    ///
    /// Never in practice; see [`Validity::days_from_now`].
    pub fn leaf_default() -> Result<Validity> {
        Validity::days_from_now(DEFAULT_LEAF_DAYS)
    }

    /// The default for the CA: [`DEFAULT_CA_DAYS`].
    ///
    /// # Errors
    ///
    /// Never in practice; see [`Validity::days_from_now`].
    pub fn ca_default() -> Result<Validity> {
        Validity::days_from_now(DEFAULT_CA_DAYS)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.not_before >= self.not_after {
            return Err(Error::InvalidValidity {
                reason: "not_after is not later than not_before",
            });
        }
        Ok(())
    }
}

/// A fresh ECDSA P-256 key pair.
pub(crate) fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| Error::KeyGeneration { source })
}

/// A random positive serial number. rcgen's default is a hash of the public
/// key, which is unique but lets anyone predict it; a random serial is what
/// RFC 5280 and the CA/B forum expect.
pub(crate) fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; SERIAL_LEN];
    SystemRandom::new().fill(&mut bytes).map_err(|_| Error::Random)?;
    // Clear the sign bit so the DER INTEGER stays positive and 16 bytes long,
    // and set the next one so it never shrinks (some parsers dislike a
    // leading zero octet).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// `CN=common_name, O=Tasker[, OU=ou]`.
pub(crate) fn subject(common_name: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_now_allows_for_clock_skew() {
        let before = OffsetDateTime::now_utc();
        let v = Validity::days_from_now(10).unwrap();
        let after = OffsetDateTime::now_utc();
        assert!(v.not_before <= before - CLOCK_SKEW + Duration::seconds(1));
        assert!(v.not_before >= before - CLOCK_SKEW - Duration::seconds(1));
        assert!(v.not_after > before + Duration::days(10) - Duration::seconds(1));
        assert!(v.not_after <= after + Duration::days(10));
        assert_eq!(v.not_before.nanosecond(), 0);
        v.check().unwrap();
    }

    #[test]
    fn zero_and_absurd_lifetimes_are_refused() {
        assert!(matches!(
            Validity::days_from_now(0),
            Err(Error::InvalidValidity { .. })
        ));
        assert!(matches!(
            Validity::days_from_now(u32::MAX),
            Err(Error::InvalidValidity { .. })
        ));
        let v = Validity::days_from_now(1).unwrap();
        let backwards = Validity {
            not_before: v.not_after,
            not_after: v.not_before,
        };
        assert!(matches!(backwards.check(), Err(Error::InvalidValidity { .. })));
    }

    #[test]
    fn serials_are_random_positive_and_full_length() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_eq!(a.len(), SERIAL_LEN);
        assert_eq!(a[0] & 0xc0, 0x40);
        assert_ne!(a, b);
    }
}
