//! Certificates, private keys and CA roots from PEM files.
//!
//! The paths come from flags and config files, so they can be wrong in
//! every way a path can: a FIFO would block the open or the read forever,
//! `/dev/zero` (or a link to it) would fill memory, a huge file would too.
//! Every file is therefore checked to be a regular file, opened without
//! blocking, and read with a bound; each refusal names the path and the
//! problem.

use std::fs::Metadata;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::file::FileError;

/// The largest PEM file read. A certificate chain or a key is a few KiB;
/// a CRL of this size revokes some 20,000 certificates.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// A PEM file that could not be used: its path, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct PemError {
    pub path: PathBuf,
    pub problem: Problem,
}

/// What was wrong with a PEM file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// It could not be opened or read (missing, no permission, ...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error("it is {size} bytes; a PEM file here is at most {MAX_PEM_BYTES}")]
    TooLarge { size: u64 },
    #[error("not a PEM {what}: {why}")]
    NotPem { what: &'static str, why: pem::Error },
    #[error("no {what} in it")]
    Missing { what: &'static str },
    #[error("the key is readable by others (mode {mode:o}); chmod 600 it")]
    KeyReadableByOthers { mode: u32 },
    #[error("not a usable CA: {0}")]
    UnusableCa(rustls::Error),
}

impl PemError {
    fn new(path: &Path, problem: impl Into<Problem>) -> Self {
        Self {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Every certificate of a PEM file (a chain, leaf first), at least one.
///
/// # Errors
///
/// [`PemError`] naming the path: unreadable, not a regular file, too
/// large, not PEM, or without a certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    load_all(path, "certificate")
}

/// The CA certificates of a PEM file, as the roots to verify peers with.
///
/// # Errors
///
/// As [`load_certs`], and a certificate that cannot be a trust anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| PemError::new(path, Problem::UnusableCa(e)))?;
    }
    Ok(roots)
}

/// The first private key of a PEM file. A key that others than its owner
/// may read is refused: whoever reads it can be whoever it certifies.
///
/// # Errors
///
/// As [`load_certs`], a file whose mode lets group or others read it, and
/// a file without a private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let (bytes, meta) = read_bounded(path)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(PemError::new(path, Problem::KeyReadableByOthers { mode }));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| PemError::new(path, pem_problem("private key", e)))
}

/// Every PEM object of one kind in a file, at least one; `what` names the
/// kind in errors ("certificate", "CRL").
///
/// # Errors
///
/// [`PemError`] naming the path: unreadable, not a regular file, too
/// large, not PEM, or without an object of the kind.
pub fn load_all<T: PemObject>(path: &Path, what: &'static str) -> Result<Vec<T>, PemError> {
    let (bytes, _) = read_bounded(path)?;
    let all = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::new(path, pem_problem(what, e)))?;
    if all.is_empty() {
        return Err(PemError::new(path, Problem::Missing { what }));
    }
    Ok(all)
}

/// "Found nothing" is said as such; anything else is a broken PEM.
fn pem_problem(what: &'static str, e: pem::Error) -> Problem {
    match e {
        pem::Error::NoItemsFound => Problem::Missing { what },
        why => Problem::NotPem { what, why },
    }
}

