//! Reads a whole WAL segment and decides how it ends: cleanly, with a torn tail that
//! recovery may cut off, or with corruption that must stop the node. PURE.
//!
//! # Torn tail or corruption?
//! A crash can only damage what was written after the last fsync, and the WAL appends
//! with one `write()` per batch, so crash damage is always at the end of the last
//! segment. Media corruption can be anywhere. After the first bad record at offset `o`
//! the scan decides:
//! - the input ends inside a record whose length checksum is valid (the body runs past
//!   EOF), or inside a header: **torn tail** (nothing can follow it);
//! - every byte from `o` to EOF is zero (zero-filled or preallocated space): **torn tail**;
//! - otherwise it searches for any checksum-valid record after `o` (after the bad
//!   record's end when its length is trustworthy, else at every byte offset). Found:
//!   **corrupt** (a valid record follows, so data after the damage would be lost by
//!   cutting). Not found: **torn tail** (garbage to EOF).
//!
//! A complete but checksum-failing LAST record is therefore treated as torn: on disk it
//! is indistinguishable from a crash in the middle of writing it (RocksDB's
//! "tolerate corrupted tail records" has the same blind spot). The caller applies the
//! segment rule: only the last segment may have a torn tail; earlier segments were
//! fsynced before the next one was created, so any damage there is corruption.
//!
//! Known limitation, chosen to fail safe: if a filesystem persisted an unsynced batch
//! out of order (a hole of zeros followed by later records of the same batch), the scan
//! reports corruption rather than guessing, and the node refuses to start.

use super::record::{is_valid_record_at, CorruptReason, Decoded, RecordDecoder, WalRecord};
use std::fmt;

/// Why the end of a segment was judged a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornReason {
    /// The input ends inside a record (partial header, or body past EOF).
    Incomplete,
    /// Only zero bytes from the bad record to EOF.
    ZeroFilled,
    /// A bad record with no valid record after it.
    Garbage(CorruptReason),
}

impl fmt::Display for TornReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TornReason::Incomplete => write!(f, "incomplete record at end of file"),
            TornReason::ZeroFilled => write!(f, "zero-filled space at end of file"),
            TornReason::Garbage(reason) => write!(f, "{reason}, and no valid record follows"),
        }
    }
}

/// How a segment ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte belongs to a valid record.
    Clean,
    /// The bytes from `offset` on are crash damage: cut them off (last segment only).
    TornTail {
        /// Where the damage starts (the file's valid length).
        offset: u64,
        /// Why this is judged torn.
        reason: TornReason,
    },
    /// A bad record at `offset` with a valid record after it at `valid_record_at`.
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        reason: CorruptReason,
        /// Where a later valid record was found.
        valid_record_at: u64,
    },
}

/// The result of scanning one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// The valid records before any damage, with their offsets, in file order.
    pub records: Vec<(u64, WalRecord)>,
    /// How the segment ends.
    pub end: ScanEnd,
}

impl SegmentScan {
    /// Bytes of the segment that hold valid records (where a torn tail gets cut).
    pub fn valid_bytes(&self, file_bytes: u64) -> u64 {
        match self.end {
            ScanEnd::Clean => file_bytes,
            ScanEnd::TornTail { offset, .. } | ScanEnd::Corrupt { offset, .. } => offset,
        }
    }
}

/// Scans a whole segment. Never panics, whatever the bytes.
pub fn scan_segment(buf: &[u8], max_record_bytes: u32) -> SegmentScan {
    let mut records = Vec::new();
    let mut end = ScanEnd::Clean;
    for decoded in RecordDecoder::new(buf, max_record_bytes) {
        match decoded {
            Decoded::Record { offset, record, .. } => records.push((offset, record)),
            Decoded::NeedMore { offset } => {
                end = ScanEnd::TornTail {
                    offset,
                    reason: TornReason::Incomplete,
                };
            }
            Decoded::Corrupt {
                offset,
                reason,
                next_offset,
            } => {
                end = classify_bad_record(buf, offset, reason, next_offset, max_record_bytes);
            }
        }
    }
    SegmentScan { records, end }
}

