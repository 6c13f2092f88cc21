//! The body of a snapshot as the decoder reads it: pulled from a stream (the storage's
//! snapshot file) through a small buffer, checksummed as it comes, and never read past
//! its known length. The decoder asks for fields; every request is checked against the
//! bytes the body still holds, so a corrupt length can neither read beyond the body nor
//! allocate more than the input holds.

use crate::error::SnapshotError;
use bytes::Bytes;
use prost::encoding::decode_varint;
use std::io::Read;

/// Bytes pulled from the stream at a time.
const READ_BYTES: usize = 256 << 10;
/// Most bytes a varint takes.
const MAX_VARINT_BYTES: usize = 10;

/// The body being decoded.
pub(super) struct BodyInput<R> {
    input: R,
    buf: Vec<u8>,
    /// The next unconsumed byte of `buf`.
    pos: usize,
    /// Body bytes not yet pulled from `input`.
    unread: u64,
    crc: crc32fast::Hasher,
}

impl<R: Read> BodyInput<R> {
    /// A body of `len` bytes at the front of `input`.
    pub(super) fn new(input: R, len: u64) -> BodyInput<R> {
        BodyInput {
            input,
            buf: Vec::new(),
            pos: 0,
            unread: len,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Body bytes not yet consumed.
    pub(super) fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64 + self.unread
    }

    /// The body's checksum and the input after it: call once every byte is consumed.
    pub(super) fn finish(self) -> (u32, R) {
        (self.crc.finalize(), self.input)
    }

    /// Makes `n` bytes available in `buf[pos..]`, or says the body is too short.
    fn fill(&mut self, n: usize, what: &'static str) -> Result<(), SnapshotError> {
        let have = self.buf.len() - self.pos;
        if have >= n {
            return Ok(());
        }
        if n as u64 > self.remaining() {
            return Err(SnapshotError::Truncated {
                what,
                needed: n as u64,
                remaining: self.remaining(),
            });
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        // Read at least what is needed, in pieces of READ_BYTES when there is more.
        let want = n.max(READ_BYTES) - have;
        let pull = usize::try_from(self.unread).map_or(want, |u| u.min(want));
        let start = self.buf.len();
        self.buf.resize(start + pull, 0);
        self.input
            .read_exact(&mut self.buf[start..])
            .map_err(|e| SnapshotError::Read {
                reason: e.to_string(),
            })?;
        self.crc.update(&self.buf[start..]);
        self.unread -= pull as u64;
        Ok(())
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], SnapshotError> {
        self.fill(n, what)?;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(raw))
    }

    /// A varint length, then that many bytes (copied out of the buffer).
    pub(super) fn prefixed(&mut self, what: &'static str) -> Result<Bytes, SnapshotError> {
        let varint_bytes =
            usize::try_from(self.remaining()).map_or(MAX_VARINT_BYTES, |r| r.min(MAX_VARINT_BYTES));
        self.fill(varint_bytes, what)?;
        let mut window = &self.buf[self.pos..];
        let before = window.len();
        let len = decode_varint(&mut window).map_err(|_| SnapshotError::Malformed { what })?;
        self.pos += before - window.len();
        let remaining = self.remaining();
        if len > remaining {
            return Err(SnapshotError::Truncated {
                what,
                needed: len,
                remaining,
            });
        }
        // Checked above: `len` is at most what the body holds, hence it fits in usize
        // wherever the body could be read.
        let len = usize::try_from(len).map_err(|_| SnapshotError::Malformed { what })?;
        Ok(Bytes::copy_from_slice(self.take(len, what)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_across_buffer_refills_and_a_short_body_is_truncated() {
        let big = vec![7u8; READ_BYTES + 100];
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        prost::encoding::encode_varint(big.len() as u64, &mut body);
        body.extend_from_slice(&big);
        body.extend_from_slice(&9u64.to_le_bytes());
        let mut input = BodyInput::new(&body[..], body.len() as u64);
        assert_eq!(input.u64("a").unwrap(), 42);
        assert_eq!(input.prefixed("b").unwrap(), Bytes::from(big));
        assert_eq!(input.u64("c").unwrap(), 9);
        assert_eq!(input.remaining(), 0);
        assert!(matches!(
            input.u64("d"),
            Err(SnapshotError::Truncated { remaining: 0, .. })
        ));
        let (crc, _) = input.finish();
        assert_eq!(crc, crc32fast::hash(&body));
    }

    #[test]
    fn a_length_beyond_the_body_is_refused_before_reading() {
        let mut body = Vec::new();
        prost::encoding::encode_varint(1 << 40, &mut body);
        let mut input = BodyInput::new(&body[..], body.len() as u64);
        assert!(matches!(
            input.prefixed("key"),
            Err(SnapshotError::Truncated { needed, .. }) if needed == 1 << 40
        ));
    }
}
