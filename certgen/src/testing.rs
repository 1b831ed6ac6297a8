//! A throwaway PKI for tests, here and in other crates.
//!
//! [`TestPki::new`] makes a CA in a temporary directory laid out as SPEC §5
//! says (`ca.crt`, `ca.key`, then `crews/NAME.*` and `users/NAME.*` as
//! certificates are issued), so a crew or foreman under
//! test can be pointed at `pki.dir()` exactly as at `/etc/tasker`. It also
//! makes the certificates an attacker or a misconfiguration would present
//! ([`ClientVariant`]), so the code that must refuse them can be tested
//! against the real thing. Nothing is checked in: every certificate is
//! generated when the test runs.
//!
//! The helpers panic instead of returning errors: they are for tests, where a
//! failure to make a certificate should stop the test with the reason.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::ExtendedKeyUsagePurpose;
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

use crate::ca::Ca;
use crate::error::Result;
use crate::layout::{self, CertFiles};
use crate::leaf::{Issued, LeafProfile};
use crate::params::{CA_COMMON_NAME, Validity};
use crate::pem;
use crate::{Host, Role};

/// A client certificate, well-formed or not, for proving what is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientVariant {
    /// A good client certificate from this PKI's CA. The control case.
    Valid,
    /// Signed by another CA whose subject is identical to the real one
    /// (`CN=Tasker CA, O=Tasker`): only the signature tells them apart.
    ForeignCa,
    /// Self-signed: a CA certificate of its own claiming `CN=name, OU=role`,
    /// as `openssl req -x509` would make.
    SelfSigned,
    /// Expired yesterday (valid from 30 days ago to 1 day ago).
    Expired,
    /// Valid from tomorrow for 30 days.
    NotYetValid,
    /// No extended key usage extension at all. Note: webpki treats a missing
    /// EKU as "any purpose", so TLS accepts this certificate; refusing it is
    /// the crew's identity check's job.
    NoEku,
    /// `serverAuth` instead of `clientAuth`.
    ServerAuthOnly,
    /// A real crew certificate (`OU=crew`, `serverAuth`, the crew SANs); the
    /// role argument is ignored.
    CrewCert,
    /// `OU=crew` but with `clientAuth`: passes TLS, and must be refused by
    /// the crew's authorization (crews are never clients).
    CrewOuClientAuth,
    /// `OU=root`, not a role: passes TLS, must be refused by identity parsing.
    UnknownOu,
    /// No `OU` at all: passes TLS, must be refused by identity parsing.
    NoOu,
}

impl ClientVariant {
    /// Every variant, for table tests.
    pub const ALL: [ClientVariant; 11] = [
        ClientVariant::Valid,
        ClientVariant::ForeignCa,
        ClientVariant::SelfSigned,
        ClientVariant::Expired,
        ClientVariant::NotYetValid,
        ClientVariant::NoEku,
        ClientVariant::ServerAuthOnly,
        ClientVariant::CrewCert,
        ClientVariant::CrewOuClientAuth,
        ClientVariant::UnknownOu,
        ClientVariant::NoOu,
    ];

    /// A short kebab-case name, used in file names and test output.
    #[must_use]
    pub fn slug(self) -> &'static str {
        match self {
            ClientVariant::Valid => "valid",
            ClientVariant::ForeignCa => "foreign-ca",
            ClientVariant::SelfSigned => "self-signed",
            ClientVariant::Expired => "expired",
            ClientVariant::NotYetValid => "not-yet-valid",
            ClientVariant::NoEku => "no-eku",
            ClientVariant::ServerAuthOnly => "server-auth-only",
            ClientVariant::CrewCert => "crew-cert",
            ClientVariant::CrewOuClientAuth => "crew-ou-client-auth",
            ClientVariant::UnknownOu => "unknown-ou",
            ClientVariant::NoOu => "no-ou",
        }
    }

    /// Whether a TLS server that verifies client certificates against this
    /// PKI's CA with webpki refuses the handshake. The others get through TLS
    /// and must be refused (or, for `Valid`, accepted) by the application.
    #[must_use]
    pub fn refused_by_tls(self) -> bool {
        match self {
            ClientVariant::ForeignCa
            | ClientVariant::SelfSigned
            | ClientVariant::Expired
            | ClientVariant::NotYetValid
            | ClientVariant::ServerAuthOnly
            | ClientVariant::CrewCert => true,
            ClientVariant::Valid
            | ClientVariant::NoEku
            | ClientVariant::CrewOuClientAuth
            | ClientVariant::UnknownOu
            | ClientVariant::NoOu => false,
        }
    }
}

