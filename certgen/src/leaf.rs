//! Crew (server) and client certificates signed by the [`Ca`].
//!
//! Each kind gets exactly the extended key usage it needs, so a stolen client
//! key cannot pose as a crew and a crew key cannot log in as a client:
//! crews `serverAuth`, clients `clientAuth`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};

use crate::ca::Ca;
use crate::error::{Error, Result};
use crate::params::{self, Validity};
use crate::{Host, Role, validate_name};

/// A freshly issued certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    cert_pem: String,
    key_pem: String,
}

impl Issued {
    pub(crate) fn from_pems(cert_pem: String, key_pem: String) -> Issued {
        Issued { cert_pem, key_pem }
    }

    /// The certificate, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for Issued {
    /// Shows the certificate but never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

impl Ca {
    /// Issues a crew (server) certificate: `CN=name, O=Tasker, OU=crew`, EKU
    /// `serverAuth` only, key usage `digitalSignature`, and SANs `name`,
    /// `localhost`, `127.0.0.1`, `::1` and each of `hosts` (duplicates dropped).
    ///
    /// # Errors
    ///
    /// An invalid name or validity, or signing failing.
    pub fn issue_crew(&self, name: &str, hosts: &[Host], validity: &Validity) -> Result<Issued> {
        validate_name(name)?;
        self.sign(&LeafProfile {
            common_name: name,
            ou: Some(Role::Crew.as_ou()),
            ekus: vec![ExtendedKeyUsagePurpose::ServerAuth],
            sans: crew_sans(name, hosts)?,
            validity: *validity,
        })
    }

    /// Issues a client certificate: `CN=name, O=Tasker, OU=role`, EKU
    /// `clientAuth` only, key usage `digitalSignature`, no SANs (the identity
    /// is the subject, and a DNS SAN of a user name would only invite
    /// confusion with a host).
    ///
    /// # Errors
    ///
    /// [`Error::NotAClientRole`] for [`Role::Crew`]; an invalid name or
    /// validity; signing failing.
    pub fn issue_client(&self, name: &str, role: Role, validity: &Validity) -> Result<Issued> {
        validate_name(name)?;
        if !role.is_client() {
            return Err(Error::NotAClientRole { role });
        }
        self.sign(&LeafProfile {
            common_name: name,
            ou: Some(role.as_ou()),
            ekus: vec![ExtendedKeyUsagePurpose::ClientAuth],
            sans: Vec::new(),
            validity: *validity,
        })
    }

    /// Signs any leaf. Not public: `issue_crew` and `issue_client` are the
    /// only shapes a real installation needs; `testing` uses this to make the
    /// malformed ones.
    pub(crate) fn sign(&self, profile: &LeafProfile<'_>) -> Result<Issued> {
        profile.validity.check()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = params::subject(profile.common_name, profile.ou);
        // An explicit CA:FALSE, so no verifier can be talked into treating a
        // leaf as an intermediate.
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages.clone_from(&profile.ekus);
        params.subject_alt_names.clone_from(&profile.sans);
        params.not_before = profile.validity.not_before;
        params.not_after = profile.validity.not_after;
        params.serial_number = Some(params::random_serial()?);
        // The AKI lets verifiers pick the right CA certificate when the CA is
        // ever renewed with the same subject.
        params.use_authority_key_identifier_extension = true;
        let key = params::new_key()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: profile.common_name.to_owned(),
                source,
            })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Everything that differs between leaf certificates.
#[derive(Debug, Clone)]
pub(crate) struct LeafProfile<'a> {
    pub(crate) common_name: &'a str,
    pub(crate) ou: Option<&'a str>,
    pub(crate) ekus: Vec<ExtendedKeyUsagePurpose>,
    pub(crate) sans: Vec<SanType>,
    pub(crate) validity: Validity,
}

