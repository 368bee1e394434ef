//! OP_MSG (opcode 2013): the message every command after the handshake travels in.
//!
//! ```text
//! header | uint32 flagBits | section+ | optional uint32 CRC-32C
//! section = 0x00 document                              (the body, exactly one)
//!         | 0x01 int32 size, cstring identifier, document*  (a document sequence, at most 2)
//!         | 0x02 cstring                                 (security token: refused)
//! ```

use bson::{Bson, Document, RawDocument};

use crate::frame::FrameBuf;
use crate::reader::Reader;
use crate::{flags, opcode, WireError, HEADER_LEN};

/// Flag bits 0-15 are "required": a receiver that does not know one must fail.
const REQUIRED_BITS: u32 = 0xFFFF;
const KNOWN_REQUIRED: u32 = flags::CHECKSUM_PRESENT | flags::MORE_TO_COME;

/// A decoded OP_MSG.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    /// The flagBits as sent (including `CHECKSUM_PRESENT`, already verified).
    pub flags: u32,
    /// The kind-0 section: the command itself.
    pub body: Document,
    /// The kind-1 sections, in wire order (e.g. `documents` of an `insert`).
    pub sequences: Vec<DocumentSequence>,
}

/// A kind-1 section: documents that belong in the command's `identifier` field.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSequence {
    pub identifier: String,
    pub documents: Vec<Document>,
}

impl OpMsg {
    /// The client asks for no reply (flag bit 1), e.g. Node's `endSessions`.
    pub fn more_to_come(&self) -> bool {
        self.flags & flags::MORE_TO_COME != 0
    }

    /// The client accepts an exhaust stream of replies (flag bit 16): awaitable hello.
    pub fn exhaust_allowed(&self) -> bool {
        self.flags & flags::EXHAUST_ALLOWED != 0
    }

    /// The command with every document sequence merged into the body as an array field
    /// named by its identifier, after the body's own fields.
    ///
    /// A field present both in the body and as a sequence is an error, as in mongod
    /// (decoding already rejects it; this guards hand-built values).
    pub fn into_command(self) -> Result<Document, WireError> {
        let mut command = self.body;
        for seq in self.sequences {
            if command.contains_key(&seq.identifier) {
                return Err(WireError::DuplicateField(seq.identifier));
            }
            let docs = seq.documents.into_iter().map(Bson::Document).collect();
            command.insert(seq.identifier, Bson::Array(docs));
        }
        Ok(command)
    }
}

/// Decodes the OP_MSG in `frame` (header included; its length is already checked).
pub(crate) fn decode(frame: &[u8]) -> Result<OpMsg, WireError> {
    let payload = frame.get(HEADER_LEN..).unwrap_or_default();
    let (flag_bytes, rest) = payload
        .split_first_chunk::<4>()
        .ok_or(WireError::Truncated("OP_MSG flagBits"))?;
    let flags = u32::from_le_bytes(*flag_bytes);
    if flags & REQUIRED_BITS & !KNOWN_REQUIRED != 0 {
        return Err(WireError::UnknownRequiredFlags(flags));
    }

    let sections = if flags & flags::CHECKSUM_PRESENT != 0 {
        // mongod wants at least one byte of sections besides the checksum.
        let sections_len = rest
            .len()
            .checked_sub(4)
            .filter(|&n| n > 0)
            .ok_or(WireError::NoRoomForChecksum)?;
        let (covered, sent) = frame
            .split_last_chunk::<4>()
            .ok_or(WireError::NoRoomForChecksum)?;
        // Verified before the sections are parsed (mongod verifies after): bytes that fail
        // their checksum are corrupt, and whatever a parse of them says would mislead.
        if crc32c::crc32c(covered) != u32::from_le_bytes(*sent) {
            return Err(WireError::BadChecksum);
        }
        rest.get(..sections_len).unwrap_or_default()
    } else {
        rest
    };

    let mut r = Reader::new(sections);
    let mut body = None;
    let mut sequences: Vec<DocumentSequence> = Vec::new();
    while !r.is_empty() {
        match r.u8("section kind")? {
            0 => {
                if body.is_some() {
                    return Err(WireError::MultipleBodies);
                }
                body = Some(r.document()?);
            }
            1 => {
                // mongod's limit (its duplicate checks are quadratic); two is all any
                // command uses (bulkWrite: `ops` and `nsInfo`).
                if sequences.len() >= 2 {
                    return Err(WireError::TooManySequences);
                }
                // The size counts itself and runs to the end of the section.
                let size = r.i32("document sequence size")?;
                let inner = usize::try_from(size)
                    .ok()
                    .and_then(|s| s.checked_sub(4))
                    .and_then(|n| r.take(n))
                    .ok_or(WireError::BadSectionSize(size))?;
                let mut s = Reader::new(inner);
                let identifier = s.cstr()?.to_owned();
                if sequences.iter().any(|q| q.identifier == identifier) {
                    return Err(WireError::DuplicateSequence(identifier));
                }
                let mut documents = Vec::new();
                while !s.is_empty() {
                    documents.push(s.document()?);
                }
                sequences.push(DocumentSequence {
                    identifier,
                    documents,
                });
            }
            2 => return Err(WireError::SecurityToken),
            kind => return Err(WireError::BadSectionKind(kind)),
        }
    }
    let body = body.ok_or(WireError::MissingBody)?;
    if let Some(dup) = sequences.iter().find(|s| body.contains_key(&s.identifier)) {
        return Err(WireError::DuplicateField(dup.identifier.clone()));
    }
    Ok(OpMsg {
        flags,
        body,
        sequences,
    })
}

