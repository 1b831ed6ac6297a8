//! certgen: the Tasker CA and the crew, user, admin and viewer certificates
//! (SPEC §1 and §5), as a library for the `certgen` binary and for other
//! crates' tests.
//!
//! ```no_run
//! use std::path::Path;
//! use certgen::{Ca, Host, Role, Validity};
//!
//! # fn main() -> certgen::Result<()> {
//! let dir = Path::new("/etc/tasker");
//! let ca = Ca::generate(&Validity::ca_default()?)?;
//! certgen::write_ca(dir, &ca, false)?;
//! let crew = ca.issue_crew("alpha", &[Host::parse("10.0.0.5")?], &Validity::leaf_default()?)?;
//! certgen::write_crew(dir, "alpha", &crew, false)?;
//! let alice = ca.issue_client("alice", Role::Admin, &Validity::leaf_default()?)?;
//! certgen::write_user(dir, "alice", &alice, false)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `error.rs`   — [`Error`]: one enum, file errors carry the path and operation.
//! - `host.rs`    — [`Host`] (`--host` values). [`validate_name`] and [`Role`]
//!   (the `OU`) are tasker-common's, shared with the crew, and re-exported here.
//! - `params.rs`  — what all certificates share: P-256 keys, random serials,
//!   the `O=Tasker` subject, [`Validity`] (with clock-skew allowance).
//! - `ca.rs`      — [`Ca`]: generate a CA or load `ca.crt` + `ca.key`.
//! - `leaf.rs`    — [`Ca::issue_crew`] (serverAuth + SANs) and
//!   [`Ca::issue_client`] (clientAuth), returning [`Issued`] PEMs.
//! - `layout.rs`  — where files live under the certificate directory ([`CertFiles`]).
//! - `pem.rs`     — writing them safely: keys 0600 at open, no overwrite
//!   without `force`, user files chowned to the user ([`write_ca`],
//!   [`write_crew`], [`write_user`]).
//! - `testing.rs` — [`testing::TestPki`]: a throwaway PKI in a temp dir, and
//!   the hostile certificates the crew must refuse.
//! - `main.rs`    — the `certgen` command line (clap), nothing else.

mod ca;
pub mod crl;
mod error;
mod host;
mod layout;
mod leaf;
mod params;
mod pem;
#[cfg(test)]
mod test_support;
pub mod testing;

pub use ca::Ca;
pub use error::{Error, Result};
pub use host::Host;
pub use layout::{
    CA_CERT, CA_KEY, CREWS_DIR, CertFiles, DEFAULT_DIR, USERS_DIR, ca_files, crew_files, user_files,
};
pub use leaf::{Issued, crew_hosts};
pub use params::{CA_COMMON_NAME, CLOCK_SKEW, DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, ORGANIZATION, Validity};
pub use pem::{CERT_MODE, DIR_MODE, KEY_MODE, Ownership, WrittenUser, write_ca, write_crew, write_user};
pub use tasker_common::{MAX_NAME_LEN, Role, usage_line, validate_name};
