//! Reading one BSON document out of a message, with mongod's limits.
//!
//! The framing checks (declared length, fits the bytes that remain, ends with NUL, at most
//! [`MAX_INTERNAL_BSON_SIZE`]) happen here; the contents are parsed by the `bson` crate's raw
//! reader. The tree is converted to a [`Document`] one level at a time so that nesting is
//! counted *before* recursing: `bson`'s own conversion recurses without a limit, and a
//! 48 MB message of nested empty documents would otherwise overflow the stack.

use bson::raw::{RawArray, RawBsonRef, RawDocument};
use bson::{Array, Bson, Document, JavaScriptCodeWithScope};

use crate::{WireError, MAX_BSON_DEPTH, MAX_INTERNAL_BSON_SIZE};

/// Reads the document at the start of `buf`; returns it and the number of bytes it used.
pub(crate) fn read(buf: &[u8]) -> Result<(Document, usize), WireError> {
    let declared = buf
        .first_chunk::<4>()
        .map(|b| i32::from_le_bytes(*b))
        .ok_or_else(|| invalid("BSON data has to be at least 5 bytes"))?;
    let len = usize::try_from(declared)
        .ok()
        .filter(|&len| len >= 5)
        .ok_or_else(|| invalid("BSON data has to be at least 5 bytes"))?;
    let bytes = buf.get(..len).ok_or_else(|| {
        invalid(&format!(
            "Incorrect BSON length {len} should be less or equal to {}",
            buf.len()
        ))
    })?;
    if len > MAX_INTERNAL_BSON_SIZE {
        return Err(WireError::DocumentTooLarge { len });
    }
    let raw = RawDocument::from_bytes(bytes).map_err(bson_err)?;
    Ok((convert_document(raw, 0)?, len))
}

fn invalid(msg: &str) -> WireError {
    WireError::InvalidBson(msg.to_owned())
}

fn bson_err(e: bson::error::Error) -> WireError {
    WireError::InvalidBson(e.to_string())
}

/// `depth` is the number of documents/arrays enclosing `raw` (0 for a top-level document).
fn convert_document(raw: &RawDocument, depth: usize) -> Result<Document, WireError> {
    let mut out = Document::new();
    for element in raw {
        let (key, value) = element.map_err(bson_err)?;
        out.insert(key.as_str(), convert_value(value, depth)?);
    }
    Ok(out)
}

fn convert_array(raw: &RawArray, depth: usize) -> Result<Array, WireError> {
    raw.into_iter()
        .map(|value| convert_value(value.map_err(bson_err)?, depth))
        .collect()
}

