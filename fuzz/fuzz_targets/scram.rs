//! SCRAM's client messages (see `harness::scram`).
//!
//! Run from the worktree root: `cargo +nightly fuzz run scram fuzz/seeds/scram`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::scram(data));
