//! OP_COMPRESSED (opcode 2012): another message, compressed.
//!
//! ```text
//! header | int32 originalOpcode | int32 uncompressedSize | uint8 compressorId | bytes
//! ```
//! The compressors are those of the compression spec and of mongod: noop (0), snappy (1,
//! raw snappy blocks), zlib (2, a zlib stream) and zstd (3, zstd frames). As mongod does,
//! the inner message gets a header of its own (same requestID and responseTo, the
//! original opcode, the uncompressed length) and is then decoded as if it had arrived
//! that way; an OP_MSG checksum inside covers that header.
//!
//! # Decompression bombs
//!
//! Which compressors a server accepts is its choice ([`Compressors`]); mongod refuses the
//! others. The declared `uncompressedSize` is checked against [`MAX_MESSAGE_SIZE`] before
//! anything is allocated, decompression never writes past it, and the output must have
//! exactly that size (a snappy block states its own length, which must be the declared
//! one). The output buffer is a zero-filled allocation: a small input claiming a large
//! size reserves address space the allocator maps lazily, not memory. Every failure is a
//! typed [`WireError`] on which the server closes the connection, as mongod ends the
//! session.

use std::borrow::Cow;

use crate::reader::Reader;
use crate::{opcode, Header, WireError, HEADER_LEN, MAX_MESSAGE_SIZE};

/// The compressor id of the noop compressor (the message is carried as it is).
pub const NOOP_COMPRESSOR: u8 = 0;

/// The length of the compression header after the standard header.
const COMPRESSION_HEADER_LEN: usize = 9;

/// A compressor of the compression spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compressor {
    Noop,
    Snappy,
    Zlib,
    Zstd,
}

impl Compressor {
    /// Every compressor, in id order.
    pub const ALL: [Compressor; 4] = [
        Compressor::Noop,
        Compressor::Snappy,
        Compressor::Zlib,
        Compressor::Zstd,
    ];

