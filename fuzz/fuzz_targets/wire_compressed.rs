//! Arbitrary bytes as an OP_COMPRESSED frame's data (see `harness::compressed`).
//!
//! Run from the worktree root:
//! `cargo +nightly fuzz run wire_compressed fuzz/seeds/wire_compressed`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::compressed(data));
