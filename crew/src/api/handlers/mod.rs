//! One file per RPC; what they share is here: who is calling, and which
//! job a reference names.

pub mod archive;
pub mod attach;
pub mod get;
pub mod info;
pub mod list;
pub mod start;
pub mod stop;
pub mod watch;

use tonic::Request;

use super::identity::{Identity, Peer};
use super::status::ApiError;
use crate::engine::{EngineError, EngineHandle, JobInfo};

/// The caller, from the connection's verified certificate. No certificate
/// identity means no call (fail closed).
pub fn caller<T>(req: &Request<T>) -> Result<Identity, ApiError> {
    match req.extensions().get::<Peer>() {
        Some(Peer { identity: Ok(id), .. }) => Ok(id.clone()),
        Some(Peer {
            identity: Err(why), ..
        }) => Err(ApiError::unauthenticated(format!(
            "your certificate gives no identity: {why}"
        ))),
        None => Err(ApiError::unauthenticated("no client certificate")),
    }
}

/// The one job `reference` names (`EngineHandle::resolve` has the rules).
pub fn resolve(engine: &EngineHandle, crew: &str, reference: &str) -> Result<JobInfo, ApiError> {
    engine.resolve(reference).map_err(|e| match e {
        EngineError::NotFound(_) => ApiError::not_found(format!("no job {reference:?} on crew {crew}")),
        other => ApiError::from(other),
    })
}
