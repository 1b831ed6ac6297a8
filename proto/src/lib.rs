//! Tasker's gRPC contract, package `tasker.v1`.
//!
//! Filled by the API issue: `proto/tasker/v1/*.proto` compiled with protox and
//! tonic-prost-build (no system `protoc`).
