//! The MongoDB wire protocol as a codec over bytes: Eddy's `eddy-wire` crate.
//!
//! # Place in the whole
//!
//! This crate only turns bytes into requests and replies into bytes. It owns no socket,
//! runs no async code, knows nothing of storage or of what a command means. The server's
//! connection task owns the socket and its read buffer; for each message it
//!
//! 1. calls [`peek_header`] on what it has buffered: `Ok(None)` means "fewer than 16 bytes
//!    so far, read more" (*Incomplete is not an error*); `Err` means the declared length is
//!    impossible and the connection must be closed, since the next frame cannot be found;
//! 2. once `header.length` bytes are buffered, hands exactly that slice to [`decode`];
//! 3. on `Err(e)`, answers `{ok: 0, code: e.code(), errmsg: e.to_string()}` unless
//!    [`WireError::answer_or_close`] says to hang up; on `Ok`, dispatches the command
//!    ([`OpMsg::into_command`] merges the document sequences into it) and sends the reply
//!    built with [`encode_msg`] / [`encode_msg_raw`] (OP_MSG) or [`encode_reply`] (the
//!    OP_REPLY that answers a handshake sent as OP_QUERY).
//!
//! Dependencies: `bson` (every document is parsed by it, never by hand), `crc32c` for the
//! optional OP_MSG checksum, `snap`, `flate2` and `zstd` for OP_COMPRESSED, `thiserror`.
//! Nothing of Eddy's own.
//!
//! # Robustness
//!
//! The decoder is fed by the network: it never panics, whatever the bytes (every read is
//! bounds-checked; a proptest and a cargo-fuzz target in `fuzz/` hold it to that), and it
//! applies mongod's limits before allocating or recursing: message length
//! [`MAX_MESSAGE_SIZE`], document size [`MAX_INTERNAL_BSON_SIZE`], nesting depth
//! [`MAX_BSON_DEPTH`].
//!
//! # Layout
//! - `msg`: OP_MSG, the message of every command after the handshake.
//! - `query`: OP_QUERY and OP_REPLY, the legacy handshake.
//! - `compressed`: OP_COMPRESSED: [`decompress`] unwraps a request with the compressors a
//!   server accepts ([`Compressors`]), [`compress`] wraps a reply (noop, snappy, zlib,
//!   zstd).
//! - `doc`: one BSON document with mongod's limits; `reader`/`frame`: bounds-checked
//!   reading and frame writing; `error`: [`WireError`] and mongod's codes for it.

#![forbid(unsafe_code)]

mod compressed;
mod doc;
mod error;
mod frame;
mod msg;
mod query;
mod reader;

#[cfg(test)]
mod tests;

pub use compressed::{
    compress, decompress, encode_compressed_noop, Compressor, Compressors, Unwrapped,
    NOOP_COMPRESSOR,
};
pub use error::{AnswerOrClose, WireError};
pub use msg::{
    encode_msg, encode_msg_cursor, encode_msg_raw, encode_op_msg, CursorSplice, DocumentSequence,
    OpMsg,
};
pub use query::{encode_query, encode_reply, OpQuery};

/// Size of the standard message header.
pub const HEADER_LEN: usize = 16;

/// Largest message accepted (mongod's `maxMessageSizeBytes`, reported by `hello`).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;

/// Largest user document (`maxBsonObjectSize`, reported by `hello`).
pub const MAX_BSON_SIZE: usize = 16 * 1024 * 1024;

/// Largest document accepted on the wire: mongod's `BSONObjMaxInternalSize`, 16 KB above
/// [`MAX_BSON_SIZE`] to leave room for a command's own fields around a maximal document.
pub const MAX_INTERNAL_BSON_SIZE: usize = MAX_BSON_SIZE + 16 * 1024;

/// Deepest nesting accepted: documents and arrays below the top-level document. This is
/// mongod's `maxBSONDepth` default (`BSONDepth::kDefaultMaxAllowableDepth` = 200), which its
/// BSON validator applies to every document received; the lower limit for *stored* user
/// documents (`getMaxDepthForUserStorage`, 180) is the storage layer's business.
pub const MAX_BSON_DEPTH: usize = 200;

