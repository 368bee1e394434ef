//! Arbitrary bytes into the wire decoder: it must never panic, and whatever it accepts must
//! re-encode to the same bytes after another decode.
//!
//! Run from the worktree root: `cargo +nightly fuzz run wire_decode`.
#![no_main]

use eddy_wire::{decode, encode_op_msg, encode_query, peek_header, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(header)) = peek_header(data) else {
        // Too short (incomplete) or an impossible length: still try the whole decoder.
        let _ = decode(data);
        return;
    };
    // Decode exactly the frame the header declares, as the connection loop does, and also
    // the whole buffer (which must be refused when its length differs).
    let len = usize::try_from(header.length).unwrap_or(usize::MAX);
    let _ = decode(data);
    let Some(frame) = data.get(..len) else {
        return;
    };
    match decode(frame) {
        Ok(Request::Msg(h, msg)) => {
            let again = encode_op_msg(h.request_id, h.response_to, &msg).expect("re-encodes");
            // Compared as bytes: a NaN inside is not equal to itself as a value.
            match decode(&again) {
                Ok(Request::Msg(_, back)) => {
                    let twice = encode_op_msg(h.request_id, h.response_to, &back);
                    assert_eq!(twice.expect("re-encodes"), again);
                }
                other => panic!("re-encoded OP_MSG decodes as {other:?}"),
            }
            let _ = msg.into_command();
        }
        Ok(Request::Query(h, query)) => {
            let again = encode_query(h.request_id, &query).expect("re-encodes");
            match decode(&again) {
                Ok(Request::Query(_, back)) => {
                    let twice = encode_query(h.request_id, &back).expect("re-encodes");
                    assert_eq!(twice, again);
                }
                other => panic!("re-encoded OP_QUERY decodes as {other:?}"),
            }
        }
        Err(e) => {
            let _ = (e.code(), e.closes_connection(), e.to_string());
        }
    }
});
