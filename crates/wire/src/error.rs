//! The one error type of the codec.
//!
//! Each variant maps to the error code mongod answers with ([`WireError::code`]) and says
//! whether the byte stream can still be trusted after it ([`WireError::closes_connection`]);
//! whether the server answers a refused frame or closes the connection is decided in one
//! place, [`WireError::answer_or_close`].

/// What the server does with a frame the codec refused ([`WireError::answer_or_close`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerOrClose {
    /// Reply with `{ok: 0, code, errmsg}` and keep the connection.
    Answer,
    /// Close the connection without a reply.
    Close,
}

/// Why a frame could not be decoded or a reply could not be encoded.
///
/// An incomplete frame is *not* an error: [`crate::peek_header`] answers `Ok(None)` for it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame (or the length its header declares) is shorter than the 16-byte header.
    #[error("message length is invalid: shorter than the 16-byte header")]
    TooShort,
    /// The declared message length is above [`crate::MAX_MESSAGE_SIZE`] (or an encoded reply
    /// would not fit the header's int32 length).
    #[error("message length {len} is invalid: max {max}", max = crate::MAX_MESSAGE_SIZE)]
    TooLarge { len: usize },
    /// `decode` was handed a slice whose length differs from the header's `messageLength`.
    #[error("frame length does not match the messageLength in its header")]
    LengthMismatch,
    /// An opcode this codec does not decode (legacy OP_INSERT, OP_GET_MORE, ..., or OP_REPLY
    /// sent by a client, or OP_COMPRESSED nested inside OP_COMPRESSED).
    #[error("unsupported opcode {0}")]
    UnknownOpcode(i32),
    /// OP_MSG flagBits with a required bit (0-15) that we do not know; carries all the flags.
    #[error("Message contains illegal flags value: 0b{0:032b}")]
    UnknownRequiredFlags(u32),
    /// The CRC-32C checksum of an OP_MSG does not match its contents.
    #[error("OP_MSG checksum does not match contents")]
    BadChecksum,
    /// An OP_MSG section kind other than 0 (body) or 1 (document sequence).
    #[error("Unknown section kind {0}")]
    BadSectionKind(u8),
    /// A kind-2 section (a multitenancy security token), which mongod refuses unless
    /// multitenancy is enabled.
    #[error("Unsupported Security Token provided")]
    SecurityToken,
    /// A third kind-1 section: mongod accepts at most two per message.
    #[error("Too many document sequences in OP_MSG")]
    TooManySequences,
    /// `CHECKSUM_PRESENT` on a message with no room for sections before the checksum.
    #[error("Invalid message size for an OpMsg containing a checksum")]
    NoRoomForChecksum,
    /// An OP_MSG without a kind-0 section.
    #[error("OP_MSG messages must have a body")]
    MissingBody,
    /// An OP_MSG with two kind-0 sections.
    #[error("Multiple body sections in message")]
    MultipleBodies,
    /// A kind-1 section whose size is below 4 or runs past the end of the message.
    #[error("Invalid document sequence size {0}")]
    BadSectionSize(i32),
    /// Two kind-1 sections with the same identifier.
    #[error("Duplicate document sequence: {0}")]
    DuplicateSequence(String),
    /// A field named both in the body and as a document sequence identifier.
    #[error("Duplicate field between body and document sequence {0}")]
    DuplicateField(String),
    /// A fixed-size field (flags, int32, ...) runs past the end of the message.
    #[error("{0} runs past the end of the message")]
    Truncated(&'static str),
    /// Bytes left over after the last field of an OP_QUERY.
    #[error("{0} unexpected bytes after the end of the message")]
    TrailingBytes(usize),
    /// A BSON document that is malformed: bad length, missing terminator, bad element,
    /// invalid UTF-8 in a key or string. The text comes from the `bson` crate.
    #[error("invalid BSON: {0}")]
    InvalidBson(String),
    /// A BSON document larger than [`crate::MAX_INTERNAL_BSON_SIZE`].
    #[error("BSONObj size: {len} is invalid. Size must be between 0 and {max}(16MB+16KB)", max = crate::MAX_INTERNAL_BSON_SIZE)]
    DocumentTooLarge { len: usize },
    /// Documents and arrays nested deeper than [`crate::MAX_BSON_DEPTH`].
    #[error("BSONObj exceeds maximum nested object depth: {max}", max = crate::MAX_BSON_DEPTH)]
    TooDeep,
    /// A cstring (collection name, sequence identifier) without its NUL, or not UTF-8.
    #[error("invalid cstring: unterminated or not UTF-8")]
    InvalidCString,
    /// OP_COMPRESSED too short for its 9-byte compression header.
    #[error("Invalid compressed message header")]
    BadCompressionHeader,
    /// OP_COMPRESSED with a compressor id the server does not accept (unknown, or not in
    /// its `--networkMessageCompressors`).
    #[error("Compression algorithm specified in message is not available (compressor id {0})")]
    UnsupportedCompressor(u8),
    /// OP_COMPRESSED declaring a negative `uncompressedSize`.
    #[error("Decompressed message would be negative in size")]
    NegativeUncompressedSize(i32),
    /// OP_COMPRESSED whose message would be larger than [`crate::MAX_MESSAGE_SIZE`] with
    /// its header: refused before anything is allocated.
    #[error("Decompressed message would be larger than maximum message size")]
    UncompressedTooLarge { size: usize },
    /// Compressed data the compressor refuses (corrupt, truncated, or holding more than
    /// the declared size); `detail` is the decompressor's own reason.
    #[error("{}", match compressor {
        crate::Compressor::Zstd => format!("Could not decompress message: {detail}"),
        _ => "Compressed message was invalid or corrupted".to_owned(),
    })]
    CorruptCompressed {
        compressor: crate::Compressor,
        detail: String,
    },
    /// OP_COMPRESSED whose data decompresses to another size than `uncompressedSize`.
    #[error("Decompressing message returned less data than expected")]
    CompressedSizeMismatch,
    /// A reply could not be compressed.
    #[error("Could not compress input: {detail}")]
    CompressionFailed {
        compressor: crate::Compressor,
        detail: String,
    },
}

