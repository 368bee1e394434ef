//! OP_QUERY (opcode 2004) and its answer OP_REPLY (opcode 1): legacy opcodes that some
//! drivers still use for the first handshake (`ismaster` on `admin.$cmd`).
//!
//! ```text
//! OP_QUERY: header | int32 flags | cstring fullCollectionName | int32 numberToSkip
//!           | int32 numberToReturn | document query | optional document returnFieldsSelector
//! OP_REPLY: header | int32 responseFlags | int64 cursorID | int32 startingFrom
//!           | int32 numberReturned | document*
//! ```

use bson::Document;

use crate::frame::FrameBuf;
use crate::reader::Reader;
use crate::{opcode, WireError, HEADER_LEN};

/// A decoded OP_QUERY.
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    pub flags: u32,
    /// `<db>.<collection>`; `<db>.$cmd` for commands, the only use left.
    pub full_collection_name: String,
    pub number_to_skip: i32,
    pub number_to_return: i32,
    pub query: Document,
    pub return_fields_selector: Option<Document>,
}

/// Decodes the OP_QUERY in `frame` (header included; its length is already checked).
pub(crate) fn decode(frame: &[u8]) -> Result<OpQuery, WireError> {
    let mut r = Reader::new(frame.get(HEADER_LEN..).unwrap_or_default());
    let flags = r.u32("OP_QUERY flags")?;
    let full_collection_name = r.cstr()?.to_owned();
    let number_to_skip = r.i32("numberToSkip")?;
    let number_to_return = r.i32("numberToReturn")?;
    let query = r.document()?;
    let return_fields_selector = if r.is_empty() {
        None
    } else {
        Some(r.document()?)
    };
    if !r.is_empty() {
        return Err(WireError::TrailingBytes(r.remaining()));
    }
    Ok(OpQuery {
        flags,
        full_collection_name,
        number_to_skip,
        number_to_return,
        query,
        return_fields_selector,
    })
}

/// Encodes an OP_REPLY (the answer to an OP_QUERY): `responseFlags`, cursorID 0,
/// startingFrom 0, numberReturned = `docs.len()`.
pub fn encode_reply(
    request_id: i32,
    response_to: i32,
    response_flags: i32,
    docs: &[Document],
) -> Result<Vec<u8>, WireError> {
    let number_returned =
        i32::try_from(docs.len()).map_err(|_| WireError::TooLarge { len: docs.len() })?;
    let mut f = FrameBuf::with_capacity(20 + 64 * docs.len());
    f.i32(response_flags);
    f.i64(0); // cursorID
    f.i32(0); // startingFrom
    f.i32(number_returned);
    for d in docs {
        let bytes = d
            .to_vec()
            .map_err(|e| WireError::InvalidBson(e.to_string()))?;
        f.bytes(&bytes);
    }
    f.finish(request_id, response_to, opcode::REPLY, false)
}

/// Encodes an OP_QUERY. For tests and clients.
pub fn encode_query(request_id: i32, query: &OpQuery) -> Result<Vec<u8>, WireError> {
    let to_bytes = |d: &Document| {
        d.to_vec()
            .map_err(|e| WireError::InvalidBson(e.to_string()))
    };
    if query.full_collection_name.contains('\0') {
        return Err(WireError::InvalidCString);
    }
    let mut f = FrameBuf::with_capacity(64);
    f.u32(query.flags);
    f.bytes(query.full_collection_name.as_bytes());
    f.u8(0);
    f.i32(query.number_to_skip);
    f.i32(query.number_to_return);
    f.bytes(&to_bytes(&query.query)?);
    if let Some(fields) = &query.return_fields_selector {
        f.bytes(&to_bytes(fields)?);
    }
    f.finish(request_id, 0, opcode::QUERY, false)
}
