//! The server's command parse path on one BSON document (see `harness::command`).
//!
//! Run from the worktree root: `cargo +nightly fuzz run command_parse fuzz/seeds/command_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| eddy_fuzz::harness::command(data));
