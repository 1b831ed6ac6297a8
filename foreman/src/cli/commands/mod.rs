//! One file per command.

pub mod attach;
pub mod audit;
pub mod batch;
pub mod crews;
pub mod logs;
pub mod ls;
pub mod rerun;
pub mod run;
pub mod start;
pub mod status;
pub mod stop;
pub mod stream;
pub mod wait;