/// The whole of a regular file of at most [`MAX_PEM_BYTES`], and its
/// metadata as of the open (see [`crate::file`]).
fn read_bounded(path: &Path) -> Result<(Vec<u8>, Metadata), PemError> {
    crate::file::read_regular(path, MAX_PEM_BYTES).map_err(|e| {
        PemError::new(
            path,
            match e {
                FileError::Io(e) => Problem::Io(e),
                FileError::NotAFile(kind) => Problem::NotAFile(kind),
                FileError::TooLarge { size, .. } => Problem::TooLarge { size },
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::symlink;
    use std::time::Duration;

    /// A self-signed CA's certificate and key, as PEM.
    fn ca_pem() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes `text` to `dir/name` with `mode`.
    fn file(dir: &Path, name: &str, text: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// Runs `f` on another thread and fails the test if it takes more than
    /// a few seconds: a loader that blocks must fail here, not hang.
    fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the loader blocked for more than 5 s")
    }

    #[test]
    fn a_ca_a_chain_and_a_key_load() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_pem();
        let two = format!("{cert}{cert}");
        let chain = file(dir.path(), "chain.crt", two.as_bytes(), 0o644);
        let key = file(dir.path(), "a.key", key.as_bytes(), 0o600);
        assert_eq!(load_certs(&chain).unwrap().len(), 2);
        assert_eq!(load_roots(&chain).unwrap().len(), 2);
        load_key(&key).unwrap();
        let owner_read_only = file(dir.path(), "b.key", &std::fs::read(&key).unwrap(), 0o400);
        load_key(&owner_read_only).unwrap();
    }

    /// How a file can be wrong, and what the refusal must say besides its path.
    #[test]
    fn bad_files_are_refused_naming_the_path_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (cert, key) = ca_pem();
        let fifo = d.join("fifo.crt");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let zero = d.join("zero.crt");
        symlink("/dev/zero", &zero).unwrap();
        let key_fifo = d.join("fifo.key");
        nix::unistd::mkfifo(&key_fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let key_zero = d.join("zero.key");
        symlink("/dev/zero", &key_zero).unwrap();
        let big = usize::try_from(MAX_PEM_BYTES).unwrap() + 1;
        let garbage = "-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n";
        let unfinished = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        // A PEM certificate block whose DER is not a certificate.
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";

        type Load = fn(&Path) -> Result<(), PemError>;
        let certs: Load = |p| load_certs(p).map(drop);
        let roots: Load = |p| load_roots(p).map(drop);
        let key_of: Load = |p| load_key(p).map(drop);
        let cases: Vec<(PathBuf, Load, &str)> = vec![
            (d.join("missing.crt"), certs, "No such file"),
            (d.join("missing.key"), key_of, "No such file"),
            (d.to_owned(), certs, "it is a directory, not a regular file"),
            (fifo, certs, "it is a FIFO, not a regular file"),
            (key_fifo, key_of, "it is a FIFO, not a regular file"),
            (zero, certs, "it is a character device, not a regular file"),
            (key_zero, key_of, "it is a character device, not a regular file"),
            (
                file(d, "big.crt", &vec![b'x'; big], 0o644),
                certs,
                "is at most 1048576",
            ),
            (
                file(d, "big.key", &vec![b'x'; big], 0o600),
                key_of,
                "is at most 1048576",
            ),
            (file(d, "empty.crt", b"", 0o644), certs, "no certificate in it"),
            (
                file(d, "text.crt", b"hello\n", 0o644),
                certs,
                "no certificate in it",
            ),
            (
                file(d, "garbage.crt", garbage.as_bytes(), 0o644),
                certs,
                "not a PEM certificate",
            ),
            (
                file(d, "cut.crt", unfinished.as_bytes(), 0o644),
                certs,
                "not a PEM certificate",
            ),
            (
                file(d, "notder.crt", not_der.as_bytes(), 0o644),
                roots,
                "not a usable CA",
            ),
            (
                file(d, "key.crt", key.as_bytes(), 0o644),
                certs,
                "no certificate in it",
            ),
            (
                file(d, "cert.key", cert.as_bytes(), 0o600),
                key_of,
                "no private key in it",
            ),
            (
                file(d, "garbage.key", garbage.as_bytes(), 0o600),
                key_of,
                "not a PEM private key",
            ),
            (
                file(d, "g.key", key.as_bytes(), 0o640),
                key_of,
                "(mode 640); chmod 600 it",
            ),
            (
                file(d, "o.key", key.as_bytes(), 0o604),
                key_of,
                "(mode 604); chmod 600 it",
            ),
        ];
        for (path, load, says) in cases {
            let shown = path.display().to_string();
            let err = within_seconds(move || load(&path).expect_err("a bad file loaded"));
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("{shown}: ")),
                "{text:?} does not name {shown}"
            );
            assert!(text.contains(says), "{text:?} does not say {says:?}");
        }
    }

    #[test]
    fn a_file_of_exactly_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = ca_pem();
        let mut text = cert.into_bytes();
        text.resize(usize::try_from(MAX_PEM_BYTES).unwrap(), b'\n');
        let path = file(dir.path(), "padded.crt", &text, 0o644);
        assert_eq!(load_certs(&path).unwrap().len(), 1);
    }
}
