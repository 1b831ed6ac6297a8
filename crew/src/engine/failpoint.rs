//! Named points where a test can have the crew die, as `kill -9` would at
//! that very step: `TASKER_CREW_FAILPOINT=<name>` in the crew's environment
//! makes it SIGKILL itself when it gets there. The crash-consistency tests
//! (`crew/tests/daemon/killpoints.rs`) go through every point and check
//! that the next crew accounts for every job and that nothing leaks.
//!
//! The points, in the order a job meets them:
//! - `start:output`: the output file is made; nothing else.
//! - `start:cgroup`: the job's cgroup too.
//! - `start:recorded`: its record is in the store.
//! - `start:launched`: its init has the command; its shim not the job.
//! - `start:served`: its shim has the job too.
//! - `start:running`: the command runs, the caller has not heard.
//! - `stop:signalled`: a stop's SIGTERM went to the job.
//! - `end:unrecorded`: the job ended; its end is not in the store yet.
//! - `adopt:welcomed`: a new crew reached a shim, before it recorded that.

use std::sync::OnceLock;

/// The environment variable that names the point.
pub const FAILPOINT_ENV: &str = "TASKER_CREW_FAILPOINT";

/// Dies here if the environment says so. Costs a load and a compare.
pub(crate) fn here(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    if POINT.get_or_init(|| std::env::var(FAILPOINT_ENV).ok()).as_deref() == Some(name) {
        tracing::warn!(point = name, "failpoint: dying here, as asked");
        // SAFETY: kill(2) of this very process, as `kill -9` would.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
