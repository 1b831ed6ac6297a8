//! The `crew` binary as an operator runs it: a real process with flags, a
//! PKI made at test time (certgen), its own state directory, crew name and
//! port, signals, stderr. Jobs run for real (root, cgroups, namespaces);
//! where that is impossible a test says SKIPPED and why.
//!
//! - `bounds`: a certificate path that is a FIFO, a link to /dev/zero or a
//!   huge file, and flag values that make no sense: refused at once.
//! - `start`: every bad start exits 2 with one line that names the problem.
//! - `shutdown`: SIGTERM and SIGINT with `--stop-jobs-on-exit` stop the jobs
//!   and exit 0, leaving nothing.
//! - `killpoints`: the crew killed at each step of a start, a stop, an end
//!   and an adoption: the next one accounts for every job, nothing leaks.
//! - `load`: a restart under load (200 jobs, followers across it), and a
//!   hundred kills while clients start jobs: nothing acknowledged is lost.
//! - `restart`: without it, jobs outlive the crew (SIGKILL too) and the next
//!   crew takes them over; one crew per name and state directory.
//! - `logs`: what clients send cannot forge log records (text and JSON).
//! - `audit`: every call on a job in its trail, through a `kill -9`;
//!   `crew verify-audit` names a changed record.
//! - `attach`: a client that vanishes mid-attach leaks no fd, stops no job.
//! - `transport`: the request size limit; handshake slots; a connect flood
//!   from one address costs the log a line per 10 s, not one per connection.
//! - `tenants`: quotas from the configuration file and flags; two users'
//!   fork bombs leave the crew answering a third user.
//! - `times`: each line's time and stream from the time index; since and
//!   until by the boot clock across a clock set back and a `kill -9`.
//! - `watchers`: 256 idle watchers of jobs with the longest argv cost the
//!   crew bounded memory, returned when they close.

mod attach;
mod audit;
mod bounds;
mod client;
mod killpoints;
mod load;
mod logs;
mod restart;
mod shutdown;
mod start;
mod support;
mod tenants;
mod times;
mod transport;
mod watchers;
