//! The one place engine errors become gRPC statuses. Messages are written
//! for the person who made the request; no Debug output ever reaches a
//! client.

use tonic::{Code, Status};

use super::authz::Denied;
use crate::engine::EngineError;

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        Self(Status::permission_denied(d.0))
    }
}

/// A failed call: a status ready to send.
#[derive(Debug)]
pub struct ApiError(pub Status);

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.0
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let code = match &e {
            EngineError::InvalidSpec(_) | EngineError::BadRef(_) | EngineError::Ambiguous { .. } => {
                Code::InvalidArgument
            }
            EngineError::NameTaken { .. } => Code::AlreadyExists,
            EngineError::OutOfRange(_) => Code::OutOfRange,
            EngineError::NotFound(_) => Code::NotFound,
            EngineError::WrongState { .. } | EngineError::StdinClosed(_) | EngineError::NotTty(_) => {
                Code::FailedPrecondition
            }
            EngineError::Unsupported(_) | EngineError::Taken(_) => Code::FailedPrecondition,
            EngineError::ShuttingDown => Code::Unavailable,
            EngineError::StateFull | EngineError::Quota(_) => Code::ResourceExhausted,
            // The host failed us: the operator has to look, and the log
            // has the whole error; the caller hears which part failed and
            // the incident to quote, never a host path or an OS detail.
            EngineError::Io { .. }
            | EngineError::Cgroup(_)
            | EngineError::Shim(_)
            | EngineError::ShimStale(_)
            | EngineError::Store(_) => return Self::internal(&e),
        };
        Self(Status::new(code, e.to_string()))
    }
}

/// Numbers the internal failures a crew reports, so that a client's
/// message and the crew's log line can be matched.
static INCIDENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ApiError {
    /// A failure of the host, not of the request: logged whole, told to
    /// the client as the part that failed and an incident number.
    pub fn internal(e: &EngineError) -> Self {
        let incident = INCIDENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The error can quote the request (a cwd, a path): bounded.
        tracing::error!(incident, error = %super::logged(&e.to_string()), "engine failure");
        let part = match e {
            EngineError::Io { .. } => "a file operation",
            EngineError::Cgroup(_) => "the job's cgroup",
            EngineError::Shim(_) | EngineError::ShimStale(_) => "the job's shim",
            EngineError::Store(_) => "the job store",
            _ => "the crew",
        };
        Self(Status::internal(format!(
            "the crew failed at {part}; its log has the details (incident {incident})"
        )))
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Self(Status::invalid_argument(msg))
    }

    pub fn denied(msg: impl Into<String>) -> Self {
        Self(Status::permission_denied(msg))
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self(Status::not_found(msg))
    }

    pub fn precondition(msg: impl Into<String>) -> Self {
        Self(Status::failed_precondition(msg))
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self(Status::unauthenticated(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_error_gets_the_code_a_client_can_act_on() {
        let cases = [
            (EngineError::InvalidSpec("x".into()), Code::InvalidArgument),
            (EngineError::NotFound("job-9".into()), Code::NotFound),
            (EngineError::StdinClosed("job-1".into()), Code::FailedPrecondition),
            (EngineError::NotTty("job-1".into()), Code::FailedPrecondition),
            (EngineError::ShuttingDown, Code::Unavailable),
            (EngineError::StateFull, Code::ResourceExhausted),
            (EngineError::BadRef("x".into()), Code::InvalidArgument),
            (
                EngineError::Ambiguous {
                    reference: "abcdef".into(),
                    matches: vec!["job-1".into(), "job-2".into()],
                },
                Code::InvalidArgument,
            ),
            (
                EngineError::NameTaken {
                    name: "build".into(),
                    holder: "job-1".into(),
                },
                Code::AlreadyExists,
            ),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let status: Status = ApiError::from(e).into();
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }

    /// The host's failures reach the log, not the client: no path, no OS
    /// error, but the part that failed and an incident to quote.
    #[test]
    fn a_host_failure_tells_the_client_no_host_detail() {
        let failures = [
            EngineError::io(
                "create",
                "/var/lib/tasker/secret-dir/jobs/x.out",
                std::io::Error::from_raw_os_error(libc::EACCES),
            ),
            EngineError::Cgroup("write /sys/fs/cgroup/tasker/web/x/io.max: Invalid argument".into()),
            EngineError::Store("record the job: disk I/O error at /var/lib/tasker/jobs.db".into()),
            EngineError::Shim("spawn /usr/local/bin/tasker-shim: ENOENT".into()),
        ];
        for e in failures {
            let status: Status = ApiError::from(e).into();
            assert_eq!(status.code(), Code::Internal);
            let m = status.message();
            assert!(!m.contains('/'), "{m}");
            assert!(
                !m.contains("denied") && !m.contains("Invalid") && !m.contains("ENOENT"),
                "{m}"
            );
            assert!(m.contains("incident "), "{m}");
        }
    }
}
