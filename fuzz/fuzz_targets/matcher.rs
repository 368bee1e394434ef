//! The matcher: a filter document and a target document (see `harness::matcher`).
//!
//! Run from the worktree root: `cargo +nightly fuzz run matcher fuzz/seeds/matcher`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::matcher(data));
