//! Unit-test helper: parse a generated certificate with x509-parser (an
//! independent implementation from the rcgen that wrote it) into plain values
//! that tests can compare.

use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256};
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::X509Certificate;

/// What the tests look at in a certificate.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub cn: Vec<String>,
    pub o: Vec<String>,
    pub ou: Vec<String>,
    pub issuer: String,
    pub subject: String,
    /// `None` when there is no basicConstraints extension.
    pub ca: Option<(bool, Option<u32>)>,
    pub basic_constraints_critical: bool,
    /// Names of the key usage bits set; `None` without the extension.
    pub key_usage: Option<Vec<&'static str>>,
    /// Names of the EKUs; `None` without the extension.
    pub eku: Option<Vec<&'static str>>,
    /// `DNS:x` and `IP:x`; `None` without the extension.
    pub sans: Option<Vec<String>>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: Vec<u8>,
    /// ecPublicKey on P-256 signed with ecdsa-with-SHA256.
    pub p256_sha256: bool,
}

pub(crate) fn parse(pem: &str) -> Parsed {
    let (rest, pem) = parse_x509_pem(pem.as_bytes()).expect("PEM");
    assert!(
        rest.iter().all(u8::is_ascii_whitespace),
        "trailing data after the certificate"
    );
    assert_eq!(pem.label, "CERTIFICATE");
    let cert = pem.parse_x509().expect("X.509");
    summarize(&cert)
}

fn summarize(cert: &X509Certificate<'_>) -> Parsed {
    let strings = |iter: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        iter.map(|a| a.as_str().expect("UTF-8 attribute").to_owned())
            .collect::<Vec<_>>()
    };
    let subject = cert.subject();
    let bc = cert.basic_constraints().expect("one basicConstraints");
    let key_usage = cert.key_usage().expect("one keyUsage").map(|ku| {
        let ku = ku.value;
        [
            (ku.digital_signature(), "digitalSignature"),
            (ku.non_repudiation(), "nonRepudiation"),
            (ku.key_encipherment(), "keyEncipherment"),
            (ku.data_encipherment(), "dataEncipherment"),
            (ku.key_agreement(), "keyAgreement"),
            (ku.key_cert_sign(), "keyCertSign"),
            (ku.crl_sign(), "cRLSign"),
            (ku.encipher_only(), "encipherOnly"),
            (ku.decipher_only(), "decipherOnly"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    });
    let eku = cert.extended_key_usage().expect("one EKU").map(|eku| {
        let eku = eku.value;
        let mut names: Vec<&'static str> = [
            (eku.any, "any"),
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.code_signing, "codeSigning"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "ocspSigning"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        names.extend(eku.other.iter().map(|_| "other"));
        names
    });
    let sans = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
                            n => panic!("IP SAN of {n} bytes"),
                        };
                        format!("IP:{ip}")
                    }
                    other => format!("other:{other:?}"),
                })
                .collect()
        });
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    Parsed {
        cn: strings(&mut subject.iter_common_name()),
        o: strings(&mut subject.iter_organization()),
        ou: strings(&mut subject.iter_organizational_unit()),
        issuer: cert.issuer().to_string(),
        subject: subject.to_string(),
        ca: bc.as_ref().map(|bc| (bc.value.ca, bc.value.path_len_constraint)),
        basic_constraints_critical: bc.as_ref().is_some_and(|bc| bc.critical),
        key_usage,
        eku,
        sans,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        serial: cert.raw_serial().to_vec(),
        p256_sha256: spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
            && curve == Some(OID_EC_P256)
            && cert.signature_algorithm.algorithm == OID_SIG_ECDSA_WITH_SHA256,
    }
}

/// Whether `cert_pem` carries a valid signature by the key of `issuer_pem`.
pub(crate) fn signed_by(cert_pem: &str, issuer_pem: &str) -> bool {
    let (_, cert) = parse_x509_pem(cert_pem.as_bytes()).expect("PEM");
    let (_, issuer) = parse_x509_pem(issuer_pem.as_bytes()).expect("PEM");
    let cert = cert.parse_x509().expect("X.509");
    let issuer = issuer.parse_x509().expect("X.509");
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}
