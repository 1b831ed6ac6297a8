//! Fixtures shared by the integration tests.

#![allow(dead_code)]

pub mod engine;
pub mod wait;

pub use engine::*;
pub use wait::*;