    /// The id carried in OP_COMPRESSED's `compressorId`.
    pub fn id(self) -> u8 {
        match self {
            Compressor::Noop => NOOP_COMPRESSOR,
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    pub fn from_id(id: u8) -> Option<Compressor> {
        Compressor::ALL.into_iter().find(|c| c.id() == id)
    }

    /// The name a handshake's `compression` array and `--networkMessageCompressors` use.
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Noop => "noop",
            Compressor::Snappy => "snappy",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    /// The compressor of a name (case-sensitive, as mongod's registry).
    pub fn from_name(name: &str) -> Option<Compressor> {
        Compressor::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self.id()
    }
}

/// A set of compressors: those a server accepts and offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compressors(u8);

impl Compressors {
    /// No compressor (`--networkMessageCompressors disabled`).
    pub const NONE: Compressors = Compressors(0);

    /// Every compressor this codec has (noop included).
    pub fn all() -> Compressors {
        Compressor::ALL
            .into_iter()
            .fold(Compressors::NONE, Compressors::with)
    }

    /// This set and `c`.
    pub fn with(self, c: Compressor) -> Compressors {
        Compressors(self.0 | c.bit())
    }

    pub fn contains(self, c: Compressor) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in id order.
    pub fn iter(self) -> impl Iterator<Item = Compressor> {
        Compressor::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Compressor> for Compressors {
    fn from_iter<I: IntoIterator<Item = Compressor>>(iter: I) -> Compressors {
        iter.into_iter().fold(Compressors::NONE, Compressors::with)
    }
}

/// A frame with its OP_COMPRESSED wrapper removed, if it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped<'a> {
    /// The message to decode: the frame itself, or the one it carried.
    pub frame: Cow<'a, [u8]>,
    /// The compressor the frame came with (`None`: it was not compressed); the server
    /// answers with the same one.
    pub compressor: Option<Compressor>,
}

/// Removes the OP_COMPRESSED wrapper of a whole frame (header included, exactly
/// `header.length` bytes), accepting only the compressors in `accepted`; any other frame
/// is returned as it is. The result is a frame for [`crate::decode`].
pub fn decompress(frame: &[u8], accepted: Compressors) -> Result<Unwrapped<'_>, WireError> {
    let header = crate::checked_header(frame)?;
    if header.op_code != opcode::COMPRESSED {
        return Ok(Unwrapped {
            frame: Cow::Borrowed(frame),
            compressor: None,
        });
    }
    let (inner, compressor) = unwrap(frame, header, accepted)?;
    Ok(Unwrapped {
        frame: Cow::Owned(inner),
        compressor: Some(compressor),
    })
}

/// Unwraps the frame carried by an OP_COMPRESSED frame (header included), in mongod's
/// order of checks: the compression header, the compressor, the declared size, the data.
pub(crate) fn unwrap(
    frame: &[u8],
    header: Header,
    accepted: Compressors,
) -> Result<(Vec<u8>, Compressor), WireError> {
    let body = frame.get(HEADER_LEN..).unwrap_or_default();
    if body.len() < COMPRESSION_HEADER_LEN {
        return Err(WireError::BadCompressionHeader);
    }
    let mut r = Reader::new(body);
    let original = r.i32("originalOpcode")?;
    let uncompressed_size = r.i32("uncompressedSize")?;
    let id = r.u8("compressorId")?;
    let compressor = Compressor::from_id(id)
        .filter(|c| accepted.contains(*c))
        .ok_or(WireError::UnsupportedCompressor(id))?;
    let size = usize::try_from(uncompressed_size)
        .map_err(|_| WireError::NegativeUncompressedSize(uncompressed_size))?;
    if size.saturating_add(HEADER_LEN) > MAX_MESSAGE_SIZE {
        return Err(WireError::UncompressedTooLarge { size });
    }
    if original == opcode::COMPRESSED {
        return Err(WireError::UnknownOpcode(original));
    }
    let data = r.take(r.remaining()).unwrap_or_default();
    let mut inner = decompress_data(compressor, data, size)?;
    if inner.len() != HEADER_LEN + size {
        return Err(WireError::CompressedSizeMismatch);
    }
    let inner_header = Header {
        // Fits: at most MAX_MESSAGE_SIZE, checked above.
        length: i32::try_from(inner.len()).map_err(|_| WireError::TooLarge { len: inner.len() })?,
        request_id: header.request_id,
        response_to: header.response_to,
        op_code: original,
    };
    if let Some(slot) = inner.get_mut(..HEADER_LEN) {
        slot.copy_from_slice(&inner_header.to_bytes());
    }
    Ok((inner, compressor))
}

/// Decompresses `data` after 16 placeholder header bytes, into a buffer of the declared
/// size (as mongod: a longer output is an error, a shorter one is caught by the caller).
/// The buffer is zero-filled by the allocator (fresh pages stay untouched until written),
/// so a small input that claims a large size costs address space, not memory.
fn decompress_data(compressor: Compressor, data: &[u8], size: usize) -> Result<Vec<u8>, WireError> {
    let corrupt = |detail: String| WireError::CorruptCompressed { compressor, detail };
    let written = match compressor {
        Compressor::Noop => {
            let mut out = Vec::with_capacity(HEADER_LEN + data.len());
            out.extend_from_slice(&[0; HEADER_LEN]);
            out.extend_from_slice(data);
            return Ok(out);
        }
        Compressor::Snappy => {
            // The block states its length: as mongod, it must be the declared one.
            let stated = snap::raw::decompress_len(data).map_err(|e| corrupt(e.to_string()))?;
            if stated != size {
                return Err(corrupt(format!(
                    "the snappy block holds {stated} bytes, the message declares {size}"
                )));
            }
            let mut out = vec![0; HEADER_LEN + size];
            let n = snap::raw::Decoder::new()
                .decompress(data, out.get_mut(HEADER_LEN..).unwrap_or_default())
                .map_err(|e| corrupt(e.to_string()))?;
            (out, n)
        }
        Compressor::Zlib => {
            // One byte of room past the declared size tells a longer stream apart.
            let mut out = vec![0; HEADER_LEN + size + 1];
            let n =
                inflate(data, out.get_mut(HEADER_LEN..).unwrap_or_default()).map_err(corrupt)?;
            (out, n)
        }
        Compressor::Zstd => {
            // zstd refuses a frame whose content does not fit ("Destination buffer is too
            // small"), as libzstd does for mongod.
            let mut out = vec![0; HEADER_LEN + size];
            let n = zstd::bulk::decompress_to_buffer(
                data,
                out.get_mut(HEADER_LEN..).unwrap_or_default(),
            )
            .map_err(|e| corrupt(e.to_string()))?;
            (out, n)
        }
    };
    let (mut out, n) = written;
    out.truncate(HEADER_LEN + n);
    Ok(out)
}

/// Inflates one zlib stream into `out`; the number of bytes written. The stream must end
/// (checksum included) within the input or fill `out`; bytes after its end are ignored,
/// as zlib's `uncompress` (mongod) ignores them.
fn inflate(data: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let mut inflater = flate2::Decompress::new(true);
    loop {
        let (read, written) = (inflater.total_in(), inflater.total_out());
        let input = data.get(read as usize..).unwrap_or_default();
        let output = out.get_mut(written as usize..).unwrap_or_default();
        let status = inflater
            .decompress(input, output, flate2::FlushDecompress::Finish)
            .map_err(|e| e.to_string())?;
        let total = inflater.total_out() as usize;
        match status {
            flate2::Status::StreamEnd => return Ok(total),
            // Full: longer than declared, which the caller reports.
            _ if total == out.len() => return Ok(total),
            _ if (read, written) == (inflater.total_in(), inflater.total_out()) => {
                return Err("the zlib stream is truncated".into())
            }
            _ => {}
        }
    }
}

/// Wraps an encoded frame (header included) into an OP_COMPRESSED compressed with
/// `compressor`, with the same requestID and responseTo: how the server answers a
/// compressed request, and how tests and fuzzers make compressed requests.
pub fn compress(frame: &[u8], compressor: Compressor) -> Result<Vec<u8>, WireError> {
    let header = crate::peek_header(frame)?.ok_or(WireError::TooShort)?;
    let data = frame.get(HEADER_LEN..).unwrap_or_default();
    let size = i32::try_from(data.len()).map_err(|_| WireError::TooLarge { len: data.len() })?;
    let failed = |detail: String| WireError::CompressionFailed { compressor, detail };
    let compressed: Cow<'_, [u8]> = match compressor {
        Compressor::Noop => Cow::Borrowed(data),
        Compressor::Snappy => Cow::Owned(
            snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| failed(e.to_string()))?,
        ),
        Compressor::Zlib => {
            // mongod compresses with zlib's default level.
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, data).map_err(|e| failed(e.to_string()))?;
            Cow::Owned(encoder.finish().map_err(|e| failed(e.to_string()))?)
        }
        // Level 0 is zstd's default level, which mongod uses.
        Compressor::Zstd => {
            Cow::Owned(zstd::bulk::compress(data, 0).map_err(|e| failed(e.to_string()))?)
        }
    };
    let len = HEADER_LEN + COMPRESSION_HEADER_LEN + compressed.len();
    let length = i32::try_from(len).map_err(|_| WireError::TooLarge { len })?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(
        &Header {
            length,
            request_id: header.request_id,
            response_to: header.response_to,
            op_code: opcode::COMPRESSED,
        }
        .to_bytes(),
    );
    out.extend_from_slice(&header.op_code.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.push(compressor.id());
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Wraps an encoded frame into an OP_COMPRESSED with the noop compressor.
pub fn encode_compressed_noop(frame: &[u8]) -> Result<Vec<u8>, WireError> {
    compress(frame, Compressor::Noop)
}
