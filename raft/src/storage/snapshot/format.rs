//! The bytes of a snapshot file. PURE.
//!
//! Version 2 (written since issue 11), little-endian:
//! ```text
//!  0        8        12       20       28           32          end-16     end-8      end-4
//!  | magic  | version| index  | term   | header_crc | data ...  | data_len | data_crc | trailer_crc |
//!  "RKVSNAP\0"  u32=2   u64      u64      u32                     u64        u32        u32
//! ```
//! The length and checksum of the data come after it, so a snapshot can be streamed into
//! its file as the application encodes it, with no copy of it in memory.
//! `header_crc` covers bytes 0..28 and `trailer_crc` the 12 bytes before it.
//!
//! Version 1 (still read): a 44-byte header `magic | version u32 = 1 | index | term |
//! data_len u64 | data_crc u32 | header_crc u32 (over 0..40)`, then the data.
//!
//! A file is valid only if its checksums match, its length is exactly what its header or
//! trailer says, and its (index, term) match the file name.

use crate::types::{LogIndex, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;

pub(super) const MAGIC: &[u8; 8] = b"RKVSNAP\0";
/// The version this build writes.
pub(super) const VERSION: u32 = 2;
/// Bytes before the data, version 2.
pub(super) const HEADER_BYTES: usize = 32;
/// Bytes after the data, version 2.
pub(super) const TRAILER_BYTES: usize = 16;
/// Bytes before the data, version 1.
const V1_HEADER_BYTES: usize = 44;
/// Enough of the start of a file to know where its data starts.
pub(super) const PREFIX_BYTES: usize = 12;

/// The version-2 header for a snapshot at `meta`.
pub(super) fn header(meta: SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&meta.index.get().to_le_bytes());
    out.extend_from_slice(&meta.term.get().to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The version-2 trailer for `data_len` bytes of data with checksum `data_crc`.
pub(super) fn trailer(data_len: u64, data_crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRAILER_BYTES);
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data_crc.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Where the data starts in a file that begins with `prefix` (at least `PREFIX_BYTES`).
pub(super) fn data_offset(prefix: &[u8]) -> Result<u64, String> {
    if prefix.len() < PREFIX_BYTES || &prefix[..8] != MAGIC {
        return Err("not a raftkv snapshot".into());
    }
    match le_u32(prefix, 8) {
        1 => Ok(V1_HEADER_BYTES as u64),
        2 => Ok(HEADER_BYTES as u64),
        other => Err(format!("snapshot format version {other} is not supported")),
    }
}

/// Where the data starts and how long it is, in a file of `file_len` bytes that begins
/// with `prefix` (a validated file: it was checked whole when it was written or opened).
pub(super) fn data_range(prefix: &[u8], file_len: u64) -> Result<(u64, u64), String> {
    let start = data_offset(prefix)?;
    let after = if start == HEADER_BYTES as u64 {
        TRAILER_BYTES as u64
    } else {
        0
    };
    let len = file_len
        .checked_sub(start + after)
        .ok_or_else(|| format!("{file_len} bytes is too short for a snapshot"))?;
    Ok((start, len))
}

/// Where a validated file's data lies, and the checksum it must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DataLayout {
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) crc: u32,
}

/// Bytes of the start of a file [`layout`] needs (or the whole file, if shorter).
pub(super) const LAYOUT_HEAD_BYTES: usize = V1_HEADER_BYTES;

