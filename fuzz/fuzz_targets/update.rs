//! The update engine: an update, a target document and options (see `harness::update`).
//!
//! Run from the worktree root: `cargo +nightly fuzz run update fuzz/seeds/update`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::update(data));
