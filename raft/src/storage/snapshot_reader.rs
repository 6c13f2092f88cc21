//! [`SnapshotReader`]: the data of a stored snapshot as the application reads it to
//! install it (`ApplyMsg::Snapshot`), from the storage's file rather than from memory, so
//! installing a snapshot of any size costs the application its own state, not a second
//! copy of the encoded one.

use bytes::{Buf, Bytes};
use std::fmt;
use std::io::{self, Read};

/// The data of a snapshot, `len` bytes, read as a stream. A reader over a file checks the
/// data against the file's checksum as it goes: its last read fails with `InvalidData`
/// when they differ, and any read fails with `UnexpectedEof` if the file is short.
pub struct SnapshotReader {
    len: u64,
    inner: Box<dyn Read + Send>,
}

impl SnapshotReader {
    /// `len` bytes from `inner`.
    pub fn new(len: u64, inner: impl Read + Send + 'static) -> SnapshotReader {
        SnapshotReader {
            len,
            inner: Box::new(inner),
        }
    }

    /// Data already in memory.
    pub fn from_bytes(data: Bytes) -> SnapshotReader {
        SnapshotReader::new(data.len() as u64, data.reader())
    }

    /// The data's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads all the data into memory (for small snapshots and tests).
    ///
    /// # Errors
    /// What reading failed with, or `InvalidData` if the stream is longer than `len`.
    pub fn into_bytes(self) -> io::Result<Bytes> {
        let len = self.len;
        let mut out = Vec::with_capacity(usize::try_from(len.min(64 << 20)).unwrap_or(0));
        self.inner.take(len).read_to_end(&mut out)?;
        if out.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the snapshot has {} of its {len} bytes", out.len()),
            ));
        }
        Ok(Bytes::from(out))
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotReader({} B)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_back_whole_and_a_short_stream_is_an_error() {
        let r = SnapshotReader::from_bytes(Bytes::from_static(b"abc"));
        assert_eq!(r.len(), 3);
        assert_eq!(r.into_bytes().unwrap(), Bytes::from_static(b"abc"));
        let short = SnapshotReader::new(5, &b"abc"[..]);
        assert_eq!(
            short.into_bytes().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
