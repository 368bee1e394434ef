//! The fuzz harnesses as plain functions, shared by the libFuzzer targets in
//! `fuzz_targets/` (nightly, `cargo fuzz run`) and by the stable regression test
//! `tests/fuzz_corpus.rs`, which replays the seed corpora and every crash input kept in
//! `fuzz/regressions/` on each `cargo test`.
//!
//! Inputs are structured from raw bytes: a harness takes one or more BSON documents
//! laid end to end (each with its own little-endian length prefix), so the fuzzer's
//! mutations of the length fields and bodies reach the parsers with valid-looking BSON.

use std::sync::{Arc, OnceLock};

use bson::{Bson, Document};
use eddy_query::filter::Filter;
use eddy_query::update::{diff_description, ApplyContext, Update};

/// Splits `data` into the BSON documents laid end to end at its start (at most `max`);
/// stops at the first prefix that is not a whole valid document.
pub fn split_docs(mut data: &[u8], max: usize) -> Vec<Document> {
    let mut docs = Vec::new();
    while docs.len() < max && data.len() >= 5 {
        let Ok(len) = <[u8; 4]>::try_from(&data[..4]).map(i32::from_le_bytes) else {
            break;
        };
        let Some(chunk) = usize::try_from(len).ok().and_then(|n| data.get(..n)) else {
            break;
        };
        let Ok(doc) = Document::from_reader(chunk) else {
            break;
        };
        docs.push(doc);
        data = &data[chunk.len()..];
    }
    docs
}

/// Builds an input for the harnesses from documents (seed corpora, regression tests).
pub fn join_docs(docs: &[Document]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in docs {
        out.extend(d.to_vec().expect("seed documents encode"));
    }
    out
}

/// The matcher: `[filter, doc]`. A parsed filter never panics on any document, its
/// `matches_details` agrees with `matches`, and `{$nor: [filter]}` (when it parses)
/// matches exactly the documents the filter does not.
pub fn matcher(data: &[u8]) {
    let docs = split_docs(data, 2);
    let [query, doc] = docs.as_slice() else {
        return;
    };
    let Ok(filter) = Filter::parse(query) else {
        return;
    };
    let matched = filter.matches(doc);
    assert_eq!(filter.matches_details(doc).is_some(), matched);
    let nor = bson::doc! {"$nor": [query.clone()]};
    if let Ok(negated) = Filter::parse(&nor) {
        assert_eq!(
            negated.matches(doc),
            !matched,
            "$nor of {query:?} on {doc:?}"
        );
    }
}

/// The update engine: `[update, doc, options]`. The update is `update.u` when present
/// (so an array reaches the pipeline-update path), else the whole first document;
/// `options` may carry `arrayFilters` and `upsert` (`$setOnInsert` applies). Applying
/// never panics; a successful result re-encodes as BSON, and the change-stream
/// description of the change (and its document form) can always be computed.
pub fn update(data: &[u8]) {
    let docs = split_docs(data, 3);
    let (Some(spec), Some(doc)) = (docs.first(), docs.get(1)) else {
        return;
    };
    let options = docs.get(2).cloned().unwrap_or_default();
    let spec = spec
        .get("u")
        .cloned()
        .unwrap_or_else(|| Bson::Document(spec.clone()));
    let array_filters: Option<Vec<Document>> = match options.get("arrayFilters") {
        Some(Bson::Array(a)) => Some(a.iter().filter_map(|v| v.as_document().cloned()).collect()),
        _ => None,
    };
    let Ok(update) = Update::parse(&spec, array_filters.as_deref()) else {
        return;
    };
    let ctx = ApplyContext {
        matched: None,
        is_upsert_insert: options.get_bool("upsert").unwrap_or(false),
        now: bson::DateTime::from_millis(1_700_000_000_000),
    };
    let Ok(applied) = update.apply(doc, &ctx) else {
        return;
    };
    applied
        .doc
        .to_vec()
        .expect("an updated document encodes as BSON");
    let _ = applied.description.to_document(true);
    let described = diff_description(doc, &applied.doc);
    let _ = described.to_document(false);
    if let Some(diff) = &applied.diff {
        diff.to_vec().expect("an oplog diff encodes as BSON");
    }
}

/// The wire decoder: arbitrary bytes. It never panics, and whatever it accepts re-encodes
/// to bytes that decode to the same message (compared as bytes: a NaN inside is not equal
/// to itself as a value).
pub fn wire(data: &[u8]) {
    use eddy_wire::{decode, encode_op_msg, encode_query, peek_header, Request};
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
}

