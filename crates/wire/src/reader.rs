//! A bounds-checked cursor over a message body: every read either succeeds or returns an
//! error, none can panic, whatever the bytes.

use bson::Document;

use crate::doc;
use crate::WireError;

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { rest: buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let (&b, rest) = self.rest.split_first().ok_or(WireError::Truncated(what))?;
        self.rest = rest;
        Ok(b)
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(WireError::Truncated(what))?;
        self.rest = rest;
        Ok(i32::from_le_bytes(*bytes))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.i32(what).map(|v| v as u32)
    }

    /// Takes the next `n` bytes as a sub-slice.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, WireError> {
        let nul = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::InvalidCString)?;
        let (s, rest) = self.rest.split_at(nul);
        // `rest` starts with the NUL found above.
        self.rest = rest.get(1..).unwrap_or_default();
        std::str::from_utf8(s).map_err(|_| WireError::InvalidCString)
    }

    /// One BSON document, validated and converted (see [`doc::read`]).
    pub(crate) fn document(&mut self) -> Result<Document, WireError> {
        let (document, used) = doc::read(self.rest)?;
        self.rest = self.rest.get(used..).unwrap_or_default();
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail_instead_of_running_off_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(matches!(r.i32("x"), Err(WireError::Truncated("x"))));
        assert_eq!(r.u8("b").ok(), Some(1));
        assert!(r.take(3).is_none());
        assert_eq!(r.take(2), Some(&[2u8, 3][..]));
        assert!(r.is_empty());
        assert!(matches!(r.u8("b"), Err(WireError::Truncated("b"))));
    }

    #[test]
    fn cstrings_need_their_nul_and_utf8() {
        let mut r = Reader::new(b"admin.$cmd\0rest");
        assert_eq!(r.cstr().ok(), Some("admin.$cmd"));
        assert_eq!(r.remaining(), 4);
        assert!(matches!(
            Reader::new(b"no nul").cstr(),
            Err(WireError::InvalidCString)
        ));
        assert!(matches!(
            Reader::new(b"\xff\xfe\0").cstr(),
            Err(WireError::InvalidCString)
        ));
        assert_eq!(Reader::new(b"\0").cstr().ok(), Some(""));
    }
}
