//! The job engine against the real kernel.

mod basics;
