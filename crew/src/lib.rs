//! The Tasker crew: the per-host daemon that runs jobs in cgroups and
//! namespaces, keeps their output on disk, and (soon) serves them over gRPC
//! with mutual TLS.
//!
//! Layout:
//! - [`engine`]: the job engine, a library with no gRPC in it: cgroups,
//!   namespaces, the per-job shim, output readers.
//! - `main.rs`: the `crew` binary; `bin/tasker-shim.rs`: the per-job helper.

pub mod engine;
