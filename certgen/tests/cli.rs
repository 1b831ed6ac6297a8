//! The `certgen` binary, run as a person would, in a temporary directory.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

fn certgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certgen"))
        .args(args)
        .output()
        .expect("run certgen")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Exit 1 with exactly one line on stderr, starting "certgen: ".
#[track_caller]
fn assert_fails_with_one_line(out: &Output) -> String {
    assert_usage_or_error(out, 1)
}

/// Exit `code` with exactly one line on stderr, starting "certgen: ".
#[track_caller]
fn assert_usage_or_error(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("certgen: "), "{err:?}");
    err
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// (CN, OU, SANs) of a certificate file.
fn subject_and_sans(path: &Path) -> (String, String, Vec<String>) {
    let pem = std::fs::read(path).expect("read cert");
    let (_, pem) = parse_x509_pem(&pem).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    let attr = |mut iter: Box<dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>> + '_>| {
        iter.next()
            .map(|a| a.as_str().expect("UTF-8").to_owned())
            .unwrap_or_default()
    };
    let sans = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .map(|san| san.value.general_names.iter().map(san_string).collect())
        .unwrap_or_default();
    (
        attr(Box::new(cert.subject().iter_common_name())),
        attr(Box::new(cert.subject().iter_organizational_unit())),
        sans,
    )
}

fn san_string(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("IP:{}", IpAddr::from(v4)),
            Err(_) => format!(
                "IP:{}",
                IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("IPv4 or IPv6"))
            ),
        },
        other => format!("{other}"),
    }
}

#[test]
fn ca_crew_and_user_make_the_spec_layout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let d = dir.to_str().expect("UTF-8 path");

    let out = certgen(&["ca", "--dir", d]);
    assert_ok(&out);
    assert!(stdout(&out).contains(&format!("{d}/ca.key")), "{}", stdout(&out));
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.crt")), 0o644);
    assert_eq!(subject_and_sans(&dir.join("ca.crt")).0, "Tasker CA");

    let out = certgen(&[
        "crew",
        "alpha",
        "--host",
        "alpha.example.org",
        "--host",
        "10.0.0.5",
        "--dir",
        d,
    ]);
    assert_ok(&out);
    assert_eq!(mode(&dir.join("crews")), 0o755);
    assert_eq!(mode(&dir.join("crews/alpha.key")), 0o600);
    assert_eq!(mode(&dir.join("crews/alpha.crt")), 0o644);
    let (cn, ou, sans) = subject_and_sans(&dir.join("crews/alpha.crt"));
    assert_eq!((cn.as_str(), ou.as_str()), ("alpha", "crew"));
    assert_eq!(
        sans,
        [
            "DNS:alpha",
            "DNS:localhost",
            "IP:127.0.0.1",
            "IP:::1",
            "DNS:alpha.example.org",
            "IP:10.0.0.5"
        ]
    );

    let out = certgen(&[
        "user",
        "tasker-cli-test-nobody",
        "--role",
        "admin",
        "--days",
        "30",
        "--dir",
        d,
    ]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("no Linux user"),
        "the no-such-user note: {}",
        stderr(&out)
    );
    let (cn, ou, sans) = subject_and_sans(&dir.join("users/tasker-cli-test-nobody.crt"));
    assert_eq!((cn.as_str(), ou.as_str()), ("tasker-cli-test-nobody", "admin"));
    assert!(sans.is_empty(), "client certificates carry no SANs: {sans:?}");
    assert_eq!(mode(&dir.join("users/tasker-cli-test-nobody.key")), 0o600);

    let out = certgen(&["user", "tasker-cli-test-viewer", "--dir", d]);
    assert_ok(&out);
    assert_eq!(
        subject_and_sans(&dir.join("users/tasker-cli-test-viewer.crt")).1,
        "user",
        "default role"
    );
}

#[test]
fn existing_files_are_refused_without_force_and_replaced_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("UTF-8 path");
    assert_ok(&certgen(&["ca", "--dir", d]));
    let ca_before = std::fs::read(tmp.path().join("ca.crt")).expect("ca.crt");

    let err = assert_fails_with_one_line(&certgen(&["ca", "--dir", d]));
    assert_eq!(
        err,
        format!("certgen: {d}/ca.key exists; pass --force to replace it\n")
    );
    assert_eq!(
        std::fs::read(tmp.path().join("ca.crt")).expect("ca.crt"),
        ca_before,
        "untouched"
    );

    assert_ok(&certgen(&["crew", "alpha", "--dir", d]));
    let err = assert_fails_with_one_line(&certgen(&["crew", "alpha", "--dir", d]));
    assert!(
        err.contains("crews/alpha.key exists") && err.contains("--force"),
        "{err}"
    );

    assert_ok(&certgen(&["crew", "alpha", "--dir", d, "--force"]));
    assert_eq!(mode(&tmp.path().join("crews/alpha.key")), 0o600);
    let out = certgen(&["ca", "--dir", d, "--force"]);
    assert_ok(&out);
    assert_ne!(
        std::fs::read(tmp.path().join("ca.crt")).expect("ca.crt"),
        ca_before,
        "replaced"
    );
}

