//! Who is calling: the CN and OU of the verified client certificate.
//!
//! The TLS layer has already checked the chain, the validity period and the
//! clientAuth EKU; this reads the subject and decides the role. A subject
//! that is not exactly one CN and one known OU is not an identity: the
//! caller is refused every call with the reason, never given a default role.

use std::fmt;

/// The role an OU names (SPEC §1): certgen's, so that what it writes is
/// what the crew reads.
pub use tasker_common::Role;

/// A caller the crew can authorize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The certificate's CN: the name jobs are owned by, and the Linux user
    /// they run as.
    pub name: String,
    pub role: Role,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// What the connection knows of its peer, put in every request.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: Option<std::net::SocketAddr>,
    /// The identity, or why the certificate gives none.
    pub identity: Result<Identity, String>,
}

/// Reads CN and OU from a DER certificate.
pub fn identity_of(der: &[u8]) -> Result<Identity, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    identity_in(&cert)
}

/// Reads CN and OU from a parsed certificate.
pub fn identity_in(cert: &x509_parser::certificate::X509Certificate<'_>) -> Result<Identity, String> {
    let subject = cert.subject();
    let texts = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>| -> Result<Vec<String>, String> {
        attrs
            .into_iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .map_err(|_| "a subject attribute is not a string".to_owned())
            })
            .collect()
    };
    let cns = texts(subject.iter_common_name().collect())?;
    let ous = texts(subject.iter_organizational_unit().collect())?;
    let name = match cns.as_slice() {
        [cn] => cn.clone(),
        [] => return Err("the certificate has no CN".into()),
        _ => return Err("the certificate has more than one CN".into()),
    };
    // certgen's rule: the CN names the Linux user jobs run as and the
    // owner's cgroup directory.
    if let Err(e) = tasker_common::validate_name(&name) {
        return Err(format!(
            "the certificate's CN {name:?} is not a valid user name ({})",
            e.reason
        ));
    }
    let role = match ous.as_slice() {
        [ou] => ou
            .parse::<Role>()
            .map_err(|_| format!("the certificate's OU {ou:?} is not a Tasker role"))?,
        [] => return Err("the certificate has no OU (role)".into()),
        _ => return Err("the certificate has more than one OU: one role per certificate".into()),
    };
    Ok(Identity { name, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_one_cn_and_one_known_ou() {
        use rcgen::DnType::*;
        let id = identity_of(&cert(&[(CommonName, "alice"), (OrganizationalUnitName, "admin")])).unwrap();
        assert_eq!(
            id,
            Identity {
                name: "alice".into(),
                role: Role::Admin
            }
        );
        let crew = identity_of(&cert(&[(CommonName, "alpha"), (OrganizationalUnitName, "crew")])).unwrap();
        assert_eq!(crew.role, Role::Crew);
    }

    #[test]
    fn anything_else_is_no_identity() {
        use rcgen::DnType::*;
        let cases: Vec<(Vec<(rcgen::DnType, &str)>, &str)> = vec![
            (vec![(OrganizationalUnitName, "admin")], "no CN"),
            (vec![(CommonName, "alice")], "no OU"),
            (
                vec![(CommonName, "alice"), (OrganizationalUnitName, "superuser")],
                "not a Tasker role",
            ),
            (
                vec![(CommonName, "alice"), (OrganizationalUnitName, "Admin")],
                "not a Tasker role",
            ),
            (
                vec![
                    (CommonName, "alice"),
                    (OrganizationalUnitName, "user"),
                    // rcgen keeps one value per type: a second OU by OID.
                    (CustomDnType(vec![2, 5, 4, 11]), "admin"),
                ],
                "more than one OU",
            ),
            (
                vec![(CommonName, "../etc"), (OrganizationalUnitName, "user")],
                "not a valid user name",
            ),
            (
                vec![(CommonName, "al\nice"), (OrganizationalUnitName, "user")],
                "not a valid user name",
            ),
        ];
        for (dn, why) in cases {
            let err = identity_of(&cert(&dn)).unwrap_err();
            assert!(err.contains(why), "{err:?} lacks {why:?}");
        }
    }
}
