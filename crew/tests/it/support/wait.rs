//! Waiting for conditions, never for fixed times: the shared harness's.

pub use crew::testing::{bounded, wait_for};
