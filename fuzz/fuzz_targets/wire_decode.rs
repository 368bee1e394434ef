//! Arbitrary bytes into the wire decoder (see `harness::wire`).
//!
//! Run from the worktree root: `cargo +nightly fuzz run wire_decode fuzz/seeds/wire_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::wire(data));
