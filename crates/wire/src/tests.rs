//! Tests of the whole codec: frames in, requests out, every error case, and properties
//! over arbitrary bytes.

use bson::{doc, Bson, Document, RawDocumentBuf};
use proptest::prelude::*;

use crate::*;

fn body_frame(flags: u32, body: &Document) -> Vec<u8> {
    encode_msg(7, 0, flags, body).expect("encodes")
}

fn decode_msg(frame: &[u8]) -> Result<OpMsg, WireError> {
    match decode(frame)? {
        Request::Msg(_, m) => Ok(m),
        other => panic!("expected OP_MSG, got {other:?}"),
    }
}

/// A raw OP_MSG frame from hand-written section bytes (flags first), with the length
/// filled in.
fn raw_msg(payload: &[u8]) -> Vec<u8> {
    let header = Header {
        length: (HEADER_LEN + payload.len()) as i32,
        request_id: 1,
        response_to: 0,
        op_code: opcode::MSG,
    };
    let mut frame = header.to_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// Rewrites the header's length to the frame's actual length.
fn fix_len(frame: &mut [u8]) {
    let len = frame.len() as i32;
    frame[0..4].copy_from_slice(&len.to_le_bytes());
}

fn bson_bytes(d: &Document) -> Vec<u8> {
    d.to_vec().expect("encodes")
}

fn insert_msg() -> OpMsg {
    OpMsg {
        flags: 0,
        body: doc! { "insert": "c", "$db": "test", "ordered": true },
        sequences: vec![DocumentSequence {
            identifier: "documents".into(),
            documents: vec![doc! { "_id": 1 }, doc! { "_id": 2, "x": "y" }],
        }],
    }
}

// ---- header ----

#[test]
fn peek_header_incomplete_is_not_an_error() {
    let frame = body_frame(0, &doc! { "ping": 1 });
    for n in 0..HEADER_LEN {
        assert_eq!(peek_header(&frame[..n]).expect("not an error"), None);
    }
    let h = peek_header(&frame).expect("ok").expect("complete header");
    assert_eq!(h.length as usize, frame.len());
    assert_eq!(h.request_id, 7);
    assert_eq!(h.op_code, opcode::MSG);
    // A header alone is enough; the body need not have arrived.
    assert_eq!(peek_header(&frame[..HEADER_LEN]).expect("ok"), Some(h));
}

#[test]
fn peek_header_rejects_impossible_lengths() {
    let with_len = |len: i32| {
        let mut b = Header {
            length: len,
            request_id: 0,
            response_to: 0,
            op_code: opcode::MSG,
        }
        .to_bytes();
        b[0..4].copy_from_slice(&len.to_le_bytes());
        peek_header(&b)
    };
    assert!(matches!(with_len(15), Err(WireError::TooShort)));
    assert!(matches!(with_len(0), Err(WireError::TooShort)));
    assert!(matches!(with_len(-1), Err(WireError::TooShort)));
    assert!(matches!(
        with_len(MAX_MESSAGE_SIZE as i32 + 1),
        Err(WireError::TooLarge { len }) if len == MAX_MESSAGE_SIZE + 1
    ));
    assert!(with_len(16).expect("ok").is_some());
    assert!(with_len(MAX_MESSAGE_SIZE as i32).expect("ok").is_some());
    assert!(with_len(15).expect_err("short").closes_connection());
}

#[test]
fn decode_checks_frame_length() {
    let frame = body_frame(0, &doc! { "ping": 1 });
    assert!(matches!(decode(&frame[..10]), Err(WireError::TooShort)));
    assert!(matches!(
        decode(&frame[..frame.len() - 1]),
        Err(WireError::LengthMismatch)
    ));
    let mut longer = frame.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(WireError::LengthMismatch)));
}

#[test]
fn unknown_opcodes_are_rejected() {
    let mut frame = body_frame(0, &doc! { "ping": 1 });
    for op in [opcode::REPLY, 2001, 2002, 2005, 2006, 2007, 0, -1] {
        frame[12..16].copy_from_slice(&op.to_le_bytes());
        assert!(matches!(decode(&frame), Err(WireError::UnknownOpcode(o)) if o == op));
    }
}

// ---- OP_MSG ----