/// Applies the torn-or-corrupt rule to a bad record at `offset`.
fn classify_bad_record(
    buf: &[u8],
    offset: u64,
    reason: CorruptReason,
    next_offset: Option<u64>,
    max_record_bytes: u32,
) -> ScanEnd {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let tail = buf.get(start..).unwrap_or_default();
    if tail.iter().all(|&b| b == 0) {
        return ScanEnd::TornTail {
            offset,
            reason: TornReason::ZeroFilled,
        };
    }
    let search_from = next_offset.unwrap_or(offset.saturating_add(1));
    match find_valid_record(buf, search_from, max_record_bytes) {
        Some(valid_record_at) => ScanEnd::Corrupt {
            offset,
            reason,
            valid_record_at,
        },
        None => ScanEnd::TornTail {
            offset,
            reason: TornReason::Garbage(reason),
        },
    }
}

/// The first offset at or after `from` where a checksum-valid record starts.
/// Costs one 4-byte CRC per offset (the length checksum filters almost every position).
fn find_valid_record(buf: &[u8], from: u64, max_record_bytes: u32) -> Option<u64> {
    let from = usize::try_from(from).ok()?;
    // A record holds non-zero bytes (its checksums), so none starts inside the trailing
    // zeros: skip them (a preallocated segment ends in megabytes of them).
    let end = buf.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    (from..end).find_map(|at| {
        let rest = buf.get(at..)?;
        is_valid_record_at(rest, max_record_bytes).then_some(at as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{encode_record, DEFAULT_MAX_RECORD_BYTES};
    use crate::types::{Entry, HardState, LogIndex, Term};
    use bytes::Bytes;

    const MAX: u32 = DEFAULT_MAX_RECORD_BYTES;

    fn entry(index: u64, data: &[u8]) -> WalRecord {
        WalRecord::Entry(Entry {
            index: LogIndex(index),
            term: Term(1),
            data: Bytes::copy_from_slice(data),
            ..Entry::default()
        })
    }

    fn stream(records: &[WalRecord]) -> (Vec<u8>, Vec<u64>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for record in records {
            offsets.push(buf.len() as u64);
            encode_record(record, MAX, &mut buf).unwrap();
        }
        (buf, offsets)
    }

    #[test]
    fn clean_segment_has_every_record() {
        let records = vec![entry(1, b"a"), WalRecord::HardState(HardState::default())];
        let (buf, _) = stream(&records);
        let scan = scan_segment(&buf, MAX);
        assert_eq!(scan.end, ScanEnd::Clean);
        assert_eq!(
            scan.records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            records
        );
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let (mut buf, _) = stream(&[entry(1, b"a")]);
        let valid = buf.len() as u64;
        buf.extend_from_slice(&[0u8; 100]);
        let scan = scan_segment(&buf, MAX);
        assert_eq!(
            scan.end,
            ScanEnd::TornTail {
                offset: valid,
                reason: TornReason::ZeroFilled
            }
        );
        assert_eq!(scan.records.len(), 1);
    }

    #[test]
    fn flipped_byte_in_last_record_is_torn() {
        let (mut buf, offsets) = stream(&[entry(1, b"abc"), entry(2, b"def")]);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let scan = scan_segment(&buf, MAX);
        assert!(matches!(scan.end, ScanEnd::TornTail { offset, .. } if offset == offsets[1]));
    }

    #[test]
    fn flipped_byte_before_a_valid_record_is_corrupt() {
        let (mut buf, offsets) = stream(&[entry(1, b"abc"), entry(2, b"def"), entry(3, b"g")]);
        buf[offsets[1] as usize + 14] ^= 0x01;
        let scan = scan_segment(&buf, MAX);
        assert_eq!(
            scan.end,
            ScanEnd::Corrupt {
                offset: offsets[1],
                reason: CorruptReason::BadBodyChecksum,
                valid_record_at: offsets[2],
            }
        );
    }

    #[test]
    fn garbage_length_before_a_valid_record_is_corrupt() {
        let (mut buf, offsets) = stream(&[entry(1, b"abc"), entry(2, b"def"), entry(3, b"g")]);
        buf[offsets[1] as usize] ^= 0x40;
        let scan = scan_segment(&buf, MAX);
        assert!(matches!(
            scan.end,
            ScanEnd::Corrupt { offset, valid_record_at, .. }
                if offset == offsets[1] && valid_record_at == offsets[2]
        ));
    }

    #[test]
    fn truncated_body_is_torn_incomplete() {
        let (buf, offsets) = stream(&[entry(1, b"abc"), entry(2, b"defgh")]);
        let scan = scan_segment(&buf[..buf.len() - 2], MAX);
        assert_eq!(
            scan.end,
            ScanEnd::TornTail {
                offset: offsets[1],
                reason: TornReason::Incomplete
            }
        );
        assert_eq!(scan.valid_bytes(buf.len() as u64 - 2), offsets[1]);
    }
}
