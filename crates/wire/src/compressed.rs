//! OP_COMPRESSED (opcode 2012): another message, wrapped.
//!
//! ```text
//! header | int32 originalOpcode | int32 uncompressedSize | uint8 compressorId | bytes
//! ```
//! Only the noop compressor (id 0) is decoded; Eddy advertises no other in `hello`, so a
//! client never has a reason to send one. As mongod does, the inner message gets a header
//! of its own (same requestID and responseTo, the original opcode, the uncompressed length)
//! and is then decoded as if it had arrived that way; an OP_MSG checksum inside covers that
//! header.

use crate::frame::FrameBuf;
use crate::reader::Reader;
use crate::{opcode, Header, WireError, HEADER_LEN};

/// The compressor ids of the compression spec: 0 noop, 1 snappy, 2 zlib, 3 zstd.
pub const NOOP_COMPRESSOR: u8 = 0;

/// Unwraps the frame carried by an OP_COMPRESSED frame (header included).
pub(crate) fn unwrap(frame: &[u8], header: Header) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(frame.get(HEADER_LEN..).unwrap_or_default());
    let original = r.i32("originalOpcode")?;
    let uncompressed_size = r.i32("uncompressedSize")?;
    let compressor = r.u8("compressorId")?;
    if compressor != NOOP_COMPRESSOR {
        return Err(WireError::UnsupportedCompressor(compressor));
    }
    if original == opcode::COMPRESSED {
        return Err(WireError::UnknownOpcode(original));
    }
    let data = r.take(r.remaining()).unwrap_or_default();
    if usize::try_from(uncompressed_size).ok() != Some(data.len()) {
        return Err(WireError::CompressedSizeMismatch);
    }
    let mut inner = FrameBuf::with_capacity(data.len());
    inner.bytes(data);
    inner.finish(header.request_id, header.response_to, original, false)
}

/// Wraps an encoded frame into an OP_COMPRESSED with the noop compressor (same requestID
/// and responseTo). For tests and clients.
pub fn encode_compressed_noop(frame: &[u8]) -> Result<Vec<u8>, WireError> {
    let header = crate::peek_header(frame)?.ok_or(WireError::TooShort)?;
    let data = frame.get(HEADER_LEN..).unwrap_or_default();
    let size = i32::try_from(data.len()).map_err(|_| WireError::TooLarge { len: data.len() })?;
    let mut f = FrameBuf::with_capacity(9 + data.len());
    f.i32(header.op_code);
    f.i32(size);
    f.u8(NOOP_COMPRESSOR);
    f.bytes(data);
    f.finish(
        header.request_id,
        header.response_to,
        opcode::COMPRESSED,
        false,
    )
}