/// OP_COMPRESSED: arbitrary bytes as the compressed data of a frame. The first byte picks
/// the compressor id (its low 3 bits, so unknown ids 4-7 come up too) and the mode (its
/// high bit); the next four are `uncompressedSize` (little-endian).
///
/// - Mode 0: the rest is the compressed data, wrapped in an OP_COMPRESSED frame whose
///   original opcode is OP_MSG, and unwrapped as the server does ([`eddy_wire::decompress`]
///   with every compressor) and decoded: an error or a message, never a panic; a message
///   unwrapped has exactly the declared size, and compressing it again with the same
///   compressor and unwrapping gives it back.
/// - Mode 1: the rest is a message body, compressed with the compressor and unwrapped:
///   the round trip must give back the same bytes (the size byte fields are unused).
pub fn compressed(data: &[u8]) {
    use eddy_wire::{compress, decode, decompress, Compressor, Compressors, HEADER_LEN};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((size, payload)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let id = selector & 0x07;
    let mut frame = Vec::with_capacity(HEADER_LEN + 9 + payload.len());
    if selector & 0x80 != 0 {
        let Some(compressor) = Compressor::from_id(id) else {
            return;
        };
        let len = HEADER_LEN + payload.len();
        let Ok(len) = i32::try_from(len) else {
            return;
        };
        for field in [len, 5, 9, eddy_wire::opcode::MSG] {
            frame.extend_from_slice(&field.to_le_bytes());
        }
        frame.extend_from_slice(payload);
        let wrapped = compress(&frame, compressor).expect("a frame compresses");
        let back = decompress(&wrapped, Compressors::all()).expect("a compressed frame unwraps");
        assert_eq!(back.compressor, Some(compressor));
        assert_eq!(
            &*back.frame,
            &frame[..],
            "round trip through {compressor:?}"
        );
        return;
    }
    let Ok(len) = i32::try_from(HEADER_LEN + 9 + payload.len()) else {
        return;
    };
    for field in [len, 11, 0, eddy_wire::opcode::COMPRESSED] {
        frame.extend_from_slice(&field.to_le_bytes());
    }
    frame.extend_from_slice(&eddy_wire::opcode::MSG.to_le_bytes());
    frame.extend_from_slice(size);
    frame.push(id);
    frame.extend_from_slice(payload);
    match decompress(&frame, Compressors::all()) {
        Ok(unwrapped) => {
            let declared = i32::from_le_bytes(*size);
            assert_eq!(
                usize::try_from(declared).ok().map(|n| n + HEADER_LEN),
                Some(unwrapped.frame.len())
            );
            let compressor = unwrapped.compressor.expect("it was compressed");
            let again = compress(&unwrapped.frame, compressor).expect("re-compresses");
            let back = decompress(&again, Compressors::all()).expect("unwraps again");
            assert_eq!(back.frame, unwrapped.frame);
            if let Err(e) = decode(&unwrapped.frame) {
                let _ = (e.code(), e.to_string());
            }
        }
        Err(e) => {
            assert!(
                e.closes_connection(),
                "{e:?} after OP_COMPRESSED must close"
            );
            let _ = (e.code(), e.to_string());
        }
    }
    let _ = decode(&frame);
}

/// The server's state for command parsing: an engine opened once in a temporary
/// directory (parsing never reads or writes it, but the command context carries it).
fn server() -> &'static (
    Arc<eddy_server::ServerState>,
    Arc<eddy_server::command::ConnInfo>,
) {
    static SERVER: OnceLock<(
        Arc<eddy_server::ServerState>,
        Arc<eddy_server::command::ConnInfo>,
    )> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("eddy-fuzz-{}", std::process::id()));
        let engine = eddy_engine::Engine::open(eddy_engine::EngineOptions::new(&dir))
            .expect("a temporary engine opens");
        // Nothing is left behind: the engine keeps its open files, and parsing never
        // creates new ones.
        let _ = std::fs::remove_dir_all(&dir);
        let config = eddy_server::ServerConfig {
            bind: vec!["127.0.0.1".into()],
            port: 27017,
            repl_set: "rs0".into(),
            enable_test_commands: true,
            set_parameters: Document::new(),
            argv: Vec::new(),
            parsed: Document::new(),
            max_incoming_connections: 10,
            cursor_timeout: std::time::Duration::from_secs(600),
            auth: false,
            tls: None,
            http_port: None,
            compressors: eddy_wire::Compressors::all(),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 27017));
        let conn = eddy_server::command::ConnInfo::new(1, addr, addr);
        (
            Arc::new(eddy_server::ServerState::new(config, engine)),
            Arc::new(conn),
        )
    })
}

/// Command parsing: `[command]` goes through the server's parse path (name lookup,
/// `$db`, generic fields, write concern, the command's typed parse) without running.
/// It must answer `Ok` or a `MongoError` with a real code, never panic.
pub fn command(data: &[u8]) {
    let docs = split_docs(data, 1);
    let Some(cmd) = docs.first() else {
        return;
    };
    let (state, conn) = server();
    if let Err(e) = eddy_server::dispatch::parse_command(state, conn, cmd, None) {
        assert!(e.code != 0, "error without a code: {e:?}");
        let _ = e.to_reply();
    }
}

/// SCRAM messages: the input is split at its first NUL into a client-first message and
/// a client-final message. The first goes to the parser; the second finishes a
/// conversation started with a valid first message against a real user's credentials.
/// Both must answer `Ok` or a `MongoError`, never panic.
pub fn scram(data: &[u8]) {
    use eddy_server::auth::scram::{self, ClientFirst, Credentials, Mechanism};
    static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();
    let (first, last) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let _ = ClientFirst::parse(first);
    let credentials = CREDENTIALS.get_or_init(|| {
        Credentials::derive(
            Mechanism::Sha256,
            "u",
            "pencil",
            b"0123456789abcdef".to_vec(),
            4096,
        )
        .expect("credentials")
    });
    for mech in Mechanism::ALL {
        let start = ClientFirst::parse(b"n,,n=u,r=clientnonce").expect("a valid first message");
        if let Ok(started) = scram::start(mech, "admin", start, Some(credentials.clone())) {
            let _ = started.conversation.finish(last);
        }
    }
}