/// Encodes an OP_MSG reply with a single body section (flags usually 0, or `MORE_TO_COME`
/// while streaming exhaust replies). A checksum is appended only if `flags` asks for one.
pub fn encode_msg(
    request_id: i32,
    response_to: i32,
    flags: u32,
    body: &Document,
) -> Result<Vec<u8>, WireError> {
    let bytes = body
        .to_vec()
        .map_err(|e| WireError::InvalidBson(e.to_string()))?;
    body_frame(request_id, response_to, flags, &bytes)
}

/// [`encode_msg`] from an already-encoded body.
///
/// # Panics
/// If the frame would exceed `i32::MAX` bytes, which no reply the server may send can
/// (replies are bounded by [`crate::MAX_INTERNAL_BSON_SIZE`]): a wrong length would
/// desynchronize the client's stream, so this crashes instead.
pub fn encode_msg_raw(
    request_id: i32,
    response_to: i32,
    flags: u32,
    body: &RawDocument,
) -> Vec<u8> {
    body_frame(request_id, response_to, flags, body.as_bytes())
        .expect("an OP_MSG reply is smaller than 2 GiB")
}

/// A cursor batch to splice into a reply: the body becomes
/// `{cursor: {<batch_field>: [docs...], <tail's fields>}, <rest's fields>}`.
#[derive(Debug)]
pub struct CursorSplice<'a> {
    /// `firstBatch` or `nextBatch`.
    pub batch_field: &'a str,
    /// The documents, already encoded: copied into the reply as they are.
    pub docs: &'a [&'a RawDocument],
    /// The cursor's other fields (`postBatchResumeToken`, `id`, `ns`, ...).
    pub tail: &'a RawDocument,
}

