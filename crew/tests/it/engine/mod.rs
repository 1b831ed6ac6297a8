//! The job engine against the real kernel.

mod alone;
mod basics;
mod durability;
mod isolation;
mod lifecycle;
mod tty;
