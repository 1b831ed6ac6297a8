//! The crew–shim contract, and the shim itself.
//!
//! Every job runs under a small helper process, `tasker-shim`, that the crew
//! starts and talks to. This crate is everything on the shim's side of that
//! line and everything both sides must agree on; the crew depends on it for
//! the wire types and the output file's format, and nothing here depends on
//! the crew. Nothing here is async: the shim is single-threaded, and its
//! fork of the job's init is an ordinary fork.
//!
//! Layout:
//! - [`wire`]: the messages between the crew, the shim and init, and how a
//!   shim is started (its fds, its environment).
//! - [`output`]: the output file's format (header page, kept offset, drop
//!   units), shared by its writer and its readers.
//! - `sink.rs`: the output file's one writer, in the shim.
//! - [`timeindex`]: when and from which stream each part of the output
//!   came (`<id>.idx`), shared like [`output`].
//! - [`shim`]: the shim's life: prepare init, wait for a job, then move
//!   output, stdin and the crew's requests until the job ends.
//! - `crew_link.rs`: the link to the crew, which outlives any one crew (the
//!   job's socket, the handshake), and the exit record on disk.
//! - `init.rs`: the job's PID 1 (reaps, forwards signals, clones the
//!   command into its cgroup).
//! - `namespaces.rs`: the mount and network namespaces init prepares.
//! - [`exec`]: the command's last steps before `execve`, allocation-free,
//!   and how a failed start is reported.
//! - [`sys`]: small system-call wrappers (`clone3` into a cgroup, window
//!   size, process title).
//! - `main.rs`: the `tasker-shim` binary.

mod crew_link;
pub mod exec;
mod init;
mod namespaces;
pub mod output;
pub mod shim;
mod sink;
pub mod sys;
pub mod timeindex;
pub mod wire;