/// The hosts a crew certificate is valid for: its name, `localhost`,
/// `127.0.0.1`, `::1`, then `hosts`, each once, in that order.
#[must_use]
pub fn crew_hosts(name: &str, hosts: &[Host]) -> Vec<Host> {
    // The loopback names let a crew and a foreman on one machine work without
    // flags. The name is already a valid file name; it is also parsed as a
    // host so that a crew named after its address ("10.0.0.5") gets an IP SAN.
    let name_host = Host::parse(name).unwrap_or_else(|_| Host::Dns(name.to_ascii_lowercase()));
    let defaults = [
        name_host,
        Host::Dns("localhost".to_owned()),
        Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    let mut all: Vec<Host> = Vec::new();
    for host in defaults.iter().chain(hosts) {
        if !all.contains(host) {
            all.push(host.clone());
        }
    }
    all
}

fn crew_sans(name: &str, hosts: &[Host]) -> Result<Vec<SanType>> {
    crew_hosts(name, hosts)
        .into_iter()
        .map(|host| match host {
            Host::Ip(ip) => Ok(SanType::IpAddress(ip)),
            Host::Dns(dns) => dns
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| Error::InvalidHost {
                    host: dns,
                    reason: "not representable as an IA5String",
                }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::test_support::{parse, signed_by};

    fn ca() -> Ca {
        Ca::generate(&Validity::ca_default().unwrap()).unwrap()
    }

    #[test]
    fn crew_certificates_are_server_only_with_the_default_and_extra_sans() {
        let ca = ca();
        let validity = Validity::days_from_now(30).unwrap();
        let hosts = [
            Host::parse("alpha.example.org").unwrap(),
            Host::parse("10.1.2.3").unwrap(),
        ];
        let issued = ca.issue_crew("alpha", &hosts, &validity).unwrap();
        let cert = parse(issued.cert_pem());
        assert_eq!(cert.cn, ["alpha"]);
        assert_eq!(cert.o, ["Tasker"]);
        assert_eq!(cert.ou, ["crew"]);
        assert_eq!(cert.eku.as_deref(), Some(&["serverAuth"][..]));
        assert_eq!(cert.key_usage.as_deref(), Some(&["digitalSignature"][..]));
        assert_eq!(cert.ca, Some((false, None)), "explicit CA:FALSE");
        assert_eq!(
            cert.sans.unwrap(),
            [
                "DNS:alpha",
                "DNS:localhost",
                "IP:127.0.0.1",
                "IP:::1",
                "DNS:alpha.example.org",
                "IP:10.1.2.3"
            ]
        );
        assert_eq!(
            (cert.not_before, cert.not_after),
            (validity.not_before, validity.not_after)
        );
        assert_eq!(cert.issuer, parse(ca.cert_pem()).subject);
        assert!(cert.p256_sha256);
        assert!(signed_by(issued.cert_pem(), ca.cert_pem()));
    }

    #[test]
    fn crew_sans_are_listed_once_and_an_ip_name_is_an_ip_san() {
        let hosts = [
            Host::parse("localhost").unwrap(),
            Host::parse("::1").unwrap(),
            Host::parse("10.0.0.5").unwrap(),
        ];
        let issued = ca()
            .issue_crew("10.0.0.5", &hosts, &Validity::leaf_default().unwrap())
            .unwrap();
        assert_eq!(
            parse(issued.cert_pem()).sans.unwrap(),
            ["IP:10.0.0.5", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
        );
    }

    #[test]
    fn client_certificates_are_client_only_without_sans_for_every_role() {
        let ca = ca();
        for role in [Role::Admin, Role::User, Role::Viewer] {
            let issued = ca
                .issue_client("alice", role, &Validity::leaf_default().unwrap())
                .unwrap();
            let cert = parse(issued.cert_pem());
            assert_eq!(cert.cn, ["alice"]);
            assert_eq!(cert.o, ["Tasker"]);
            assert_eq!(cert.ou, [role.as_ou()]);
            assert_eq!(cert.eku.as_deref(), Some(&["clientAuth"][..]));
            assert_eq!(cert.key_usage.as_deref(), Some(&["digitalSignature"][..]));
            assert_eq!(cert.sans, None, "no SAN extension at all");
            assert_eq!(cert.ca, Some((false, None)));
            assert!(cert.p256_sha256);
            assert!(signed_by(issued.cert_pem(), ca.cert_pem()));
        }
    }

    #[test]
    fn crew_is_not_a_client_role_and_names_are_checked() {
        let ca = ca();
        let validity = Validity::leaf_default().unwrap();
        let err = ca.issue_client("alpha", Role::Crew, &validity).unwrap_err();
        assert!(matches!(err, Error::NotAClientRole { role: Role::Crew }), "{err}");
        for bad in ["../alice", "", ".x", "a b"] {
            assert!(matches!(
                ca.issue_client(bad, Role::User, &validity),
                Err(Error::InvalidName(_))
            ));
            assert!(matches!(
                ca.issue_crew(bad, &[], &validity),
                Err(Error::InvalidName(_))
            ));
        }
    }

    #[test]
    fn any_validity_window_is_honoured_and_a_backwards_one_refused() {
        let ca = ca();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let expired = Validity {
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(1),
        };
        let cert = parse(ca.issue_client("old", Role::User, &expired).unwrap().cert_pem());
        assert_eq!(
            (cert.not_before, cert.not_after),
            (expired.not_before, expired.not_after)
        );

        let backwards = Validity {
            not_before: expired.not_after,
            not_after: expired.not_before,
        };
        let err = ca.issue_client("old", Role::User, &backwards).unwrap_err();
        assert!(matches!(err, Error::InvalidValidity { .. }), "{err}");
    }

    #[test]
    fn every_certificate_has_its_own_key_and_random_serial() {
        let ca = ca();
        let validity = Validity::leaf_default().unwrap();
        let a = ca.issue_client("alice", Role::User, &validity).unwrap();
        let b = ca.issue_client("alice", Role::User, &validity).unwrap();
        assert_ne!(a.key_pem(), b.key_pem());
        let (sa, sb) = (parse(a.cert_pem()).serial, parse(b.cert_pem()).serial);
        assert_ne!(sa, sb);
        assert!(sa.len() >= 8 && sb.len() >= 8);
        assert!(!format!("{a:?}").contains("PRIVATE KEY"));
    }
}
