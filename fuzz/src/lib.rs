//! The fuzz harnesses (see `harness.rs`), shared with the stable corpus replay test.
pub mod harness;
