//! Tasker's gRPC contract, package `tasker.v1`: `proto/tasker/v1/*.proto`
//! compiled at build time with protox and tonic-prost-build (no system
//! `protoc`). Contracts only: conversions to and from the crew's and the
//! foreman's own types live at those edges.

/// The `tasker.v1` package: messages, `crew_client::CrewClient` and
/// `crew_server::{Crew, CrewServer}`.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tasker.v1");
}
