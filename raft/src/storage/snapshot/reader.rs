//! Reads the data of a snapshot file for the application, checking it against the file's
//! checksum as it goes (the file was validated when written or opened, but a disk can rot
//! in between, and the application would otherwise install garbage).

use super::format::DataLayout;
use std::io::{self, Read};

/// The data of one snapshot file, from an open file positioned at its start.
pub(super) struct VerifiedData<R> {
    inner: R,
    remaining: u64,
    crc: crc32fast::Hasher,
    expected_crc: u32,
}

impl<R: Read> VerifiedData<R> {
    /// The data `layout` describes; `inner` must be positioned at `layout.start`.
    pub(super) fn new(inner: R, layout: &DataLayout) -> VerifiedData<R> {
        VerifiedData {
            inner,
            remaining: layout.len,
            crc: crc32fast::Hasher::new(),
            expected_crc: layout.crc,
        }
    }
}

impl<R: Read> Read for VerifiedData<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the snapshot file ends {} bytes early", self.remaining),
            ));
        }
        self.crc.update(&buf[..n]);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let actual = self.crc.clone().finalize();
            if actual != self.expected_crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot data checksum mismatch (expected {:08x}, read {actual:08x})",
                        self.expected_crc
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8], crc: u32, len: u64) -> io::Result<Vec<u8>> {
        let layout = DataLayout {
            start: 0,
            len,
            crc,
            conf: None,
        };
        let mut out = Vec::new();
        VerifiedData::new(data, &layout).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn good_data_reads_back_and_bad_or_short_data_is_an_error() {
        let data = b"snapshot data";
        let crc = crc32fast::hash(data);
        assert_eq!(read_all(data, crc, 13).unwrap(), data);
        let flipped = b"snapshot dbta";
        assert_eq!(
            read_all(flipped, crc, 13).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_all(&data[..5], crc, 13).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
