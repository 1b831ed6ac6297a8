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
use crate::engine::{EngineHandle, JobInfo};

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

/// The one job `reference` names: an id, an id prefix (4+ characters), a
/// `job-N` handle or a name.
pub fn resolve(engine: &EngineHandle, crew: &str, reference: &str) -> Result<JobInfo, ApiError> {
    if reference.is_empty() {
        return Err(ApiError::invalid("no job given"));
    }
    let mut found = engine.find(reference);
    match found.len() {
        0 => Err(ApiError::not_found(format!(
            "no job {reference:?} on crew {crew}"
        ))),
        1 => Ok(found.remove(0)),
        n => {
            let names: Vec<String> = found
                .iter()
                .take(10)
                .map(|j| format!("{} ({})", j.handle, &j.id.as_str()[..12]))
                .collect();
            Err(ApiError::precondition(format!(
                "{reference:?} names {n} jobs on crew {crew}: {}",
                names.join(", ")
            )))
        }
    }
}