impl WireError {
    /// mongod's error code for this failure, for an error reply (`{ok: 0, code, errmsg}`).
    ///
    /// Named codes: 1 InternalError, 2 BadValue, 13 Unauthorized, 15 Overflow,
    /// 17 ProtocolError, 22 InvalidBSON, 223 IllegalOpMsgFlag, 233 TooManyDocumentSequences,
    /// 288 ChecksumMismatch, 10334 BSONObjectTooLarge; 40430-40433, 40587 and 51251 are
    /// mongod's unnamed OP_MSG assertions (`Location<N>`).
    pub fn code(&self) -> i32 {
        match self {
            // Framing errors: mongod logs them and closes the connection; ProtocolError is
            // what its transport layer reports.
            WireError::TooShort | WireError::TooLarge { .. } | WireError::LengthMismatch => 17,
            // mongod drops messages with opcodes it does not serve without replying.
            WireError::UnknownOpcode(_) => 17,
            WireError::UnknownRequiredFlags(_) => 223,
            WireError::BadChecksum => 288,
            WireError::BadSectionKind(_) => 40432,
            WireError::SecurityToken => 13, // Unauthorized
            WireError::TooManySequences => 233,
            WireError::NoRoomForChecksum => 51251,
            WireError::MissingBody => 40587,
            WireError::MultipleBodies => 40430,
            WireError::DuplicateSequence(_) => 40431,
            WireError::DuplicateField(_) => 40433,
            // mongod's BufReader fails with Overflow when a read runs past the buffer.
            WireError::BadSectionSize(_)
            | WireError::Truncated(_)
            | WireError::InvalidCString
            | WireError::TooDeep => 15,
            WireError::TrailingBytes(_) => 17,
            WireError::InvalidBson(_) => 22,
            WireError::DocumentTooLarge { .. } => 10334,
            // mongod's MessageCompressorManager: InternalError for a compressor it does
            // not have, BadValue for everything wrong with the compressed data.
            WireError::UnsupportedCompressor(_) => 1,
            WireError::BadCompressionHeader
            | WireError::NegativeUncompressedSize(_)
            | WireError::UncompressedTooLarge { .. }
            | WireError::CorruptCompressed { .. }
            | WireError::CompressedSizeMismatch
            | WireError::CompressionFailed { .. } => 2,
        }
    }

    /// Whether the byte stream itself can no longer be trusted.
    ///
    /// True when the frame boundaries themselves are in doubt (the next message cannot be
    /// found) and for OP_COMPRESSED failures, on which mongod ends the session too (its
    /// `uassertStatusOK` on `decompressMessage` ends the session loop, without a reply).
    /// Everything else is a well-delimited message with bad contents. Whether such a
    /// message is answered is [`WireError::answer_or_close`]'s decision.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            WireError::TooShort
                | WireError::TooLarge { .. }
                | WireError::LengthMismatch
                | WireError::BadCompressionHeader
                | WireError::UnsupportedCompressor(_)
                | WireError::NegativeUncompressedSize(_)
                | WireError::UncompressedTooLarge { .. }
                | WireError::CorruptCompressed { .. }
                | WireError::CompressedSizeMismatch
                | WireError::CompressionFailed { .. }
        )
    }

    /// Whether mongod's `ConnectionFatalMessageParseError` category holds this error's
    /// code (223 IllegalOpMsgFlag, 233 TooManyDocumentSequences, 288 ChecksumMismatch):
    /// a parse error after which mongod closes the connection although the frame was
    /// delimited correctly.
    pub fn is_connection_fatal_parse_error(&self) -> bool {
        matches!(
            self,
            WireError::UnknownRequiredFlags(_)
                | WireError::TooManySequences
                | WireError::BadChecksum
        )
    }

    /// What the server does with a frame of opcode `op_code` that the codec refused, as
    /// mongod decides: it answers with an error reply (the connection stays open) only
    /// when the frame was delimited correctly ([`WireError::closes_connection`] is
    /// false), it is an OP_MSG, and the error is not connection-fatal
    /// ([`WireError::is_connection_fatal_parse_error`]): e.g. a bad section kind,
    /// invalid or too deep BSON. Anything else, including an opcode mongod does not
    /// serve, closes the connection.
    pub fn answer_or_close(&self, op_code: i32) -> AnswerOrClose {
        let answered = op_code == crate::opcode::MSG
            && !self.closes_connection()
            && !self.is_connection_fatal_parse_error()
            && !matches!(self, WireError::UnknownOpcode(_));
        match answered {
            true => AnswerOrClose::Answer,
            false => AnswerOrClose::Close,
        }
    }
}
