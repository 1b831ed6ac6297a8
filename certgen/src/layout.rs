//! Where the files live (SPEC §5): `DIR/ca.{crt,key}`, `DIR/crews/NAME.{crt,key}`,
//! `DIR/users/NAME.{crt,key}`. The crew and foreman find their files through
//! these functions, so the layout is written down once.

use std::path::{Path, PathBuf};

/// The directory certgen writes to and the crew and foreman read from by default.
pub const DEFAULT_DIR: &str = "/etc/tasker";

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.crt";
/// The CA key's file name.
pub const CA_KEY: &str = "ca.key";
/// The subdirectory of crew certificates.
pub const CREWS_DIR: &str = "crews";
/// The subdirectory of user, admin and viewer certificates.
pub const USERS_DIR: &str = "users";

/// A certificate file and its key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The PEM certificate (mode 0644).
    pub cert: PathBuf,
    /// The PEM PKCS#8 private key (mode 0600).
    pub key: PathBuf,
}

/// `DIR/ca.crt` and `DIR/ca.key`.
#[must_use]
pub fn ca_files(dir: &Path) -> CertFiles {
    CertFiles {
        cert: dir.join(CA_CERT),
        key: dir.join(CA_KEY),
    }
}

/// `DIR/crews/NAME.crt` and `DIR/crews/NAME.key`. `name` is not validated
/// here; issuing and writing do that.
#[must_use]
pub fn crew_files(dir: &Path, name: &str) -> CertFiles {
    leaf_files(&dir.join(CREWS_DIR), name)
}

/// `DIR/users/NAME.crt` and `DIR/users/NAME.key`. `name` is not validated
/// here; issuing and writing do that.
#[must_use]
pub fn user_files(dir: &Path, name: &str) -> CertFiles {
    leaf_files(&dir.join(USERS_DIR), name)
}

pub(crate) fn leaf_files(subdir: &Path, name: &str) -> CertFiles {
    CertFiles {
        cert: subdir.join(format!("{name}.crt")),
        key: subdir.join(format!("{name}.key")),
    }
}