/// [`encode_msg_raw`] for a cursor reply whose documents are spliced in: each batch
/// document's bytes are copied once, straight into the frame, instead of being
/// appended to an array, the array to the cursor document, that to the reply and the
/// reply to the frame (a change event shared by many streams is encoded once and
/// copied once per reply). Only the enclosing BSON structure is written here: element
/// headers, the array's index keys, lengths and terminators around encoded documents.
///
/// # Panics
/// As [`encode_msg_raw`], if the frame would exceed `i32::MAX` bytes.
pub fn encode_msg_cursor(
    request_id: i32,
    response_to: i32,
    flags: u32,
    cursor: &CursorSplice<'_>,
    rest: &RawDocument,
) -> Vec<u8> {
    let index_keys: usize = (0..cursor.docs.len()).map(|i| decimal_len(i) + 2).sum();
    let docs: usize = cursor.docs.iter().map(|d| d.as_bytes().len()).sum();
    let array = 4 + index_keys + docs + 1;
    let cursor_doc = 4 + 1 + cursor.batch_field.len() + 1 + array + elements(cursor.tail).len() + 1;
    let body = 4 + 1 + "cursor".len() + 1 + cursor_doc + elements(rest).len() + 1;
    let mut f = FrameBuf::with_capacity(4 + 1 + body + 4);
    f.u32(flags);
    f.u8(0);
    let body_at = f.len();
    f.i32(0);
    f.u8(ELEMENT_DOCUMENT);
    f.cstring("cursor");
    let cursor_at = f.len();
    f.i32(0);
    f.u8(ELEMENT_ARRAY);
    f.cstring(cursor.batch_field);
    let array_at = f.len();
    f.i32(0);
    let mut key = [0u8; 20];
    for (i, d) in cursor.docs.iter().enumerate() {
        f.u8(ELEMENT_DOCUMENT);
        f.cstring(decimal(i, &mut key));
        f.bytes(d.as_bytes());
    }
    f.u8(0);
    f.patch_len(array_at);
    f.bytes(elements(cursor.tail));
    f.u8(0);
    f.patch_len(cursor_at);
    f.bytes(elements(rest));
    f.u8(0);
    f.patch_len(body_at);
    let checksum = flags & flags::CHECKSUM_PRESENT != 0;
    f.finish(request_id, response_to, opcode::MSG, checksum)
        .expect("an OP_MSG reply is smaller than 2 GiB")
}

/// BSON element types of the enclosing structure a cursor reply splices into.
const ELEMENT_DOCUMENT: u8 = 0x03;
const ELEMENT_ARRAY: u8 = 0x04;

/// The elements of an encoded document: what lies between its length and its
/// terminating zero.
fn elements(d: &RawDocument) -> &[u8] {
    // A `RawDocument` is at least 5 bytes: its length and its terminator.
    let bytes = d.as_bytes();
    bytes.get(4..bytes.len() - 1).unwrap_or_default()
}

fn decimal_len(mut i: usize) -> usize {
    let mut n = 1;
    while i >= 10 {
        i /= 10;
        n += 1;
    }
    n
}

/// `i` in decimal (an array index key), written into `buf`.
fn decimal(mut i: usize, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

fn body_frame(
    request_id: i32,
    response_to: i32,
    flags: u32,
    body: &[u8],
) -> Result<Vec<u8>, WireError> {
    let mut f = FrameBuf::with_capacity(4 + 1 + body.len() + 4);
    f.u32(flags);
    f.u8(0);
    f.bytes(body);
    let checksum = flags & flags::CHECKSUM_PRESENT != 0;
    f.finish(request_id, response_to, opcode::MSG, checksum)
}

/// Encodes a whole [`OpMsg`]: the document sequences first (as drivers send them), then
/// the body; with a checksum if `msg.flags` has `CHECKSUM_PRESENT`. For tests and clients.
pub fn encode_op_msg(request_id: i32, response_to: i32, msg: &OpMsg) -> Result<Vec<u8>, WireError> {
    let to_bytes = |d: &Document| {
        d.to_vec()
            .map_err(|e| WireError::InvalidBson(e.to_string()))
    };
    let mut f = FrameBuf::with_capacity(64);
    f.u32(msg.flags);
    for seq in &msg.sequences {
        if seq.identifier.contains('\0') {
            return Err(WireError::InvalidCString);
        }
        f.u8(1);
        let size_at = f.len();
        f.i32(0);
        f.bytes(seq.identifier.as_bytes());
        f.u8(0);
        for d in &seq.documents {
            f.bytes(&to_bytes(d)?);
        }
        let size = f.len() - size_at;
        let size = i32::try_from(size).map_err(|_| WireError::TooLarge { len: size })?;
        f.patch_i32(size_at, size);
    }
    f.u8(0);
    f.bytes(&to_bytes(&msg.body)?);
    let checksum = msg.flags & flags::CHECKSUM_PRESENT != 0;
    f.finish(request_id, response_to, opcode::MSG, checksum)
}
