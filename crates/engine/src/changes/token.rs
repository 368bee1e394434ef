//! Resume tokens: `{_data: "<hex>"}` strings that compare, as strings, in event order.
//!
//! Layout of `_data` (uppercase hex of these bytes, so string order is byte order):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format marker `0x82` |
//! | 8 | cluster time, packed (seconds high, increment low), big-endian |
//! | 1 | kind: `0x00` high-water mark, `0x80` event |
//! | 1 | `0x01` if the token is of an `invalidate` event, else `0x00` |
//! | 4 | fragment number of a split event (0 when not split), big-endian |
//!
//! Meaning of a position: an event token at `T` says "the event at `T` was seen";
//! resuming returns events after it. A high-water-mark token at `T` says "everything
//! before `T` was seen"; it sorts before any event at `T`, and resuming from it
//! returns events at or after `T`. An invalidate token sorts after the event at the
//! same time that caused it.

use bson::{doc, Bson, Document, Timestamp};
use eddy_codes::{ErrorCode, MongoError};

use crate::clock::{pack, unpack};

const MARKER: u8 = 0x82;
const LEN: usize = 1 + 8 + 1 + 1 + 4;
/// The length of a token's `_data` string.
pub const HEX_LEN: usize = 2 * LEN;

/// A decoded resume token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResumeToken {
    pub ts: u64,
    pub kind: TokenKind,
    pub from_invalidate: bool,
    pub fragment: u32,
}

/// What a token marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenKind {
    HighWaterMark,
    Event,
}

impl ResumeToken {
    /// The token of the event at `ts`.
    pub fn event(ts: Timestamp) -> ResumeToken {
        ResumeToken {
            ts: pack(ts),
            kind: TokenKind::Event,
            from_invalidate: false,
            fragment: 0,
        }
    }

    /// The token of the `invalidate` caused by the event at `ts`.
    pub fn invalidate(ts: Timestamp) -> ResumeToken {
        ResumeToken {
            from_invalidate: true,
            ..ResumeToken::event(ts)
        }
    }

    /// The high-water mark before `ts`: every event before `ts` was seen.
    pub fn high_water_mark(ts: Timestamp) -> ResumeToken {
        ResumeToken {
            ts: pack(ts),
            kind: TokenKind::HighWaterMark,
            from_invalidate: false,
            fragment: 0,
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        unpack(self.ts)
    }

    pub fn to_hex(&self) -> String {
        let mut buf = [0u8; HEX_LEN];
        self.write_hex(&mut buf).to_owned()
    }

    /// The token's hex string, written into `buf`.
    pub fn write_hex<'b>(&self, buf: &'b mut [u8; HEX_LEN]) -> &'b str {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut bytes = [0u8; LEN];
        bytes[0] = MARKER;
        bytes[1..9].copy_from_slice(&self.ts.to_be_bytes());
        bytes[9] = match self.kind {
            TokenKind::HighWaterMark => 0x00,
            TokenKind::Event => 0x80,
        };
        bytes[10] = u8::from(self.from_invalidate);
        bytes[11..15].copy_from_slice(&self.fragment.to_be_bytes());
        for (i, b) in bytes.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 0x0F)];
        }
        std::str::from_utf8(buf).expect("hex digits are ASCII")
    }

    /// The token as events and replies carry it: `{_data: "<hex>"}`.
    pub fn to_document(&self) -> Document {
        doc! {"_data": self.to_hex()}
    }

    /// [`ResumeToken::to_document`], encoded: what a reply's `postBatchResumeToken` holds.
    pub fn to_raw(&self) -> bson::RawDocumentBuf {
        let mut buf = [0u8; HEX_LEN];
        let mut raw = bson::RawDocumentBuf::new();
        raw.append(bson::raw::cstr!("_data"), self.write_hex(&mut buf));
        raw
    }

    /// Parses a token given by a client (`resumeAfter`, `startAfter`).
    pub fn parse(value: &Bson) -> Result<ResumeToken, MongoError> {
        let invalid = || {
            MongoError::new(
                ErrorCode::InvalidResumeToken,
                format!("Invalid resume token: {}", crate::display_value(value)),
            )
        };
        let doc = match value {
            Bson::Document(d) => d,
            _ => {
                return Err(MongoError::type_mismatch(
                    "Resume token must be an object, i.e. {_data: <string>}",
                ))
            }
        };
        let hex = match doc.get("_data") {
            Some(Bson::String(s)) => s,
            Some(Bson::Binary(_)) => {
                return Err(MongoError::new(
                    ErrorCode::InvalidResumeToken,
                    "Resume tokens with BinData _data (MongoDB 3.6 format) are not supported",
                ))
            }
            _ => return Err(invalid()),
        };
        if hex.len() != LEN * 2 || !hex.is_ascii() {
            return Err(invalid());
        }
        let bytes: Vec<u8> = (0..LEN)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid())?;
        if bytes[0] != MARKER {
            return Err(invalid());
        }
        let ts = u64::from_be_bytes(bytes[1..9].try_into().map_err(|_| invalid())?);
        let kind = match bytes[9] {
            0x00 => TokenKind::HighWaterMark,
            0x80 => TokenKind::Event,
            _ => return Err(invalid()),
        };
        let from_invalidate = match bytes[10] {
            0 => false,
            1 => true,
            _ => return Err(invalid()),
        };
        let fragment = u32::from_be_bytes(bytes[11..15].try_into().map_err(|_| invalid())?);
        Ok(ResumeToken {
            ts,
            kind,
            from_invalidate,
            fragment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(time: u32, increment: u32) -> Timestamp {
        Timestamp { time, increment }
    }

    #[test]
    fn tokens_round_trip() {
        for t in [
            ResumeToken::event(ts(5, 1)),
            ResumeToken::invalidate(ts(5, 1)),
            ResumeToken::high_water_mark(ts(7, 3)),
        ] {
            assert_eq!(
                ResumeToken::parse(&Bson::Document(t.to_document())).expect("parse"),
                t
            );
        }
    }

    #[test]
    fn token_strings_sort_in_event_order() {
        let order = [
            ResumeToken::high_water_mark(ts(5, 1)),
            ResumeToken::event(ts(5, 1)),
            ResumeToken::invalidate(ts(5, 1)),
            ResumeToken::high_water_mark(ts(5, 2)),
            ResumeToken::event(ts(5, 2)),
            ResumeToken::event(ts(6, 0)),
        ];
        let strings: Vec<String> = order.iter().map(ResumeToken::to_hex).collect();
        let mut sorted = strings.clone();
        sorted.sort();
        assert_eq!(strings, sorted);
    }

    #[test]
    fn garbage_is_invalid_resume_token() {
        for bad in [
            Bson::Document(doc! {"_data": "zz"}),
            Bson::Document(doc! {"_data": "00".repeat(LEN)}),
            Bson::Document(doc! {"x": 1}),
        ] {
            let err = ResumeToken::parse(&bad).expect_err("garbage");
            assert_eq!(err.code, ErrorCode::InvalidResumeToken.code(), "{bad}");
        }
        assert_eq!(
            ResumeToken::parse(&Bson::Int32(1))
                .expect_err("not a doc")
                .code,
            ErrorCode::TypeMismatch.code()
        );
    }
}