impl fmt::Display for ClientVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A CA in a temporary directory, removed when this is dropped.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    ca: Ca,
}

impl TestPki {
    /// Makes a CA (valid for the default ten years) and writes it to a new
    /// temporary directory as `ca.crt` and `ca.key`.
    ///
    /// # Panics
    ///
    /// If the temporary directory or the CA cannot be made.
    #[must_use]
    pub fn new() -> TestPki {
        TestPki::try_new().unwrap_or_else(|e| panic!("TestPki::new: {e}"))
    }

    /// [`TestPki::new`] returning errors instead of panicking.
    ///
    /// # Errors
    ///
    /// The temporary directory or the CA cannot be made.
    pub fn try_new() -> Result<TestPki> {
        let dir = tempfile::Builder::new()
            .prefix("tasker-test-pki.")
            .tempdir()
            .map_err(crate::Error::io(
                "create temporary directory",
                std::env::temp_dir(),
            ))?;
        let ca = Ca::generate(&Validity::ca_default()?)?;
        pem::write_ca(dir.path(), &ca, false)?;
        Ok(TestPki { dir, ca })
    }

    /// The PKI directory: what a crew takes as `--certs` and certgen as `--dir`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA.
    #[must_use]
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// `DIR/ca.crt`.
    #[must_use]
    pub fn ca_cert_path(&self) -> PathBuf {
        layout::ca_files(self.dir()).cert
    }

    /// The CA certificate, PEM.
    #[must_use]
    pub fn ca_cert_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// Issues and writes `crews/NAME.{crt,key}` with the default SANs (`NAME`,
    /// `localhost`, `127.0.0.1`, `::1`). Issuing the same name again replaces it.
    ///
    /// # Panics
    ///
    /// On an invalid name or a failed write.
    #[must_use]
    pub fn crew(&self, name: &str) -> CertFiles {
        self.crew_with_hosts(name, &[])
    }

    /// [`TestPki::crew`] with extra `--host`s (IP literals or DNS names).
    ///
    /// # Panics
    ///
    /// On an invalid name or host, or a failed write.
    #[must_use]
    pub fn crew_with_hosts(&self, name: &str, hosts: &[&str]) -> CertFiles {
        let result = (|| {
            let hosts = hosts.iter().map(|h| Host::parse(h)).collect::<Result<Vec<_>>>()?;
            let issued = self.ca.issue_crew(name, &hosts, &Validity::leaf_default()?)?;
            pem::write_crew(self.dir(), name, &issued, true)
        })();
        result.unwrap_or_else(|e| panic!("TestPki::crew({name:?}): {e}"))
    }

    /// Issues and writes `users/NAME.{crt,key}` with `role` (admin, user or
    /// viewer). Never chowns, whether or not a Linux user `NAME` exists.
    /// Issuing the same name again replaces it.
    ///
    /// # Panics
    ///
    /// On an invalid name, [`Role::Crew`], or a failed write.
    #[must_use]
    pub fn user(&self, name: &str, role: Role) -> CertFiles {
        let result = (|| {
            let issued = self.ca.issue_client(name, role, &Validity::leaf_default()?)?;
            pem::write_user_files(self.dir(), name, &issued, true, None)
        })();
        result.unwrap_or_else(|e| panic!("TestPki::user({name:?}, {role}): {e}"))
    }

    /// A client certificate and key (PEM, not written to disk) of the given
    /// variant, with `CN=name` and `OU=role` unless the variant says otherwise.
    ///
    /// # Panics
    ///
    /// If making the certificate fails (e.g. an invalid name).
    #[must_use]
    pub fn client_with(&self, name: &str, role: Role, variant: ClientVariant) -> Issued {
        self.try_client_with(name, role, variant)
            .unwrap_or_else(|e| panic!("TestPki::client_with({name:?}, {role}, {variant}): {e}"))
    }

    /// [`TestPki::client_with`], written to `DIR/hostile/VARIANT-NAME.{crt,key}`
    /// for code that takes paths.
    ///
    /// # Panics
    ///
    /// If making or writing the certificate fails.
    #[must_use]
    pub fn client_files_with(&self, name: &str, role: Role, variant: ClientVariant) -> CertFiles {
        let issued = self.client_with(name, role, variant);
        let files = layout::leaf_files(&self.dir().join("hostile"), &format!("{}-{name}", variant.slug()));
        let result = std::fs::create_dir_all(self.dir().join("hostile"))
            .map_err(crate::Error::io("create directory", self.dir().join("hostile")))
            .and_then(|()| pem::write_pair(&files, issued.cert_pem(), issued.key_pem(), true, None));
        result.unwrap_or_else(|e| panic!("TestPki::client_files_with({name:?}, {role}, {variant}): {e}"));
        files
    }