/// Converts a value found inside a container at `depth`.
fn convert_value(value: RawBsonRef<'_>, depth: usize) -> Result<Bson, WireError> {
    // mongod's validator keeps one frame for the top-level object and pushes one per nested
    // object or array, failing past `maxBSONDepth` (200) pushed frames.
    let nested = |levels: usize| {
        let d = depth + levels;
        if d > MAX_BSON_DEPTH {
            Err(WireError::TooDeep)
        } else {
            Ok(d)
        }
    };
    Ok(match value {
        RawBsonRef::Document(d) => Bson::Document(convert_document(d, nested(1)?)?),
        RawBsonRef::Array(a) => Bson::Array(convert_array(a, nested(1)?)?),
        // mongod pushes two frames for code-with-scope: one for the whole value, one for
        // the scope document.
        RawBsonRef::JavaScriptCodeWithScope(c) => {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: c.code.to_owned(),
                scope: convert_document(c.scope, nested(2)?)?,
            })
        }
        leaf => Bson::try_from(leaf).map_err(bson_err)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn bytes(d: &Document) -> Vec<u8> {
        d.to_vec().expect("test document encodes")
    }

    /// `levels` documents nested inside a top-level document: `{a: {a: ... {}}}`.
    pub(crate) fn nested(levels: usize) -> Document {
        let mut d = Document::new();
        for _ in 0..levels {
            d = doc! { "a": d };
        }
        d
    }

    #[test]
    fn reads_one_document_and_reports_its_size() {
        let d = doc! { "hello": 1, "s": "x", "arr": [1, { "b": true }] };
        let mut buf = bytes(&d);
        let len = buf.len();
        buf.extend_from_slice(b"tail");
        let (got, used) = read(&buf).expect("valid");
        assert_eq!(got, d);
        assert_eq!(used, len);
    }

    #[test]
    fn length_checks() {
        assert!(matches!(read(&[]), Err(WireError::InvalidBson(_))));
        assert!(matches!(read(&[5, 0, 0]), Err(WireError::InvalidBson(_))));
        // Declared length below 5, negative, or beyond the buffer.
        assert!(matches!(
            read(&[4, 0, 0, 0, 0]),
            Err(WireError::InvalidBson(_))
        ));
        assert!(matches!(
            read(&(-1i32).to_le_bytes()),
            Err(WireError::InvalidBson(_))
        ));
        let buf = bytes(&doc! { "a": 1 });
        assert!(matches!(
            read(&buf[..buf.len() - 1]),
            Err(WireError::InvalidBson(_))
        ));
        // Not NUL-terminated.
        let mut bad = buf.clone();
        *bad.last_mut().expect("nonempty") = 1;
        assert!(matches!(read(&bad), Err(WireError::InvalidBson(_))));
        // An element running past the end of its document.
        let mut bad = buf;
        bad[0] -= 2;
        bad.truncate(bad.len() - 2);
        bad.push(0);
        assert!(matches!(read(&bad), Err(WireError::InvalidBson(_))));
    }

    #[test]
    fn invalid_utf8_is_invalid_bson() {
        let mut buf = bytes(&doc! { "s": "abc" });
        let at = buf.windows(3).position(|w| w == b"abc").expect("present");
        buf[at] = 0xff;
        assert!(matches!(read(&buf), Err(WireError::InvalidBson(_))));
        let mut buf = bytes(&doc! { "k\u{e9}": 1 });
        let at = buf.iter().position(|&b| b == 0xc3).expect("present");
        buf[at] = 0xff;
        assert!(matches!(read(&buf), Err(WireError::InvalidBson(_))));
    }

    #[test]
    fn depth_limit_is_mongods_200_nested_levels() {
        let ok = nested(MAX_BSON_DEPTH);
        assert_eq!(read(&bytes(&ok)).expect("200 levels are fine").0, ok);
        assert!(matches!(
            read(&bytes(&nested(MAX_BSON_DEPTH + 1))),
            Err(WireError::TooDeep)
        ));
        // Arrays count as levels too.
        let mut d = Bson::Int32(1);
        for _ in 0..=MAX_BSON_DEPTH {
            d = Bson::Array(vec![d]);
        }
        assert!(matches!(
            read(&bytes(&doc! { "a": d })),
            Err(WireError::TooDeep)
        ));
    }

    #[test]
    fn very_deep_input_is_rejected_without_recursing() {
        // 100 000 levels of `{"": {...}}` built by hand: far beyond what a recursive
        // conversion could survive on a test thread's stack.
        let levels = 100_000usize;
        let mut buf = Vec::new();
        for _ in 0..levels {
            buf.extend_from_slice(&[0, 0, 0, 0]); // length, filled in below
            buf.extend_from_slice(&[3, 0]); // element type "document", empty key
        }
        buf.extend_from_slice(&[5, 0, 0, 0, 0]);
        buf.extend(std::iter::repeat_n(0u8, levels));
        // Each level is 4 (length) + 2 (type, key) + inner + 1 (NUL).
        let mut inner = 5usize;
        for i in (0..levels).rev() {
            let len = 4 + 2 + inner + 1;
            buf[i * 6..i * 6 + 4].copy_from_slice(&(len as i32).to_le_bytes());
            inner = len;
        }
        assert!(matches!(read(&buf), Err(WireError::TooDeep)));
    }

    #[test]
    fn size_limit_is_16mb_plus_16kb() {
        let big = "x".repeat(MAX_INTERNAL_BSON_SIZE);
        let buf = bytes(&doc! { "s": big });
        assert!(matches!(
            read(&buf),
            Err(WireError::DocumentTooLarge { len }) if len == buf.len()
        ));
        // Just under the limit still reads.
        let fits = "x".repeat(crate::MAX_BSON_SIZE);
        assert!(read(&bytes(&doc! { "s": fits })).is_ok());
    }
}
