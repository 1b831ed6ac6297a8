//! The crew trusts neither its files nor its flags: a certificate, key or
//! CRL path that is a FIFO, a link to /dev/zero or a huge file, and flag
//! values that make no sense, each end the start at once with exit 2 and
//! one line naming the file or flag and the problem (never a hang, never
//! memory filled by an endless read).

use std::ffi::OsString;
use std::path::Path;

use certgen::testing::TestPki;

use crate::support::*;

/// Replaces `path` with what `make` puts there.
fn replace(path: &Path, make: impl FnOnce(&Path)) {
    std::fs::remove_file(path).unwrap();
    make(path);
}

#[tokio::test]
async fn a_certificate_that_is_a_fifo_is_refused_without_blocking() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("fifo"));
    let files = pki.crew(&name);
    replace(&files.cert, |p| {
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    });
    let crt = files.cert.display().to_string();
    refused_at_once(
        &flags(&name, pki.dir(), state.path(), free_port()),
        &[&crt, "a FIFO"],
    )
    .await;
}

#[tokio::test]
async fn a_key_or_ca_linked_to_dev_zero_is_refused_without_reading_it() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("zero"));
    let files = pki.crew(&name);
    replace(&files.key, |p| {
        std::os::unix::fs::symlink("/dev/zero", p).unwrap()
    });
    let key = files.key.display().to_string();
    refused_at_once(
        &flags(&name, pki.dir(), state.path(), free_port()),
        &[&key, "a character device"],
    )
    .await;
    // The CA too (it is read first).
    let ca = pki.ca_cert_path();
    let saved = std::fs::read(&ca).unwrap();
    replace(&ca, |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap());
    refused_at_once(
        &flags(&name, pki.dir(), state.path(), free_port()),
        &["ca.crt", "a character device"],
    )
    .await;
    replace(&ca, |p| std::fs::write(p, saved).unwrap());
}

#[tokio::test]
async fn an_oversized_certificate_or_crl_is_refused() {
    skip_unless_root!();
    let (pki, state, name) = (TestPki::new(), tempfile::tempdir().unwrap(), unique_name("huge"));
    let files = pki.crew(&name);
    // A real certificate with 2 MiB of comment after it: its size alone
    // refuses it.
    let mut huge = std::fs::read(&files.cert).unwrap();
    huge.extend(std::iter::repeat_n(b'#', 2 << 20));
    std::fs::write(&files.cert, &huge).unwrap();
    let crt = files.cert.display().to_string();
    refused_at_once(
        &flags(&name, pki.dir(), state.path(), free_port()),
        &[&crt, "2097", "at most 1048576"],
    )
    .await;

    let (pki, name) = (TestPki::new(), unique_name("hugecrl"));
    let _ = pki.crew(&name);
    std::fs::write(pki.dir().join("crl.pem"), vec![b'#'; 2 << 20]).unwrap();
    refused_at_once(
        &flags(&name, pki.dir(), state.path(), free_port()),
        &["crl.pem", "at most 1048576"],
    )
    .await;
}

#[tokio::test]
async fn flag_values_that_make_no_sense_are_refused_first() {
    // Checked before anything else (root, certificates): no PKI needed.
    let base = || {
        flags(
            &unique_name("flags"),
            Path::new("/nonexistent/tasker-certs"),
            Path::new("/nonexistent/state"),
            free_port(),
        )
    };
    for (extra, says) in [
        (&["--output-limit", "0"][..], "--output-limit 0"),
        (&["--output-limit", "1K"], "--output-limit 1024"),
        (
            &["--output-limit", "1G", "--output-budget", "512M"],
            "--output-budget",
        ),
        (&["--keep-jobs", "0"], "--keep-jobs 0"),
        (&["--keep-for", "0s"], "--keep-for 0"),
        (&["--shutdown-grace", "0s"], "--shutdown-grace 0"),
        (&["--max-connections", "0"], "--max-connections 0"),
        (
            &["--max-connections-per-identity", "0"],
            "--max-connections-per-identity 0",
        ),
        (
            &["--max-handshakes-per-address", "0"],
            "--max-handshakes-per-address 0",
        ),
        (
            &["--max-connections", "10", "--max-connections-per-address", "20"],
            "--max-connections-per-address 20 is more than --max-connections 10",
        ),
        (
            &["--max-connections", "10", "--max-handshakes", "20"],
            "--max-handshakes 20 is more than --max-connections 10",
        ),
        (
            &["--max-connections-per-identity", "2000"],
            "--max-connections-per-identity 2000 is more than --max-connections 1024",
        ),
        (&["--handshake-timeout", "0s"], "--handshake-timeout 0"),
        (&["--preface-timeout", "0ms"], "--preface-timeout 0"),
        (&["--preface-timeout", "1h"], "--preface-timeout"),
    ] {
        let mut args = base();
        args.extend(extra.iter().map(OsString::from));
        refused_at_once(&args, &[says]).await;
    }
}
