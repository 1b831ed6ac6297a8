//! The job engine against the real kernel.

mod alone;
mod basics;
mod isolation;
mod lifecycle;
mod tty;