/// The data layout of a file of `file_len` bytes named for `expected`, from its first
/// `LAYOUT_HEAD_BYTES` bytes (`head`) and its last `TRAILER_BYTES` (`tail`): the header
/// and trailer are checked here, the data's checksum as it is read.
pub(super) fn layout(
    head: &[u8],
    tail: &[u8],
    file_len: u64,
    expected: SnapshotMeta,
) -> Result<DataLayout, String> {
    let start = data_offset(head.get(..PREFIX_BYTES).unwrap_or(head))?;
    let (meta, layout) = if start == V1_HEADER_BYTES as u64 {
        let header = head
            .get(..V1_HEADER_BYTES)
            .ok_or_else(|| format!("{file_len} bytes is shorter than the header"))?;
        if crc32fast::hash(&header[..40]) != le_u32(header, 40) {
            return Err("header checksum mismatch".into());
        }
        let len = le_u64(header, 28);
        if file_len.checked_sub(start) != Some(len) {
            return Err(format!(
                "the file has {file_len} bytes; its header says {len} of data"
            ));
        }
        let crc = le_u32(header, 36);
        (meta_at(header), DataLayout { start, len, crc })
    } else {
        let around = (HEADER_BYTES + TRAILER_BYTES) as u64;
        if file_len < around || tail.len() != TRAILER_BYTES {
            return Err(format!(
                "{file_len} bytes is shorter than the header and trailer"
            ));
        }
        let header = &head[..HEADER_BYTES];
        if crc32fast::hash(&header[..28]) != le_u32(header, 28) {
            return Err("header checksum mismatch".into());
        }
        if crc32fast::hash(&tail[..12]) != le_u32(tail, 12) {
            return Err("trailer checksum mismatch (an unfinished file?)".into());
        }
        let len = le_u64(tail, 0);
        if file_len - around != len {
            return Err(format!(
                "the file has {file_len} bytes; its trailer says {len} of data"
            ));
        }
        let crc = le_u32(tail, 8);
        (meta_at(header), DataLayout { start, len, crc })
    };
    if meta != expected {
        return Err(format!(
            "header says {meta:?} but the file name says {expected:?}"
        ));
    }
    Ok(layout)
}

/// Validates a whole snapshot file named for `expected`.
pub(super) fn decode(bytes: Vec<u8>, expected: SnapshotMeta) -> Result<Snapshot, String> {
    let start = data_offset(bytes.get(..PREFIX_BYTES).unwrap_or(&bytes))?;
    let (meta, range) = if start == V1_HEADER_BYTES as u64 {
        decode_v1(&bytes)?
    } else {
        decode_v2(&bytes)?
    };
    if meta != expected {
        return Err(format!(
            "header says {meta:?} but the file name says {expected:?}"
        ));
    }
    Ok(Snapshot {
        meta,
        data: Bytes::from(bytes).slice(range),
    })
}

fn decode_v1(bytes: &[u8]) -> Result<(SnapshotMeta, std::ops::Range<usize>), String> {
    let header = bytes
        .get(..V1_HEADER_BYTES)
        .ok_or_else(|| format!("{} bytes is shorter than the header", bytes.len()))?;
    if crc32fast::hash(&header[..40]) != le_u32(header, 40) {
        return Err("header checksum mismatch".into());
    }
    let data = &bytes[V1_HEADER_BYTES..];
    if data.len() as u64 != le_u64(header, 28) {
        return Err(format!(
            "data is {} bytes, header says {}",
            data.len(),
            le_u64(header, 28)
        ));
    }
    if crc32fast::hash(data) != le_u32(header, 36) {
        return Err("data checksum mismatch".into());
    }
    Ok((meta_at(header), V1_HEADER_BYTES..bytes.len()))
}

fn decode_v2(bytes: &[u8]) -> Result<(SnapshotMeta, std::ops::Range<usize>), String> {
    if bytes.len() < HEADER_BYTES + TRAILER_BYTES {
        return Err(format!(
            "{} bytes is shorter than the header and trailer",
            bytes.len()
        ));
    }
    let header = &bytes[..HEADER_BYTES];
    if crc32fast::hash(&header[..28]) != le_u32(header, 28) {
        return Err("header checksum mismatch".into());
    }
    let end = bytes.len() - TRAILER_BYTES;
    let trailer = &bytes[end..];
    if crc32fast::hash(&trailer[..12]) != le_u32(trailer, 12) {
        return Err("trailer checksum mismatch (an unfinished file?)".into());
    }
    let data = &bytes[HEADER_BYTES..end];
    if data.len() as u64 != le_u64(trailer, 0) {
        return Err(format!(
            "data is {} bytes, trailer says {}",
            data.len(),
            le_u64(trailer, 0)
        ));
    }
    if crc32fast::hash(data) != le_u32(trailer, 8) {
        return Err("data checksum mismatch".into());
    }
    Ok((meta_at(header), HEADER_BYTES..end))
}

