//! One file per RPC; what they share is here: who is calling, and which
//! job a reference names.

pub mod archive;
pub mod attach;
pub mod audit;
pub mod get;
pub mod info;
pub mod list;
pub mod start;
pub mod stop;
pub mod unarchive;
pub mod watch;

use tonic::Request;

use super::authz::{Action, authorize};
use super::identity::{Identity, Peer};
use super::service::State;
use super::status::ApiError;
use crate::engine::audit::{Decision, Entry};
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

/// A reader's call (get, list, watch, info, attach, audit): anyone with an
/// identity but a crew; a refusal goes in the audit trail.
pub fn reader<T>(state: &State, req: &Request<T>, call: &'static str) -> Result<Identity, ApiError> {
    let who = caller(req);
    let trail = Audited::new(state, call, &who);
    match who.and_then(|who| {
        authorize(&who, Action::Read, None)
            .map(|()| who)
            .map_err(Into::into)
    }) {
        Ok(who) => Ok(who),
        refused => trail.finish(refused),
    }
}

/// A call on its way into the audit trail: who (as far as known), about
/// which job, what was asked; `finish` records how it went before the
/// caller hears of it.
#[derive(Debug)]
pub struct Audited<'a> {
    state: &'a State,
    call: &'static str,
    subject: String,
    role: String,
    job: Option<String>,
    detail: serde_json::Value,
}

impl<'a> Audited<'a> {
    pub fn new(state: &'a State, call: &'static str, who: &Result<Identity, ApiError>) -> Self {
        let (subject, role) = match who {
            Ok(id) => (id.name.clone(), id.role.as_ou().to_owned()),
            Err(_) => (String::new(), String::new()),
        };
        Self {
            state,
            call,
            subject,
            role,
            job: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn job(&mut self, id: impl ToString) {
        self.job = Some(id.to_string());
    }

    pub fn detail(&mut self, detail: serde_json::Value) {
        self.detail = detail;
    }

    /// Records the call's outcome, then hands it back. A trail that cannot
    /// be written is logged as an error; the call's effect stands.
    pub fn finish<T>(self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        let Some(log) = self.state.engine.audit() else {
            return result;
        };
        let (decision, why) = match &result {
            Ok(_) => (Decision::Allowed, None),
            Err(e) => {
                let denied = matches!(
                    e.0.code(),
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                );
                let d = if denied {
                    Decision::Denied
                } else {
                    Decision::Failed
                };
                (d, Some(e.0.message().to_owned()))
            }
        };
        let entry = Entry {
            call: self.call,
            job: self.job,
            subject: self.subject,
            role: self.role,
            decision,
            why,
            detail: self.detail,
        };
        if let Err(e) = log.record(entry) {
            tracing::error!(error = %e, call = self.call, "the audit trail could not be written");
        }
        result
    }
}

/// A running job's figures now (None once it has ended).
pub fn using_now(state: &State, job: &crate::engine::JobInfo) -> Option<tasker_proto::v1::Usage> {
    if !matches!(job.state, crate::engine::JobState::Running { .. }) {
        return None;
    }
    let u = state.engine.usage(&job.id)?;
    Some(super::convert::usage(job.id.as_str(), u, 0.0))
}
