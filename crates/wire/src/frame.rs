//! Writing frames: a header whose length is patched in once the body is complete.

use crate::{Header, WireError, HEADER_LEN};

/// A frame under construction: 16 placeholder header bytes, then the body.
pub(crate) struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    pub(crate) fn with_capacity(body: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_LEN.saturating_add(body));
        buf.extend_from_slice(&[0; HEADER_LEN]);
        FrameBuf { buf }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A BSON cstring: the bytes, then a zero (callers pass names without NULs).
    pub(crate) fn cstring(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// Writes at `at` (where a 4-byte placeholder was written) the length of what
    /// follows from there: a BSON document's or array's size.
    pub(crate) fn patch_len(&mut self, at: usize) {
        let len = self.buf.len().saturating_sub(at);
        self.patch_i32(at, i32::try_from(len).unwrap_or(i32::MAX));
    }

    /// Length of everything written so far, header included.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Overwrites 4 bytes written earlier (a section size).
    pub(crate) fn patch_i32(&mut self, at: usize, v: i32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Appends the CRC-32C of everything written so far (the OP_MSG checksum), after the
    /// final length has been patched in: the checksum covers the header too.
    fn append_checksum(&mut self) {
        let crc = crc32c::crc32c(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
    }

    /// Fills in the header and returns the frame; `checksum` appends an OP_MSG checksum.
    pub(crate) fn finish(
        mut self,
        request_id: i32,
        response_to: i32,
        op_code: i32,
        checksum: bool,
    ) -> Result<Vec<u8>, WireError> {
        let total = self.buf.len() + if checksum { 4 } else { 0 };
        let length = i32::try_from(total).map_err(|_| WireError::TooLarge { len: total })?;
        let header = Header {
            length,
            request_id,
            response_to,
            op_code,
        };
        if let Some(slot) = self.buf.get_mut(..HEADER_LEN) {
            slot.copy_from_slice(&header.to_bytes());
        }
        if checksum {
            self.append_checksum();
        }
        Ok(self.buf)
    }
}