fn meta_at(header: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(le_u64(header, 12)),
        term: Term(le_u64(header, 20)),
    }
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
            },
            data: Bytes::from_static(data),
        }
    }

    /// A version-2 file of `snapshot`.
    fn file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut bytes = header(snapshot.meta);
        bytes.extend_from_slice(&snapshot.data);
        bytes.extend(trailer(
            snapshot.data.len() as u64,
            crc32fast::hash(&snapshot.data),
        ));
        bytes
    }

    /// A version-1 file, as builds before issue 11 wrote them.
    fn v1_file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&snapshot.meta.index.get().to_le_bytes());
        out.extend_from_slice(&snapshot.meta.term.get().to_le_bytes());
        out.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&snapshot.data);
        out
    }

    fn layout_of(bytes: &[u8], expected: SnapshotMeta) -> Result<DataLayout, String> {
        let head = &bytes[..bytes.len().min(LAYOUT_HEAD_BYTES)];
        let tail = &bytes[bytes.len().saturating_sub(TRAILER_BYTES)..];
        layout(head, tail, bytes.len() as u64, expected)
    }

    #[test]
    fn the_layout_names_the_data_and_its_checksum_in_both_versions() {
        let s = snapshot(7, 2, b"some data");
        for bytes in [file_bytes(&s), v1_file_bytes(&s)] {
            let l = layout_of(&bytes, s.meta).unwrap();
            let (start, end) = (l.start as usize, (l.start + l.len) as usize);
            assert_eq!(&bytes[start..end], b"some data");
            assert_eq!(l.crc, crc32fast::hash(b"some data"));
            assert!(
                layout_of(&bytes, snapshot(8, 2, b"").meta).is_err(),
                "other name"
            );
            assert!(layout_of(&bytes[..bytes.len() - 1], s.meta).is_err(), "cut");
        }
    }

    #[test]
    fn both_versions_round_trip_and_say_where_the_data_starts() {
        let snap = snapshot(12, 3, b"state");
        for (file, offset) in [(file_bytes(&snap), 32), (v1_file_bytes(&snap), 44)] {
            assert_eq!(data_offset(&file[..PREFIX_BYTES]), Ok(offset));
            assert_eq!(
                data_range(&file[..PREFIX_BYTES], file.len() as u64),
                Ok((offset, 5))
            );
            assert_eq!(decode(file, snap.meta), Ok(snap.clone()));
        }
        let empty = snapshot(1, 1, b"");
        assert_eq!(decode(file_bytes(&empty), empty.meta), Ok(empty));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_rejected() {
        let snap = snapshot(12, 3, b"some state bytes");
        for good in [file_bytes(&snap), v1_file_bytes(&snap)] {
            for at in 0..good.len() {
                let mut bad = good.clone();
                bad[at] ^= 0x20;
                assert!(decode(bad, snap.meta).is_err(), "flip at {at} accepted");
                assert!(
                    decode(good[..at].to_vec(), snap.meta).is_err(),
                    "cut at {at} accepted"
                );
            }
        }
    }

    #[test]
    fn header_must_match_the_name() {
        let snap = snapshot(12, 3, b"x");
        let other = SnapshotMeta {
            index: LogIndex(13),
            term: Term(3),
        };
        assert!(decode(file_bytes(&snap), other)
            .unwrap_err()
            .contains("file name"));
    }
}