    fn try_client_with(&self, name: &str, role: Role, variant: ClientVariant) -> Result<Issued> {
        crate::validate_name(name)?;
        let validity = Validity::leaf_default()?;
        let client = |ou: Option<&'static str>, ekus: Vec<ExtendedKeyUsagePurpose>, validity: Validity| {
            self.ca.sign(&LeafProfile {
                common_name: name,
                ou,
                ekus,
                sans: Vec::new(),
                validity,
            })
        };
        let client_auth = || vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        match variant {
            ClientVariant::Valid => self.ca.issue_client(name, role, &validity),
            ClientVariant::ForeignCa => {
                let foreign = Ca::generate(&Validity::ca_default()?)?;
                foreign.issue_client(name, role, &validity)
            }
            ClientVariant::SelfSigned => {
                // What `openssl req -x509 -subj /CN=alice/O=Tasker/OU=admin`
                // makes: a self-signed CA certificate claiming the identity.
                let own = Ca::generate_with_subject(&validity, name, Some(role.as_ou()))?;
                Ok(Issued::from_pems(
                    own.cert_pem().to_owned(),
                    own.key_pem().to_owned(),
                ))
            }
            ClientVariant::Expired => client(
                Some(role.as_ou()),
                client_auth(),
                Validity {
                    not_before: now - Duration::days(30),
                    not_after: now - Duration::days(1),
                },
            ),
            ClientVariant::NotYetValid => client(
                Some(role.as_ou()),
                client_auth(),
                Validity {
                    not_before: now + Duration::days(1),
                    not_after: now + Duration::days(31),
                },
            ),
            ClientVariant::NoEku => client(Some(role.as_ou()), Vec::new(), validity),
            ClientVariant::ServerAuthOnly => client(
                Some(role.as_ou()),
                vec![ExtendedKeyUsagePurpose::ServerAuth],
                validity,
            ),
            ClientVariant::CrewCert => self.ca.issue_crew(name, &[], &validity),
            ClientVariant::CrewOuClientAuth => client(Some(Role::Crew.as_ou()), client_auth(), validity),
            ClientVariant::UnknownOu => client(Some("root"), client_auth(), validity),
            ClientVariant::NoOu => client(None, client_auth(), validity),
        }
    }

    /// Revokes `files`' certificate: `DIR/crl.pem`, as `certgen revoke` writes it.
    ///
    /// # Panics
    ///
    /// If the certificate is not this CA's or the CRL cannot be written.
    pub fn revoke(&self, files: &CertFiles) -> crate::crl::CrlWritten {
        crate::crl::revoke(self.dir(), &files.cert, crate::crl::DEFAULT_CRL_DAYS)
            .unwrap_or_else(|e| panic!("TestPki::revoke({}): {e}", files.cert.display()))
    }

    /// Writes a CRL that revokes nothing and expired yesterday: crews must
    /// then refuse everyone (fail closed).
    ///
    /// # Panics
    ///
    /// If the CRL cannot be written.
    pub fn write_expired_crl(&self) {
        let now = OffsetDateTime::now_utc();
        crate::crl::write_dated(
            self.dir(),
            &self.ca,
            &[],
            1_000,
            now - Duration::days(30),
            now - Duration::days(1),
        )
        .unwrap_or_else(|e| panic!("TestPki::write_expired_crl: {e}"));
    }

    /// A second, unrelated CA with the same subject as this one's
    /// (`CN=Tasker CA`), for tests of a crew or foreman trusting the wrong CA.
    ///
    /// # Panics
    ///
    /// If making the CA fails.
    #[must_use]
    pub fn foreign_ca() -> Ca {
        Validity::ca_default()
            .and_then(|validity| Ca::generate(&validity))
            .unwrap_or_else(|e| panic!("TestPki::foreign_ca ({CA_COMMON_NAME}): {e}"))
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{parse, signed_by};

    #[test]
    fn the_pki_can_be_shared_with_async_tasks_and_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TestPki>();
        send_sync::<Ca>();
        send_sync::<Issued>();
    }

    #[test]
    fn the_pki_is_laid_out_as_the_spec_says() {
        let pki = TestPki::new();
        let ca = layout::ca_files(pki.dir());
        assert_eq!(std::fs::read_to_string(&ca.cert).unwrap(), pki.ca_cert_pem());
        assert_eq!(pki.ca_cert_path(), ca.cert);
        assert!(ca.key.exists());
        Ca::load(pki.dir()).unwrap();

        let crew = pki.crew_with_hosts("alpha", &["alpha.test", "192.0.2.7"]);
        assert_eq!(crew, layout::crew_files(pki.dir(), "alpha"));
        let cert = parse(&std::fs::read_to_string(&crew.cert).unwrap());
        assert_eq!(cert.ou, ["crew"]);
        assert!(cert.sans.unwrap().contains(&"IP:192.0.2.7".to_owned()));

        let alice = pki.user("alice", Role::Admin);
        assert_eq!(alice, layout::user_files(pki.dir(), "alice"));
        assert_eq!(
            parse(&std::fs::read_to_string(&alice.cert).unwrap()).ou,
            ["admin"]
        );
        // Re-issuing replaces.
        let again = pki.user("alice", Role::Viewer);
        assert_eq!(
            parse(&std::fs::read_to_string(&again.cert).unwrap()).ou,
            ["viewer"]
        );
    }

    #[test]
    fn every_variant_is_what_it_claims() {
        let pki = TestPki::new();
        let ca_subject = parse(pki.ca_cert_pem()).subject;
        let now = OffsetDateTime::now_utc();
        for variant in ClientVariant::ALL {
            let issued = pki.client_with("alice", Role::Admin, variant);
            let cert = parse(issued.cert_pem());
            let ours = signed_by(issued.cert_pem(), pki.ca_cert_pem());
            let valid_now = cert.not_before <= now && now <= cert.not_after;
            let ctx = format!("{variant}: {cert:?}");
            match variant {
                ClientVariant::Valid => {
                    assert!(ours && valid_now, "{ctx}");
                    assert_eq!(
                        (cert.cn, cert.ou, cert.eku.unwrap()),
                        (
                            vec!["alice".to_owned()],
                            vec!["admin".to_owned()],
                            vec!["clientAuth"]
                        )
                    );
                }
                ClientVariant::ForeignCa => {
                    assert!(!ours && valid_now, "{ctx}");
                    assert_eq!(cert.issuer, ca_subject, "same issuer name, different key");
                    assert_eq!(cert.ou, ["admin"]);
                }
                ClientVariant::SelfSigned => {
                    assert!(!ours && valid_now, "{ctx}");
                    assert_eq!(cert.issuer, cert.subject);
                    assert!(signed_by(issued.cert_pem(), issued.cert_pem()));
                    assert_eq!(
                        (cert.cn, cert.ou),
                        (vec!["alice".to_owned()], vec!["admin".to_owned()])
                    );
                }
                ClientVariant::Expired => assert!(ours && cert.not_after < now, "{ctx}"),
                ClientVariant::NotYetValid => assert!(ours && cert.not_before > now, "{ctx}"),
                ClientVariant::NoEku => assert!(ours && valid_now && cert.eku.is_none(), "{ctx}"),
                ClientVariant::ServerAuthOnly => {
                    assert!(ours && valid_now, "{ctx}");
                    assert_eq!(cert.eku.unwrap(), ["serverAuth"]);
                }
                ClientVariant::CrewCert => {
                    assert!(ours && valid_now, "{ctx}");
                    assert_eq!(
                        (cert.ou, cert.eku.unwrap()),
                        (vec!["crew".to_owned()], vec!["serverAuth"])
                    );
                }
                ClientVariant::CrewOuClientAuth => {
                    assert!(ours && valid_now, "{ctx}");
                    assert_eq!(
                        (cert.ou, cert.eku.unwrap()),
                        (vec!["crew".to_owned()], vec!["clientAuth"])
                    );
                }
                ClientVariant::UnknownOu => assert!(ours && valid_now && cert.ou == ["root"], "{ctx}"),
                ClientVariant::NoOu => assert!(ours && valid_now && cert.ou.is_empty(), "{ctx}"),
            }
        }
    }

    #[test]
    fn hostile_certificates_can_be_written_for_code_that_takes_paths() {
        let pki = TestPki::new();
        let files = pki.client_files_with("alice", Role::User, ClientVariant::Expired);
        assert_eq!(files.cert, pki.dir().join("hostile/expired-alice.crt"));
        let cert = parse(&std::fs::read_to_string(&files.cert).unwrap());
        assert!(cert.not_after < OffsetDateTime::now_utc());
        assert!(files.key.exists());
    }
}
