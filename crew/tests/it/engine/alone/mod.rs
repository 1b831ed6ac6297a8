//! Tests that measure the machine (cpu share, io bandwidth, RSS, leak
//! counts). Under nextest they run alone (see `.config/nextest.toml`); under
//! `cargo test` they take the exclusive side of the test lock.

mod leaks;
mod limits;
mod quotas;
mod readers;
