//! The crew's integration tests: one binary, against the real kernel.
//!
//! Tests that need root or cgroup2 print `SKIPPED: <why>` and return; they
//! never pass silently without having run. `TASKER_TEST_SCALE` (default 1)
//! scales the sizes and counts of the heavy tests, for slow emulated VMs.

mod engine;
mod support;