#[test]
fn bad_names_and_hosts_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("UTF-8 path");
    assert_ok(&certgen(&["ca", "--dir", d]));
    for (args, expected) in [
        (vec!["user", "../etc/passwd"], "invalid name \"../etc/passwd\""),
        (vec!["user", "a b"], "only letters, digits"),
        (vec!["crew", ".hidden"], "starts with '.' or '-'"),
        (
            vec!["crew", "alpha", "--host", "*.example.org"],
            "invalid host \"*.example.org\"",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--dir", d]);
        // A usage error, as a bad role is.
        let err = assert_usage_or_error(&certgen(&args), 2);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let err = assert_usage_or_error(&certgen(&["user", "bob", "--role", "wizard", "--dir", d]), 2);
    assert!(
        err.contains("'wizard'") && err.contains("possible values: user, admin, viewer"),
        "{err}"
    );
    assert!(
        !tmp.path().join("users").exists() && !tmp.path().join("crews").exists(),
        "nothing written"
    );
}

#[test]
fn issuing_without_a_ca_says_how_to_make_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("x");
    let d = d.to_str().expect("UTF-8 path");
    for args in [["crew", "alpha", "--dir", d], ["user", "alice", "--dir", d]] {
        let err = assert_fails_with_one_line(&certgen(&args));
        assert_eq!(
            err,
            format!("certgen: no CA in {d} (run `certgen ca --dir {d}` first)\n")
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("UTF-8 path");
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["crew"],
        vec!["user", "alice", "--role", "crew", "--dir", d],
        vec!["user", "alice", "--role", "root", "--dir", d],
        vec!["ca", "--days", "0", "--dir", d],
        vec!["ca", "--days", "many", "--dir", d],
    ] {
        let out = certgen(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert!(!tmp.path().join("ca.key").exists());
}

#[test]
fn help_explains_every_subcommand_and_option() {
    let out = certgen(&["--help"]);
    assert_ok(&out);
    let help = stdout(&out);
    for word in [
        "ca",
        "crew",
        "user",
        "revoke",
        "crl.pem",
        "/etc/tasker",
        "0600",
        "--force",
        "Exit status",
    ] {
        assert!(help.contains(word), "--help lacks {word:?}:\n{help}");
    }
    for (sub, words) in [
        ("ca", &["--dir", "--force", "--days"][..]),
        (
            "crew",
            &["--host", "--dir", "--force", "--days", "serverAuth"][..],
        ),
        (
            "user",
            &["--role", "admin", "viewer", "--dir", "--force", "--days"][..],
        ),
    ] {
        let out = certgen(&[sub, "--help"]);
        assert_ok(&out);
        let help = stdout(&out);
        for word in words {
            assert!(
                help.contains(word),
                "`certgen {sub} --help` lacks {word:?}:\n{help}"
            );
        }
    }
}

/// `certgen revoke` adds a certificate's serial to `crl.pem`, signed by the
/// CA; again, nothing more; `certgen crl` signs it again later; a
/// certificate another CA issued, or none at all, is refused.
#[test]
fn revoke_and_crl_keep_one_signed_list() {
    use x509_parser::prelude::FromDer as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("UTF-8 path");
    assert_ok(&certgen(&["ca", "--dir", d]));
    assert_ok(&certgen(&["user", "bob", "--dir", d]));
    assert_ok(&certgen(&["user", "carol", "--dir", d]));
    let serial = |who: &str| {
        let pem = std::fs::read(tmp.path().join(format!("users/{who}.crt"))).unwrap();
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        pem.parse_x509().unwrap().raw_serial().to_vec()
    };
    let crl = || {
        let pem = std::fs::read(tmp.path().join("crl.pem")).expect("crl.pem");
        let (_, pem) = parse_x509_pem(&pem).unwrap();
        assert_eq!(pem.label, "X509 CRL");
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&pem.contents).unwrap();
        let ca = std::fs::read(tmp.path().join("ca.crt")).unwrap();
        let (_, ca) = parse_x509_pem(&ca).unwrap();
        let ca = ca.parse_x509().unwrap();
        crl.verify_signature(ca.public_key()).expect("signed by the CA");
        let serials: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| r.raw_serial().to_vec())
            .collect();
        let next = crl.next_update().expect("a nextUpdate").timestamp();
        (serials, next)
    };

    let out = certgen(&["revoke", "user", "bob", "--dir", d]);
    assert_ok(&out);
    assert!(stdout(&out).contains("1 revoked"), "{}", stdout(&out));
    assert_eq!(mode(&tmp.path().join("crl.pem")), 0o644);
    assert_eq!(crl().0, vec![serial("bob")]);
    assert_ok(&certgen(&["revoke", "user", "bob", "--dir", d]));
    assert_eq!(crl().0, vec![serial("bob")], "revoking twice adds nothing");
    assert_ok(&certgen(&["revoke", "user", "carol", "--dir", d]));
    assert_eq!(crl().0, vec![serial("bob"), serial("carol")]);

    let day = 86_400;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_ok(&certgen(&["crl", "--dir", d, "--days", "7"]));
    let (serials, next) = crl();
    assert_eq!(serials.len(), 2, "the same revocations");
    assert!((next - (now + 7 * day)).abs() < 120, "valid for 7 days");

    // Another CA's certificate, and none at all.
    let other = tempfile::tempdir().expect("tempdir");
    let o = other.path().to_str().unwrap();
    assert_ok(&certgen(&["ca", "--dir", o]));
    assert_ok(&certgen(&["user", "mallory", "--dir", o]));
    std::fs::copy(
        other.path().join("users/mallory.crt"),
        tmp.path().join("users/mallory.crt"),
    )
    .unwrap();
    let err = assert_fails_with_one_line(&certgen(&["revoke", "user", "mallory", "--dir", d]));
    assert!(err.contains("this CA did not issue it"), "{err}");
    let err = assert_fails_with_one_line(&certgen(&["revoke", "crew", "nobody", "--dir", d]));
    assert!(err.contains("crews/nobody.crt"), "{err}");
    assert_eq!(crl().0.len(), 2, "a refused revocation leaves the list alone");
}