#[test]
fn op_msg_round_trip() {
    let body = doc! { "hello": 1, "helloOk": true, "$db": "admin", "n": { "a": [1, 2.5, "x"] } };
    let frame = body_frame(0, &body);
    match decode(&frame).expect("decodes") {
        Request::Msg(h, m) => {
            assert_eq!(h.request_id, 7);
            assert_eq!(h.response_to, 0);
            assert_eq!(m.flags, 0);
            assert_eq!(m.body, body);
            assert!(m.sequences.is_empty());
            assert!(!m.more_to_come() && !m.exhaust_allowed());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn encode_msg_raw_matches_encode_msg() {
    let body = doc! { "ok": 1.0, "cursor": { "id": 0i64, "firstBatch": [] } };
    let raw = RawDocumentBuf::try_from(&body).expect("raw");
    let a = encode_msg(3, 9, 0, &body).expect("encodes");
    let b = encode_msg_raw(3, 9, 0, &raw);
    assert_eq!(a, b);
    let h = peek_header(&a).expect("ok").expect("some");
    assert_eq!(
        (h.request_id, h.response_to, h.op_code),
        (3, 9, opcode::MSG)
    );
    // Layout: header, flags, kind 0, body.
    assert_eq!(&a[16..20], &[0, 0, 0, 0]);
    assert_eq!(a[20], 0);
    assert_eq!(&a[21..], raw.as_bytes());
}

#[test]
fn more_to_come_and_exhaust_flags() {
    let m = decode_msg(&body_frame(
        flags::MORE_TO_COME,
        &doc! { "endSessions": [] },
    ))
    .expect("decodes");
    assert!(m.more_to_come());
    assert!(!m.exhaust_allowed());
    let m = decode_msg(&body_frame(
        flags::EXHAUST_ALLOWED,
        &doc! { "hello": 1, "maxAwaitTimeMS": 10000 },
    ))
    .expect("decodes");
    assert!(m.exhaust_allowed());
    assert!(!m.more_to_come());
    // Every optional bit (16-31) is ignored.
    let m = decode_msg(&body_frame(0xFFFF_0000, &doc! { "ping": 1 })).expect("decodes");
    assert_eq!(m.flags, 0xFFFF_0000);
}

#[test]
fn unknown_required_flags_are_rejected() {
    for bit in 2..16 {
        let flags = 1u32 << bit;
        let err = decode_msg(&body_frame(flags, &doc! { "ping": 1 })).expect_err("required bit");
        assert!(matches!(err, WireError::UnknownRequiredFlags(f) if f == flags));
        assert_eq!(err.code(), 223);
        assert!(!err.closes_connection());
    }
}

#[test]
fn kind_1_sequences_merge_into_the_command() {
    let msg = insert_msg();
    let frame = encode_op_msg(5, 0, &msg).expect("encodes");
    let decoded = decode_msg(&frame).expect("decodes");
    assert_eq!(decoded, msg);
    let command = decoded.into_command().expect("no duplicates");
    assert_eq!(
        command,
        doc! {
            "insert": "c", "$db": "test", "ordered": true,
            "documents": [{ "_id": 1 }, { "_id": 2, "x": "y" }],
        }
    );
    // The command name stays first.
    assert_eq!(command.keys().next().map(String::as_str), Some("insert"));
}

#[test]
fn two_sequences_and_an_empty_one() {
    let msg = OpMsg {
        flags: 0,
        body: doc! { "bulkWrite": 1, "$db": "admin" },
        sequences: vec![
            DocumentSequence {
                identifier: "ops".into(),
                documents: vec![doc! { "insert": 0, "document": { "a": 1 } }],
            },
            DocumentSequence {
                identifier: "nsInfo".into(),
                documents: vec![],
            },
        ],
    };
    let decoded = decode_msg(&encode_op_msg(1, 0, &msg).expect("encodes")).expect("decodes");
    assert_eq!(decoded, msg);
    let cmd = decoded.into_command().expect("merges");
    assert_eq!(cmd.get_array("nsInfo").expect("present").len(), 0);
}

#[test]
fn body_may_follow_or_precede_sequences() {
    // Drivers send sequences before or after the body; both decode the same.
    let body = bson_bytes(&doc! { "insert": "c" });
    let doc1 = bson_bytes(&doc! { "_id": 1 });
    let mut seq = vec![1u8];
    seq.extend_from_slice(&((4 + 10 + doc1.len()) as i32).to_le_bytes());
    seq.extend_from_slice(b"documents\0");
    seq.extend_from_slice(&doc1);
    let mut payload = vec![0, 0, 0, 0, 0];
    payload.extend_from_slice(&body);
    payload.extend_from_slice(&seq);
    let m = decode_msg(&raw_msg(&payload)).expect("body first");
    assert_eq!(m.sequences[0].documents, vec![doc! { "_id": 1 }]);
}

#[test]
fn duplicate_field_between_body_and_sequence() {
    let mut msg = insert_msg();
    msg.body.insert("documents", Bson::Array(vec![]));
    let frame = encode_op_msg(1, 0, &msg).expect("encodes");
    let err = decode_msg(&frame).expect_err("duplicate");
    assert!(matches!(&err, WireError::DuplicateField(f) if f == "documents"));
    assert_eq!(err.code(), 40433);
    assert!(matches!(
        msg.into_command(),
        Err(WireError::DuplicateField(f)) if f == "documents"
    ));
}

#[test]
fn duplicate_sequence_identifiers() {
    let mut msg = insert_msg();
    msg.sequences.push(msg.sequences[0].clone());
    let err = decode_msg(&encode_op_msg(1, 0, &msg).expect("encodes")).expect_err("dup");
    assert!(matches!(&err, WireError::DuplicateSequence(s) if s == "documents"));
    assert_eq!(err.code(), 40431);
}

#[test]
fn body_count_errors() {
    let body = bson_bytes(&doc! { "ping": 1 });
    // No sections at all.
    assert!(matches!(
        decode_msg(&raw_msg(&[0, 0, 0, 0])),
        Err(WireError::MissingBody)
    ));
    // Only a sequence.
    let mut payload = vec![0, 0, 0, 0, 1];
    payload.extend_from_slice(&6i32.to_le_bytes());
    payload.extend_from_slice(b"d\0");
    let err = decode_msg(&raw_msg(&payload)).expect_err("no body");
    assert!(matches!(err, WireError::MissingBody));
    assert_eq!(err.code(), 40587);
    // Two bodies.
    let mut payload = vec![0, 0, 0, 0, 0];
    payload.extend_from_slice(&body);
    payload.push(0);
    payload.extend_from_slice(&body);
    let err = decode_msg(&raw_msg(&payload)).expect_err("two bodies");
    assert!(matches!(err, WireError::MultipleBodies));
    assert_eq!(err.code(), 40430);
}

#[test]
fn bad_section_kind() {
    let mut payload = vec![0, 0, 0, 0, 0];
    payload.extend_from_slice(&bson_bytes(&doc! { "ping": 1 }));
    let with_kind = |kind: u8| {
        let mut p = payload.clone();
        p.push(kind);
        p.extend_from_slice(b"token\0");
        decode_msg(&raw_msg(&p)).expect_err("bad kind")
    };
    for kind in [3u8, 4, 0x80, 0xff] {
        let err = with_kind(kind);
        assert!(matches!(err, WireError::BadSectionKind(k) if k == kind));
        assert_eq!(err.code(), 40432);
        assert!(!err.closes_connection());
    }
    // Kind 2 is mongod's multitenancy security token: refused as mongod does without it.
    let err = with_kind(2);
    assert!(matches!(err, WireError::SecurityToken));
    assert_eq!(err.code(), 13);
}

#[test]
fn at_most_two_document_sequences() {
    let mut msg = insert_msg();
    msg.sequences.push(DocumentSequence {
        identifier: "more".into(),
        documents: vec![],
    });
    assert!(decode_msg(&encode_op_msg(1, 0, &msg).expect("encodes")).is_ok());
    msg.sequences.push(DocumentSequence {
        identifier: "third".into(),
        documents: vec![],
    });
    let err = decode_msg(&encode_op_msg(1, 0, &msg).expect("encodes")).expect_err("three");
    assert!(matches!(err, WireError::TooManySequences));
    assert_eq!(err.code(), 233);
}

#[test]
fn bad_sequence_sizes_and_identifiers() {
    let body = bson_bytes(&doc! { "insert": "c" });
    let with_seq = |seq: &[u8]| {
        let mut payload = vec![0, 0, 0, 0, 0];
        payload.extend_from_slice(&body);
        payload.push(1);
        payload.extend_from_slice(seq);
        decode_msg(&raw_msg(&payload))
    };
    for size in [-1i32, 0, 3, 100] {
        let mut seq = size.to_le_bytes().to_vec();
        seq.extend_from_slice(b"d\0");
        assert!(matches!(with_seq(&seq), Err(WireError::BadSectionSize(s)) if s == size));
    }
    // Size cut off.
    assert!(matches!(with_seq(&[1, 0]), Err(WireError::Truncated(_))));
    // Size 4: no room for the identifier's NUL.
    assert!(matches!(
        with_seq(&4i32.to_le_bytes()),
        Err(WireError::InvalidCString)
    ));
    // Identifier not UTF-8.
    let mut seq = 7i32.to_le_bytes().to_vec();
    seq.extend_from_slice(b"\xff\xfe\0");
    assert!(matches!(with_seq(&seq), Err(WireError::InvalidCString)));
    // A document in the sequence that runs past the section's end.
    let doc1 = bson_bytes(&doc! { "_id": 1 });
    let mut seq = ((4 + 2 + doc1.len() - 1) as i32).to_le_bytes().to_vec();
    seq.extend_from_slice(b"d\0");
    seq.extend_from_slice(&doc1);
    assert!(matches!(with_seq(&seq), Err(WireError::InvalidBson(_))));
}

#[test]
fn truncated_messages() {
    assert!(matches!(
        decode_msg(&raw_msg(&[0, 0])),
        Err(WireError::Truncated(_))
    ));
    // A body cut short: the document's declared length overruns the message.
    let frame = body_frame(0, &doc! { "ping": 1, "x": "some text" });
    let cut = &frame[..frame.len() - 3];
    let mut fixed = cut.to_vec();
    fix_len(&mut fixed);
    let err = decode_msg(&fixed).expect_err("truncated BSON");
    assert!(matches!(err, WireError::InvalidBson(_)));
    assert_eq!(err.code(), 22);
}

#[test]
fn invalid_utf8_in_the_body() {
    let mut frame = body_frame(0, &doc! { "find": "coll" });
    let at = frame
        .windows(4)
        .position(|w| w == b"coll")
        .expect("present");
    frame[at] = 0xc0;
    assert!(matches!(decode_msg(&frame), Err(WireError::InvalidBson(_))));
}

#[test]
fn depth_201_is_too_deep_200_is_not() {
    let nested = |levels: usize| {
        let mut d = doc! {};
        for _ in 0..levels {
            d = doc! { "a": d };
        }
        doc! { "insert": "c", "x": d }
    };
    // `x` itself is one level: x + 199 more = 200 nested levels.
    assert!(decode_msg(&body_frame(0, &nested(199))).is_ok());
    let err = decode_msg(&body_frame(0, &nested(200))).expect_err("201 levels");
    assert!(matches!(err, WireError::TooDeep));
    assert_eq!(err.code(), 15);
    // Sequence documents are held to the same limit.
    let mut msg = insert_msg();
    msg.sequences[0].documents.push(nested(200));
    assert!(matches!(
        decode_msg(&encode_op_msg(1, 0, &msg).expect("encodes")),
        Err(WireError::TooDeep)
    ));
}

#[test]
fn oversized_documents() {
    let big = doc! { "insert": "c", "s": "x".repeat(MAX_INTERNAL_BSON_SIZE) };
    let err = decode_msg(&body_frame(0, &big)).expect_err("too large");
    assert!(matches!(err, WireError::DocumentTooLarge { .. }));
    assert_eq!(err.code(), 10334);
}

#[test]
fn checksum_is_verified() {
    let mut msg = insert_msg();
    msg.flags = flags::CHECKSUM_PRESENT;
    let frame = encode_op_msg(1, 0, &msg).expect("encodes");
    let crc = u32::from_le_bytes(frame[frame.len() - 4..].try_into().expect("4 bytes"));
    assert_eq!(crc, crc32c::crc32c(&frame[..frame.len() - 4]));
    assert_eq!(decode_msg(&frame).expect("good checksum"), msg);

    // Any flipped byte after the header's length fails (a flipped length is a framing
    // error instead).
    for i in 4..frame.len() {
        let mut bad = frame.clone();
        bad[i] ^= 0x40;
        if (16..20).contains(&i) {
            // Flipping the flags may create an unknown required bit: reported first.
            continue;
        }
        let err = decode(&bad).expect_err("corrupt");
        if (12..16).contains(&i) {
            assert!(
                matches!(err, WireError::UnknownOpcode(_)),
                "byte {i}: {err}"
            );
        } else {
            assert!(matches!(err, WireError::BadChecksum), "byte {i}: {err}");
        }
    }
    let mut bad = frame.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let err = decode(&bad).expect_err("bad checksum");
    assert_eq!(err.code(), 288);

    // encode_msg appends one when asked.
    let f = encode_msg(1, 2, flags::CHECKSUM_PRESENT, &doc! { "ok": 1 }).expect("encodes");
    assert!(decode_msg(&f).is_ok());
    // Checksum flag on a message with no sections before the checksum.
    for payload in [&[1u8, 0, 0, 0, 0, 0][..], &[1, 0, 0, 0, 1, 2, 3, 4]] {
        let err = decode_msg(&raw_msg(payload)).expect_err("no room");
        assert!(matches!(err, WireError::NoRoomForChecksum));
        assert_eq!(err.code(), 51251);
    }
}

// ---- OP_QUERY / OP_REPLY ----

fn handshake_query() -> OpQuery {
    OpQuery {
        flags: 0,
        full_collection_name: "admin.$cmd".into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: doc! { "ismaster": 1, "helloOk": true, "client": { "driver": { "name": "nodejs" } } },
        return_fields_selector: None,
    }
}

#[test]
fn op_query_round_trip() {
    let q = handshake_query();
    let frame = encode_query(11, &q).expect("encodes");
    match decode(&frame).expect("decodes") {
        Request::Query(h, got) => {
            assert_eq!(h.op_code, opcode::QUERY);
            assert_eq!(h.request_id, 11);
            assert_eq!(got, q);
        }
        other => panic!("{other:?}"),
    }
    let mut q2 = q;
    q2.return_fields_selector = Some(doc! { "a": 1 });
    q2.flags = 4;
    q2.number_to_skip = 3;
    let frame = encode_query(12, &q2).expect("encodes");
    assert_eq!(
        decode(&frame).expect("decodes"),
        Request::Query(peek_header(&frame).expect("ok").expect("some"), q2)
    );
}

#[test]
fn op_query_errors() {
    let frame = encode_query(1, &handshake_query()).expect("encodes");
    // Trailing garbage.
    let mut longer = frame.clone();
    longer.extend_from_slice(&[1, 2, 3]);
    fix_len(&mut longer);
    assert!(matches!(decode(&longer), Err(WireError::InvalidBson(_))));
    // Unterminated collection name: cut the frame inside it.
    let mut cut = frame[..24].to_vec();
    fix_len(&mut cut);
    assert!(matches!(decode(&cut), Err(WireError::InvalidCString)));
    // Missing numberToReturn / query.
    let name_end = 20 + "admin.$cmd".len() + 1;
    let mut cut = frame[..name_end + 6].to_vec();
    fix_len(&mut cut);
    assert!(matches!(decode(&cut), Err(WireError::Truncated(_))));
    let mut cut = frame[..name_end + 8].to_vec();
    fix_len(&mut cut);
    assert!(matches!(decode(&cut), Err(WireError::InvalidBson(_))));
}

#[test]
fn op_query_trailing_bytes_after_selector() {
    let mut q = handshake_query();
    q.return_fields_selector = Some(doc! {});
    let mut frame = encode_query(1, &q).expect("encodes");
    frame.extend_from_slice(&[5, 0, 0, 0, 0, 9]);
    fix_len(&mut frame);
    assert!(matches!(decode(&frame), Err(WireError::TrailingBytes(6))));
}

#[test]
fn op_reply_layout() {
    let docs = [doc! { "ismaster": true, "ok": 1.0 }];
    let frame = encode_reply(100, 11, 8, &docs).expect("encodes");
    let h = peek_header(&frame).expect("ok").expect("some");
    assert_eq!(
        h,
        Header {
            length: frame.len() as i32,
            request_id: 100,
            response_to: 11,
            op_code: opcode::REPLY
        }
    );
    assert_eq!(&frame[16..20], &8i32.to_le_bytes());
    assert_eq!(&frame[20..28], &0i64.to_le_bytes());
    assert_eq!(&frame[28..32], &0i32.to_le_bytes());
    assert_eq!(&frame[32..36], &1i32.to_le_bytes());
    assert_eq!(
        Document::from_reader(&frame[36..]).expect("bson"),
        docs[0].clone()
    );
    let empty = encode_reply(1, 2, 0, &[]).expect("encodes");
    assert_eq!(empty.len(), 36);
}

// ---- OP_COMPRESSED ----

#[test]
fn noop_compressed_decodes_to_its_inner_message() {
    let mut msg = insert_msg();
    let plain = encode_op_msg(21, 0, &msg).expect("encodes");
    let wrapped = encode_compressed_noop(&plain).expect("wraps");
    assert_eq!(
        peek_header(&wrapped).expect("ok").expect("some").op_code,
        opcode::COMPRESSED
    );
    assert_eq!(
        decode(&wrapped).expect("decodes"),
        decode(&plain).expect("decodes")
    );
    // With a checksum, computed over the unwrapped message.
    msg.flags = flags::CHECKSUM_PRESENT;
    let plain = encode_op_msg(22, 0, &msg).expect("encodes");
    let wrapped = encode_compressed_noop(&plain).expect("wraps");
    assert_eq!(
        decode(&wrapped).expect("decodes"),
        decode(&plain).expect("decodes")
    );
    // OP_QUERY too.
    let q = encode_query(3, &handshake_query()).expect("encodes");
    let wrapped = encode_compressed_noop(&q).expect("wraps");
    assert_eq!(
        decode(&wrapped).expect("decodes"),
        decode(&q).expect("decodes")
    );
}

#[test]
fn compressed_errors() {
    let plain = body_frame(0, &doc! { "ping": 1 });
    let wrapped = encode_compressed_noop(&plain).expect("wraps");
    // Ids no compressor has.
    for id in [4u8, 9, 255] {
        let mut w = wrapped.clone();
        w[24] = id;
        let err = decode(&w).expect_err("compressor");
        assert!(matches!(err, WireError::UnsupportedCompressor(i) if i == id));
        assert_eq!(err.code(), 1);
        assert!(err.closes_connection());
        assert_eq!(
            err.answer_or_close(opcode::COMPRESSED),
            AnswerOrClose::Close
        );
    }
    // Noop bytes under the other ids are not valid compressed data.
    for id in [1u8, 2, 3] {
        let mut w = wrapped.clone();
        w[24] = id;
        let err = decode(&w).expect_err("corrupt");
        assert!(
            matches!(err, WireError::CorruptCompressed { .. }),
            "{id}: {err:?}"
        );
        assert_eq!(err.code(), 2);
        assert!(err.closes_connection());
    }
    let mut w = wrapped.clone();
    w[20..24].copy_from_slice(&5i32.to_le_bytes());
    let err = decode(&w).expect_err("size");
    assert!(matches!(err, WireError::CompressedSizeMismatch));
    assert_eq!(err.code(), 2);
    // Nested OP_COMPRESSED.
    let twice = encode_compressed_noop(&wrapped).expect("wraps");
    assert!(matches!(
        decode(&twice),
        Err(WireError::UnknownOpcode(opcode::COMPRESSED))
    ));
    // Compression header cut short: mongod's "Invalid compressed message header".
    for cut in [16, 20, 24] {
        let mut short = wrapped[..cut].to_vec();
        fix_len(&mut short);
        let err = decode(&short).expect_err("short");
        assert!(matches!(err, WireError::BadCompressionHeader), "{err:?}");
        assert_eq!(err.to_string(), "Invalid compressed message header");
        assert_eq!(err.code(), 2);
    }
}

/// Every compressor: the reply compressed by the server decodes to the same message, the
/// compressor is reported, and the ids are the spec's.
#[test]
fn each_compressor_round_trips() {
    let msg = insert_msg();
    let plain = encode_op_msg(31, 5, &msg).expect("encodes");
    let ids = [("noop", 0u8), ("snappy", 1), ("zlib", 2), ("zstd", 3)];
    for (name, id) in ids {
        let compressor = Compressor::from_name(name).expect("known");
        assert_eq!(compressor.id(), id);
        assert_eq!(Compressor::from_id(id), Some(compressor));
        assert_eq!(compressor.name(), name);
        let wrapped = compress(&plain, compressor).expect("compresses");
        let header = peek_header(&wrapped).expect("ok").expect("some");
        assert_eq!(header.op_code, opcode::COMPRESSED);
        assert_eq!(header.length as usize, wrapped.len());
        assert_eq!((header.request_id, header.response_to), (31, 5));
        assert_eq!(wrapped[24], id);
        assert_eq!(
            i32::from_le_bytes(wrapped[16..20].try_into().expect("4 bytes")),
            opcode::MSG
        );
        assert_eq!(
            i32::from_le_bytes(wrapped[20..24].try_into().expect("4 bytes")) as usize,
            plain.len() - HEADER_LEN
        );
        let unwrapped = decompress(&wrapped, Compressors::all()).expect("decompresses");
        assert_eq!(unwrapped.compressor, Some(compressor));
        assert_eq!(&*unwrapped.frame, &plain[..]);
        assert_eq!(
            decode(&wrapped).expect("decodes"),
            decode(&plain).expect("decodes")
        );
    }
    // A plain frame passes through, borrowed, with no compressor.
    let unwrapped = decompress(&plain, Compressors::NONE).expect("plain");
    assert_eq!(unwrapped.compressor, None);
    assert!(matches!(unwrapped.frame, std::borrow::Cow::Borrowed(_)));
    assert_eq!(Compressor::from_name("Snappy"), None);
    assert_eq!(Compressor::from_id(4), None);
}

/// Large, compressible messages (a 4 MB document sequence) round-trip and shrink.
#[test]
fn large_messages_compress() {
    let documents: Vec<Document> = (0..20_000)
        .map(
            |i| doc! { "_id": i, "text": "the quick brown fox jumps over the lazy dog ".repeat(4) },
        )
        .collect();
    let msg = OpMsg {
        flags: flags::CHECKSUM_PRESENT,
        body: doc! { "insert": "c", "$db": "test" },
        sequences: vec![DocumentSequence {
            identifier: "documents".into(),
            documents,
        }],
    };
    let plain = encode_op_msg(1, 0, &msg).expect("encodes");
    assert!(plain.len() > 4_000_000);
    for compressor in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
        let wrapped = compress(&plain, compressor).expect("compresses");
        assert!(
            wrapped.len() < plain.len() / 4,
            "{compressor:?}: {}",
            wrapped.len()
        );
        let back = decompress(&wrapped, Compressors::all()).expect("decompresses");
        assert_eq!(&*back.frame, &plain[..], "{compressor:?}");
    }
}

/// A server accepts only its compressors: another one is mongod's InternalError.
#[test]
fn only_accepted_compressors_decompress() {
    let plain = body_frame(0, &doc! { "ping": 1 });
    let accepted: Compressors = [Compressor::Snappy, Compressor::Zstd].into_iter().collect();
    assert!(accepted.contains(Compressor::Snappy));
    assert!(!accepted.contains(Compressor::Noop));
    assert_eq!(
        accepted.iter().collect::<Vec<_>>(),
        vec![Compressor::Snappy, Compressor::Zstd]
    );
    for compressor in Compressor::ALL {
        let wrapped = compress(&plain, compressor).expect("compresses");
        let got = decompress(&wrapped, accepted);
        if accepted.contains(compressor) {
            assert_eq!(&*got.expect("accepted").frame, &plain[..]);
        } else {
            let err = got.expect_err("refused");
            assert!(matches!(err, WireError::UnsupportedCompressor(id) if id == compressor.id()));
            assert_eq!(err.code(), 1);
        }
    }
    assert!(Compressors::NONE.is_empty());
    assert_eq!(Compressors::all().iter().count(), 4);
}

/// Sets the `uncompressedSize` of an OP_COMPRESSED frame.
fn set_uncompressed_size(frame: &mut [u8], size: i32) {
    frame[20..24].copy_from_slice(&size.to_le_bytes());
}

/// Decompression bombs and lies about the size: refused with mongod's BadValue, before
/// anything is allocated for sizes past the limit, and never panicking.
#[test]
fn declared_sizes_are_checked() {
    let plain = body_frame(0, &doc! { "ping": 1, "pad": "x".repeat(1000) });
    let body = plain.len() - HEADER_LEN;
    for compressor in Compressor::ALL {
        let wrapped = compress(&plain, compressor).expect("compresses");
        let mut w = wrapped.clone();
        set_uncompressed_size(&mut w, -1);
        let err = decode(&w).expect_err("negative");
        assert!(matches!(err, WireError::NegativeUncompressedSize(-1)));
        assert_eq!(
            err.to_string(),
            "Decompressed message would be negative in size"
        );
        assert_eq!(err.code(), 2);
        for too_big in [(MAX_MESSAGE_SIZE - HEADER_LEN + 1) as i32, i32::MAX] {
            let mut w = wrapped.clone();
            set_uncompressed_size(&mut w, too_big);
            let err = decode(&w).expect_err("too large");
            assert!(
                matches!(err, WireError::UncompressedTooLarge { .. }),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "Decompressed message would be larger than maximum message size"
            );
            assert!(err.closes_connection());
        }
        // Declared one byte shorter or longer than the data really is.
        for lie in [body - 1, body + 1, 0] {
            let mut w = wrapped.clone();
            set_uncompressed_size(&mut w, lie as i32);
            let err = decode(&w).expect_err("size lie");
            assert!(
                matches!(
                    err,
                    WireError::CompressedSizeMismatch | WireError::CorruptCompressed { .. }
                ),
                "{compressor:?} {lie}: {err:?}"
            );
            assert_eq!(err.code(), 2);
        }
    }
    // The largest size allowed is accepted as a size (then the data is too short).
    let mut w = compress(&plain, Compressor::Zstd).expect("compresses");
    set_uncompressed_size(&mut w, (MAX_MESSAGE_SIZE - HEADER_LEN) as i32);
    assert!(matches!(
        decode(&w),
        Err(WireError::CompressedSizeMismatch | WireError::CorruptCompressed { .. })
    ));
}

/// Truncated or flipped compressed data: a typed error (or, rarely for a flip, another
/// valid message), never a panic.
#[test]
fn corrupt_compressed_data_is_refused() {
    let plain = body_frame(0, &doc! { "ping": 1, "pad": "abc".repeat(300) });
    for compressor in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
        let wrapped = compress(&plain, compressor).expect("compresses");
        // Every truncation of the compressed data.
        for cut in 25..wrapped.len() {
            let mut short = wrapped[..cut].to_vec();
            fix_len(&mut short);
            let err = decode(&short).expect_err("truncated");
            assert!(
                matches!(
                    err,
                    WireError::CorruptCompressed { .. } | WireError::CompressedSizeMismatch
                ),
                "{compressor:?} cut at {cut}: {err:?}"
            );
            assert!(err.closes_connection());
        }
        // Every single-byte flip of the compressed data.
        for at in 25..wrapped.len() {
            let mut w = wrapped.clone();
            w[at] ^= 0x5a;
            if let Ok(Request::Msg(_, m)) = decode(&w) {
                // zlib streams carry a checksum; snappy blocks and zstd frames (as
                // libzstd writes them by default) do not: a flipped literal is another
                // message.
                assert_ne!(compressor, Compressor::Zlib, "{at}");
                assert_ne!(m, decode_msg(&plain).expect("decodes"));
            }
        }
    }
    // zstd names its reason; snappy and zlib say what mongod says.
    let mut w = compress(&plain, Compressor::Zstd).expect("compresses");
    w[30] ^= 0xff;
    if let Err(e @ WireError::CorruptCompressed { .. }) = decode(&w) {
        assert!(
            e.to_string().starts_with("Could not decompress message: "),
            "{e}"
        );
    }
    let mut w = compress(&plain, Compressor::Zlib).expect("compresses");
    w[25] = 0;
    let err = decode(&w).expect_err("bad zlib header");
    assert_eq!(
        err.to_string(),
        "Compressed message was invalid or corrupted"
    );
}

/// A snappy block whose own length differs from the declared size is refused before
/// its output is allocated.
#[test]
fn snappy_stated_length_must_match() {
    let plain = body_frame(0, &doc! { "ping": 1 });
    let w = compress(&plain, Compressor::Snappy).expect("compresses");
    // The block's varint length prefix (one byte for a small message) made 16 MB.
    let mut forged = w[..25].to_vec();
    forged.extend_from_slice(&[0x80, 0x80, 0x80, 0x08]);
    forged.extend_from_slice(&w[26..]);
    fix_len(&mut forged);
    let err = decode(&forged).expect_err("stated length");
    assert!(matches!(
        err,
        WireError::CorruptCompressed {
            compressor: Compressor::Snappy,
            ..
        }
    ));
}

/// Bytes after a complete zlib stream are ignored, as zlib's `uncompress` ignores them.
#[test]
fn zlib_trailing_bytes_are_ignored() {
    let plain = body_frame(0, &doc! { "ping": 1 });
    let mut w = compress(&plain, Compressor::Zlib).expect("compresses");
    w.extend_from_slice(b"trailing");
    fix_len(&mut w);
    assert_eq!(
        decode(&w).expect("decodes"),
        decode(&plain).expect("decodes")
    );
}

// ---- properties ----

fn arb_key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_$.\u{e9}\u{4e2d}]{0,6}"
}

