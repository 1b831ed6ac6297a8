//! Per-job cgroups on cgroup v2, and on hybrid hosts where the resource
//! controllers are still bound to cgroup v1.
//!
//! Every job gets a directory named by its id under the crew's parent (by
//! default `tasker/<crew name>`) in the cgroup2 tree, and, for each controller
//! that lives in v1 on this host, a directory of the same name in that
//! controller's hierarchy. The cgroup2 directory is the job's identity: the
//! job's first process is cloned straight into it (`CLONE_INTO_CGROUP`), and
//! it gives `cgroup.kill`, `cgroup.events` and `cpu.stat` on every host. The
//! v1 directories carry the limits when the controllers are not in v2.
//!
//! Layout:
//! - `hierarchy.rs`: which controller lives where on this host
//!   ([`Hierarchy`], from `/proc/self/mountinfo`).
//! - `tree.rs`: the crew's own subtree ([`CgroupTree`]): created, emptied of
//!   leftovers, one directory per job, `shims/` for the helpers.
//! - `job_cgroup.rs`: one job's cgroup ([`JobCgroup`]): fds for the start,
//!   kill, emptiness, usage and totals, removal.
//! - `cpu.rs`, `memory.rs`, `io.rs`, `pids.rs`: one file per controller; each
//!   takes the directory to act on, so tests point them at a temp dir.
//! - `fs.rs`: reading and writing cgroup files with the path in every error.
//!
//! Only directories the crew created are ever touched; nothing outside the
//! parent is written except enabling controllers in `cgroup.subtree_control`
//! of the parent's ancestors, which v2 requires.

mod cpu;
mod fs;
mod hierarchy;
mod io;
mod job_cgroup;
mod memory;
mod pids;
mod tree;

// What the files below share from the engine.
use super::error::{EngineError, IoContext};
use super::job::{Totals, Usage};
#[cfg(test)]
use super::spec::DeviceNumber;
use super::spec::{IoLimit, Limits};

pub use self::hierarchy::{Backend, CgroupMode, Controller, Hierarchy};
pub use self::job_cgroup::JobCgroup;
pub(crate) use self::tree::remove_slot;
pub use self::tree::{CgroupTree, TreeOptions};
