//! The one error type of certgen. Every variant that touches the file system
//! carries the path and what was being done to it, because "permission denied"
//! alone is useless to someone running `certgen` as the wrong user.

use std::path::PathBuf;

use crate::Role;

/// Everything that can go wrong while making, loading or writing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A crew or user name that cannot be a certificate subject and a file name.
    #[error(transparent)]
    InvalidName(#[from] tasker_common::InvalidName),

    /// A `--host` that is neither an IP literal nor a DNS host name.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// Which rule it broke.
        reason: &'static str,
    },

    /// A role name that is not one of `admin`, `user`, `viewer`, `crew`.
    #[error(transparent)]
    UnknownRole(#[from] tasker_common::UnknownRole),

    /// `issue_client` was asked for `OU=crew`: crew certificates are server
    /// certificates and come from `issue_crew`.
    #[error("role {role} is not a client role (use issue_crew for crew certificates)")]
    NotAClientRole {
        /// The role that was asked for.
        role: Role,
    },

    /// A validity window that ends before it starts, or lies outside what a
    /// certificate can encode.
    #[error("invalid validity: {reason}")]
    InvalidValidity {
        /// What is wrong with it.
        reason: &'static str,
    },

    /// There is no `ca.crt` in the directory a leaf was to be issued from.
    #[error("no CA in {} (run `certgen ca --dir {}` first)", dir.display(), dir.display())]
    NoCa {
        /// The directory that was searched.
        dir: PathBuf,
    },

    /// A file to be written exists and replacing it was not asked for.
    #[error("{} exists; pass --force to replace it", path.display())]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },

    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "read", "write", "remove", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A certificate file could not be parsed.
    #[error("{}: not a valid PEM certificate: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// A key file could not be parsed.
    #[error("{}: not a valid CRL: {reason}", path.display())]
    BadCrl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    #[error("{}: not a valid PEM private key: {source}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rcgen said.
        source: rcgen::Error,
    },

    /// `ca.crt` parses but is not a CA certificate.
    #[error("{} is not a CA certificate (no basicConstraints CA:TRUE)", path.display())]
    NotACa {
        /// The file.
        path: PathBuf,
    },

    /// `ca.key` is not the private key of `ca.crt`.
    #[error("{} is not the key of {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// Generating a key pair failed.
    #[error("generating an ECDSA P-256 key: {source}")]
    KeyGeneration {
        /// What rcgen said.
        source: rcgen::Error,
    },

    /// The system random number generator failed (serial numbers).
    #[error("the system random number generator failed")]
    Random,

    /// Building or signing a certificate failed.
    #[error("signing the certificate for {subject:?}: {source}")]
    Sign {
        /// The common name of the certificate.
        subject: String,
        /// What rcgen said.
        source: rcgen::Error,
    },

    /// Looking up a Linux user by name failed (not "does not exist": that is
    /// not an error).
    #[error("looking up Linux user {name:?}: {source}")]
    UserLookup {
        /// The user name.
        name: String,
        /// The errno.
        source: nix::Error,
    },

    /// Giving a user's certificate or key to that user failed.
    #[error("chown {} to {user} ({uid}:{gid}): {source}", path.display())]
    Chown {
        /// The file.
        path: PathBuf,
        /// The Linux user name.
        user: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
        /// The errno.
        source: nix::Error,
    },
}

/// certgen's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an [`std::io::Error`] with the operation and path it came from.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