fn arb_bson() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<bool>().prop_map(Bson::Boolean),
        (-1e12f64..1e12).prop_map(Bson::Double),
        ".{0,12}".prop_map(Bson::String),
        Just(Bson::Null),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Bson::Array),
            prop::collection::vec((arb_key(), inner), 0..5)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
        ]
    })
}

fn arb_doc() -> impl Strategy<Value = Document> {
    prop::collection::vec((arb_key(), arb_bson()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

fn arb_op_msg() -> impl Strategy<Value = OpMsg> {
    let flags = prop_oneof![
        Just(0u32),
        Just(flags::CHECKSUM_PRESENT),
        Just(flags::MORE_TO_COME),
        Just(flags::EXHAUST_ALLOWED | flags::CHECKSUM_PRESENT),
        (0u32..=0xFFFF).prop_map(|hi| hi << 16),
    ];
    let sequences = prop::collection::vec(prop::collection::vec(arb_doc(), 0..4), 0..=2);
    (flags, arb_doc(), sequences).prop_map(|(flags, mut body, seqs)| {
        let sequences: Vec<_> = seqs
            .into_iter()
            .enumerate()
            .map(|(i, documents)| DocumentSequence {
                identifier: format!("seq{i}"),
                documents,
            })
            .collect();
        for s in &sequences {
            body.remove(&s.identifier);
        }
        OpMsg {
            flags,
            body,
            sequences,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = peek_header(&bytes);
        let _ = decode(&bytes);
    }

    /// Arbitrary bytes behind a plausible header, so the decoders past the header see them.
    #[test]
    fn arbitrary_payloads_never_panic(
        op in prop_oneof![Just(opcode::MSG), Just(opcode::QUERY), Just(opcode::COMPRESSED)],
        payload in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let frame = raw_msg(&payload);
        let mut frame = frame;
        frame[12..16].copy_from_slice(&op.to_le_bytes());
        let _ = decode(&frame);
    }

    /// Valid messages with a few bytes overwritten: reaches deep into the BSON reader.
    #[test]
    fn mutated_messages_never_panic(
        msg in arb_op_msg(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        compressor in prop::option::of(prop::sample::select(Compressor::ALL.to_vec())),
    ) {
        let mut frame = encode_op_msg(1, 0, &msg).expect("encodes");
        if let Some(c) = compressor {
            frame = compress(&frame, c).expect("wraps");
        }
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let _ = peek_header(&frame);
        let _ = decode(&frame);
    }

    #[test]
    fn op_msg_round_trips(
        msg in arb_op_msg(),
        request_id in any::<i32>(),
        compressor in prop::option::of(prop::sample::select(Compressor::ALL.to_vec())),
    ) {
        let mut frame = encode_op_msg(request_id, 0, &msg).expect("encodes");
        if let Some(c) = compressor {
            frame = compress(&frame, c).expect("wraps");
        }
        let header = peek_header(&frame).expect("ok").expect("complete");
        prop_assert_eq!(header.length as usize, frame.len());
        match decode(&frame).expect("decodes") {
            Request::Msg(h, got) => {
                prop_assert_eq!(h.request_id, request_id);
                prop_assert_eq!(h.op_code, opcode::MSG);
                prop_assert_eq!(&got, &msg);
                let command = got.into_command().expect("no duplicates");
                for s in &msg.sequences {
                    prop_assert_eq!(
                        command.get_array(&s.identifier).expect("merged").len(),
                        s.documents.len()
                    );
                }
            }
            other => prop_assert!(false, "expected OP_MSG, got {:?}", other),
        }
    }

    #[test]
    fn reply_body_round_trips(body in arb_doc(), flags in prop_oneof![Just(0u32), Just(flags::MORE_TO_COME)]) {
        let frame = encode_msg(1, 2, flags, &body).expect("encodes");
        let got = decode_msg(&frame).expect("decodes");
        prop_assert_eq!(got.body, body);
        prop_assert_eq!(got.flags, flags);
    }

    #[test]
    fn op_query_round_trips(
        query in arb_doc(),
        fields in prop::option::of(arb_doc()),
        name in "[a-z]{1,8}\\.[$a-z]{1,8}",
        skip in any::<i32>(),
        ret in any::<i32>(),
        flags in any::<u32>(),
    ) {
        let q = OpQuery {
            flags,
            full_collection_name: name,
            number_to_skip: skip,
            number_to_return: ret,
            query,
            return_fields_selector: fields,
        };
        let frame = encode_query(9, &q).expect("encodes");
        match decode(&frame).expect("decodes") {
            Request::Query(_, got) => prop_assert_eq!(got, q),
            other => prop_assert!(false, "expected OP_QUERY, got {:?}", other),
        }
    }
}

/// A cursor reply with spliced documents is byte for byte the reply the bson crate
/// encodes from the same fields, for any batch size (index keys of every width) and
/// with or without a checksum.
fn spliced_equals_encoded(n: usize, flags: u32) {
    let docs: Vec<RawDocumentBuf> = (0..n)
        .map(|i| {
            RawDocumentBuf::try_from(&doc! {"_id": i as i64, "s": "x".repeat(i % 7)})
                .expect("encodes")
        })
        .collect();
    let refs: Vec<&bson::RawDocument> = docs.iter().map(|d| d.as_ref()).collect();
    let tail = doc! {"postBatchResumeToken": {"_data": "82"}, "id": 42i64, "ns": "db.c"};
    let rest = doc! {"ok": 1.0, "operationTime": bson::Timestamp { time: 1, increment: 2 }};
    let frame = encode_msg_cursor(
        9,
        3,
        flags,
        &CursorSplice {
            batch_field: "nextBatch",
            docs: &refs,
            tail: &RawDocumentBuf::try_from(&tail).expect("encodes"),
        },
        &RawDocumentBuf::try_from(&rest).expect("encodes"),
    );
    let mut cursor = doc! {"nextBatch": docs
    .iter()
    .map(|d| Bson::Document(Document::try_from(d.as_ref()).expect("decodes")))
    .collect::<Vec<_>>()};
    cursor.extend(tail);
    let mut body = doc! {"cursor": cursor};
    body.extend(rest);
    assert_eq!(
        frame,
        encode_msg(9, 3, flags, &body).expect("encodes"),
        "{n} documents"
    );
    let decoded = decode_msg(&frame).expect("decodes");
    assert_eq!(decoded.body, body);
}

#[test]
fn cursor_replies_splice_documents_exactly() {
    for n in [0, 1, 9, 10, 11, 99, 100, 101, 1000] {
        spliced_equals_encoded(n, 0);
    }
    spliced_equals_encoded(12, flags::CHECKSUM_PRESENT);
    spliced_equals_encoded(3, flags::MORE_TO_COME);
}

#[test]
fn answer_or_close_follows_mongod() {
    use AnswerOrClose::{Answer, Close};
    let msg = opcode::MSG;
    // A well-delimited OP_MSG with bad contents is answered.
    for e in [
        WireError::BadSectionKind(3),
        WireError::SecurityToken,
        WireError::InvalidBson("x".into()),
        WireError::TooDeep,
        WireError::DocumentTooLarge { len: 1 },
        WireError::MissingBody,
        WireError::DuplicateField("documents".into()),
        WireError::Truncated("flags"),
    ] {
        assert_eq!(e.answer_or_close(msg), Answer, "{e}");
        // Only an OP_MSG is answered.
        assert_eq!(e.answer_or_close(opcode::QUERY), Close, "{e}");
    }
    // mongod's ConnectionFatalMessageParseError category, an opcode mongod does not
    // serve, and frames whose boundaries are in doubt close the connection.
    for e in [
        WireError::UnknownRequiredFlags(1 << 2),
        WireError::TooManySequences,
        WireError::BadChecksum,
        WireError::UnknownOpcode(2004),
        WireError::TooShort,
        WireError::TooLarge { len: 1 },
        WireError::LengthMismatch,
        WireError::UnsupportedCompressor(1),
        WireError::CompressedSizeMismatch,
    ] {
        assert_eq!(e.answer_or_close(msg), Close, "{e}");
    }
    assert!(WireError::BadChecksum.is_connection_fatal_parse_error());
    assert!(!WireError::BadChecksum.closes_connection());
}
