//! The rules every Tasker crate must agree on, each written once.
//!
//! A name certgen accepts must be a name the crew accepts; a size the crew
//! takes on its command line must read the same in the foreman's. Copies
//! of such rules drift apart, so they live here and nowhere else.
//!
//! Layout:
//! - `name.rs`: [`validate_name`], what a crew or user name may be.
//! - `job_ref.rs`: [`JobRef`], what a typed job reference means, and
//!   [`validate_job_name`], what a job's name may be: kept apart so that no
//!   name can read as another job's id or handle.
//! - `role.rs`: [`Role`], the certificate `OU` that says what its holder may do.
//! - `quantity.rs`: [`parse_size`] and [`parse_duration`] for flags and options.
//! - `lock.rs`: [`lock`], [`read`] and [`write`], which carry on past a
//!   poisoned lock.
//! - `file.rs`: [`file::read_regular`], a whole file read at start, bounded,
//!   regular files only: what the PEM loader and the crew's configuration
//!   file read with.
//! - `random.rs`: [`random_hex`], job and batch ids.
//! - `usage.rs`: [`usage_line`], a command-line usage error in one line.
//! - `pem.rs`: certificates, keys and CA roots from PEM files, read with a
//!   bound so that a wrong path (a FIFO, `/dev/zero`) cannot hang or flood.
//!
//! Nothing here is async and nothing depends on another Tasker crate, so
//! every crate, the shim's helpers included, may depend on this one.

pub mod file;
mod job_ref;
mod lock;
mod name;
pub mod pem;
mod quantity;
mod random;
mod role;
mod usage;

pub use job_ref::{BadJobName, BadRef, ID_LEN, JobRef, MIN_ID_PREFIX, pick, validate_job_name};
pub use lock::{lock, read, write};
pub use name::{InvalidName, MAX_NAME_LEN, validate_name};
pub use quantity::{QuantityError, parse_duration, parse_size};
pub use random::random_hex;
pub use role::{Role, UnknownRole};
pub use usage::usage_line;
