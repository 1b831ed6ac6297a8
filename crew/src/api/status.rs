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
            EngineError::InvalidSpec(_) => Code::InvalidArgument,
            EngineError::NotFound(_) => Code::NotFound,
            EngineError::WrongState { .. } | EngineError::StdinClosed(_) | EngineError::NotTty(_) => {
                Code::FailedPrecondition
            }
            EngineError::Unsupported(_) | EngineError::Taken(_) => Code::FailedPrecondition,
            EngineError::ShuttingDown => Code::Unavailable,
            EngineError::StateFull => Code::ResourceExhausted,
            // The host failed us: the operator has to look, the caller
            // gets what happened without internals.
            EngineError::Io { .. }
            | EngineError::Cgroup(_)
            | EngineError::Shim(_)
            | EngineError::ShimStale(_)
            | EngineError::Store(_) => {
                tracing::error!(error = %e, "engine failure");
                Code::Internal
            }
        };
        Self(Status::new(code, e.to_string()))
    }
}

impl ApiError {
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
            (EngineError::Cgroup("boom".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let status: Status = ApiError::from(e).into();
            assert_eq!(status.code(), code, "{text}");
            assert_eq!(status.message(), text);
        }
    }
}