/// Opcodes of the standard message header.
pub mod opcode {
    pub const REPLY: i32 = 1;
    pub const QUERY: i32 = 2004;
    pub const COMPRESSED: i32 = 2012;
    pub const MSG: i32 = 2013;
}

/// OP_MSG flagBits.
pub mod flags {
    /// A CRC-32C of the whole message follows the last section.
    pub const CHECKSUM_PRESENT: u32 = 1;
    /// The sender will not wait for a reply (from a client) / another reply follows
    /// without a request (from the server, exhaust).
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client accepts exhaust replies (optional bit).
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
}

/// The standard message header (four little-endian int32s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message size, header included.
    pub length: i32,
    pub request_id: i32,
    /// The `request_id` this message answers (0 in requests).
    pub response_to: i32,
    pub op_code: i32,
}

impl Header {
    /// The header as it goes on the wire.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        let fields = [self.length, self.request_id, self.response_to, self.op_code];
        for (slot, field) in out.chunks_exact_mut(4).zip(fields) {
            slot.copy_from_slice(&field.to_le_bytes());
        }
        out
    }

    fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let field = |i: usize| {
            let mut v = [0; 4];
            v.copy_from_slice(&b[i * 4..i * 4 + 4]);
            i32::from_le_bytes(v)
        };
        Header {
            length: field(0),
            request_id: field(1),
            response_to: field(2),
            op_code: field(3),
        }
    }
}

/// Looks at the start of a buffer: `Ok(None)` when fewer than 16 bytes are there
/// (incomplete, not an error), `Ok(Some(header))` when the header is readable, `Err` when
/// the declared length is below 16 ([`WireError::TooShort`]) or above [`MAX_MESSAGE_SIZE`]
/// ([`WireError::TooLarge`]). The opcode is not checked here: a frame with an unknown
/// opcode is still a frame, and the caller can skip it.
pub fn peek_header(buf: &[u8]) -> Result<Option<Header>, WireError> {
    let Some(bytes) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = Header::from_bytes(bytes);
    let len = usize::try_from(header.length).map_err(|_| WireError::TooShort)?;
    if len < HEADER_LEN {
        return Err(WireError::TooShort);
    }
    if len > MAX_MESSAGE_SIZE {
        return Err(WireError::TooLarge { len });
    }
    Ok(Some(header))
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Msg(Header, OpMsg),
    Query(Header, OpQuery),
}

impl Request {
    /// The message's header. For a message that arrived inside OP_COMPRESSED, the header
    /// of the unwrapped message: same ids, the original opcode and length.
    pub fn header(&self) -> &Header {
        match self {
            Request::Msg(h, _) | Request::Query(h, _) => h,
        }
    }
}

/// Decodes one whole frame: header included, exactly `header.length` bytes.
///
/// OP_COMPRESSED decodes to the message it carries, whichever compressor it names; a
/// server that accepts only some compressors calls [`decompress`] first.
pub fn decode(frame: &[u8]) -> Result<Request, WireError> {
    let header = checked_header(frame)?;
    if header.op_code == opcode::COMPRESSED {
        let (inner, _) = compressed::unwrap(frame, header, Compressors::all())?;
        let inner_header = checked_header(&inner)?;
        return decode_plain(&inner, inner_header);
    }
    decode_plain(frame, header)
}

pub(crate) fn checked_header(frame: &[u8]) -> Result<Header, WireError> {
    let header = peek_header(frame)?.ok_or(WireError::TooShort)?;
    if usize::try_from(header.length).ok() != Some(frame.len()) {
        return Err(WireError::LengthMismatch);
    }
    Ok(header)
}

fn decode_plain(frame: &[u8], header: Header) -> Result<Request, WireError> {
    match header.op_code {
        opcode::MSG => Ok(Request::Msg(header, msg::decode(frame)?)),
        opcode::QUERY => Ok(Request::Query(header, query::decode(frame)?)),
        other => Err(WireError::UnknownOpcode(other)),
    }
}
