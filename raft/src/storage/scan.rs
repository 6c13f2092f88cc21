//! Reads a whole WAL segment and decides how it ends: cleanly, with a torn tail that
//! recovery may cut off, or with corruption that must stop the node. PURE.
//!
//! # Torn tail or corruption?
//! A crash can only damage what was written after the last fsync, and the WAL appends
//! with one `write()` per batch, so crash damage is always in the unsynced end of the
//! last segment. But a power loss may persist that end's pages in any order: a later
//! page on disk while an earlier one is lost (zeros, or whatever was there), so valid
//! records can follow crash damage. Media corruption can be anywhere. What tells the two
//! apart is the `SyncedUpTo { offset }` record that starts every batch (`record.rs`):
//! the first `offset` bytes of the segment were durable before that batch was written.
//!
//! After the first bad record at offset `o` the scan decides:
//! - the input ends inside a record whose length checksum is valid (the body runs past
//!   EOF), or inside a header: **torn tail** (nothing can follow it);
//! - every byte from `o` to EOF is zero (zero-filled or preallocated space): **torn tail**;
//! - otherwise it collects the checksum-valid records after `o` (resuming after a bad
//!   record's end when its length is trustworthy, else at every byte offset, and again
//!   after every further bad stretch):
//!   - none: **torn tail** (garbage to EOF);
//!   - one of them is a `SyncedUpTo` claiming an offset `> o`: **corrupt** (bytes an
//!     fsync had made durable were damaged);
//!   - none claims more than `o`, and the segment holds a `SyncedUpTo` (before or after
//!     `o`; every segment head ends with one): **torn tail** (out-of-order writeback).
//!     The damage lies in bytes no fsync had covered when the later records were
//!     written, and an fsync covers a prefix, so those records were never synced either:
//!     they are cut off with the damage;
//!   - the segment holds no `SyncedUpTo` at all (written before they existed):
//!     **corrupt**, the old fail-safe rule (a valid record follows the damage).
//!
//! The caller applies the segment rule: only the last segment may have a torn tail;
//! earlier segments were fsynced before the next one was created, so any damage there is
//! corruption.
//!
//! # Blind spots
//! - Damage at or beyond `C`, the largest offset claimed by the valid `SyncedUpTo`
//!   records after it, is taken for a torn tail. A mark claims what the fsync BEFORE its
//!   batch made durable, so the bytes beyond `C` include every batch written since the
//!   last-but-one fsync of the segment (the last synced batch among them: no later mark
//!   says it was synced), and more if the damage also destroyed the marks after it.
//!   Media corruption there is cut off with a warning instead of stopping the node: the
//!   same trade as the next item, over the last synced batch instead of the last record.
//! - A complete but checksum-failing LAST record is treated as torn: on disk it is
//!   indistinguishable from a crash in the middle of writing it (RocksDB's "tolerate
//!   corrupted tail records" has the same blind spot).
//! - A valid-looking record inside an entry's data (a value holding WAL bytes) can be
//!   found by the search; it can only add claims, so it errs towards corruption.

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
    /// A bad record with valid records after it that were written when no fsync had
    /// covered it yet (their `SyncedUpTo` marks claim at most its offset): an unsynced
    /// write persisted out of order.
    Unsynced {
        /// What is wrong with the bad record.
        reason: CorruptReason,
        /// Where the first valid record after it starts.
        valid_record_at: u64,
    },
}

impl fmt::Display for TornReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TornReason::Incomplete => write!(f, "incomplete record at end of file"),
            TornReason::ZeroFilled => write!(f, "zero-filled space at end of file"),
            TornReason::Garbage(reason) => write!(f, "{reason}, and no valid record follows"),
            TornReason::Unsynced {
                reason,
                valid_record_at,
            } => write!(
                f,
                "{reason}, and the valid records after it (from byte {valid_record_at}) were \
                 written before any fsync covered it (an unsynced write persisted out of order)"
            ),
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
        /// The largest durable offset a later `SyncedUpTo` claims (`> offset`); `None`
        /// in a segment without such records.
        synced_up_to: Option<u64>,
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
                let bad = BadRecord {
                    offset,
                    reason,
                    next_offset,
                    marked_before: records.iter().any(|(_, r)| is_synced_up_to(r)),
                };
                end = classify_bad_record(buf, bad, max_record_bytes);
            }
        }
    }
    SegmentScan { records, end }
}

fn is_synced_up_to(record: &WalRecord) -> bool {
    matches!(record, WalRecord::SyncedUpTo { .. })
}

/// The first bad record of a segment.
struct BadRecord {
    offset: u64,
    reason: CorruptReason,
    /// Where the next record would start, when the bad one's length is trustworthy.
    next_offset: Option<u64>,
    /// Whether a `SyncedUpTo` precedes it.
    marked_before: bool,
}

/// Applies the torn-or-corrupt rule (module docs) to the first bad record.
fn classify_bad_record(buf: &[u8], bad: BadRecord, max_record_bytes: u32) -> ScanEnd {
    let BadRecord { offset, reason, .. } = bad;
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let tail = buf.get(start..).unwrap_or_default();
    if tail.iter().all(|&b| b == 0) {
        return ScanEnd::TornTail {
            offset,
            reason: TornReason::ZeroFilled,
        };
    }
    let search_from = bad.next_offset.unwrap_or(offset.saturating_add(1));
    let Some(later) = later_records(buf, search_from, max_record_bytes) else {
        return ScanEnd::TornTail {
            offset,
            reason: TornReason::Garbage(reason),
        };
    };
    let valid_record_at = later.first_at;
    match later.max_claim {
        Some(claim) if claim > offset => ScanEnd::Corrupt {
            offset,
            reason,
            valid_record_at,
            synced_up_to: Some(claim),
        },
        Some(_) => unsynced_tail(offset, reason, valid_record_at),
        None if bad.marked_before => unsynced_tail(offset, reason, valid_record_at),
        None => ScanEnd::Corrupt {
            offset,
            reason,
            valid_record_at,
            synced_up_to: None,
        },
    }
}

fn unsynced_tail(offset: u64, reason: CorruptReason, valid_record_at: u64) -> ScanEnd {
    ScanEnd::TornTail {
        offset,
        reason: TornReason::Unsynced {
            reason,
            valid_record_at,
        },
    }
}

/// What the checksum-valid records after a bad one say.
struct LaterRecords {
    /// Where the first one starts.
    first_at: u64,
    /// The largest offset a `SyncedUpTo` among them claims.
    max_claim: Option<u64>,
}

/// Collects the valid records at or after `from`: decodes them in order, and after each
/// bad stretch searches for the next one. `None` when there is none.
fn later_records(buf: &[u8], from: u64, max_record_bytes: u32) -> Option<LaterRecords> {
    // A record holds non-zero bytes (its checksums), so none starts inside the trailing
    // zeros: searches stop there (a preallocated segment ends in megabytes of them).
    let data_end = buf.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
    let first_at = find_valid_record(buf, from, data_end, max_record_bytes)?;
    let mut max_claim = None;
    let mut resume_at = Some(first_at);
    while let Some(at) = resume_at.take() {
        for decoded in RecordDecoder::starting_at(buf, at, max_record_bytes) {
            match decoded {
                Decoded::Record {
                    record: WalRecord::SyncedUpTo { offset },
                    ..
                } => max_claim = max_claim.max(Some(offset)),
                Decoded::Record { .. } | Decoded::NeedMore { .. } => {}
                // Each search starts past the bad record, so the loop moves forward.
                Decoded::Corrupt {
                    offset,
                    next_offset,
                    ..
                } => {
                    let from = next_offset.unwrap_or(offset.saturating_add(1));
                    resume_at = find_valid_record(buf, from, data_end, max_record_bytes);
                }
            }
        }
    }
    Some(LaterRecords {
        first_at: first_at as u64,
        max_claim,
    })
}

/// The first offset in `from..data_end` where a checksum-valid record starts. Costs one
/// 4-byte CRC per offset (the length checksum filters almost every position).
fn find_valid_record(
    buf: &[u8],
    from: u64,
    data_end: usize,
    max_record_bytes: u32,
) -> Option<usize> {
    let from = usize::try_from(from).ok()?;
    (from..data_end).find(|&at| {
        buf.get(at..)
            .is_some_and(|rest| is_valid_record_at(rest, max_record_bytes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{
        encode_record, DEFAULT_MAX_RECORD_BYTES, SYNCED_UP_TO_RECORD_BYTES,
    };
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

    /// A segment as the WAL writes it: a head (synced at creation), then batches that
    /// each start with a SyncedUpTo claiming what the last `sync` made durable.
    struct SegmentWriter {
        buf: Vec<u8>,
        durable: u64,
    }

    impl SegmentWriter {
        fn new() -> SegmentWriter {
            let head = [
                WalRecord::HardState(HardState::default()),
                WalRecord::SyncedUpTo { offset: 0 },
            ];
            let (buf, _) = stream(&head);
            let durable = buf.len() as u64;
            SegmentWriter { buf, durable }
        }

        /// Writes one batch; returns where it starts.
        fn batch(&mut self, records: &[WalRecord]) -> usize {
            let start = self.buf.len();
            let mark = WalRecord::SyncedUpTo {
                offset: self.durable,
            };
            encode_record(&mark, MAX, &mut self.buf).unwrap();
            for record in records {
                encode_record(record, MAX, &mut self.buf).unwrap();
            }
            start
        }

        fn sync(&mut self) {
            self.durable = self.buf.len() as u64;
        }
    }

    fn big_entries(indexes: std::ops::RangeInclusive<u64>) -> Vec<WalRecord> {
        indexes.map(|i| entry(i, &[i as u8 | 1; 300])).collect()
    }

    const PAGE: usize = 4096;

    #[test]
    fn out_of_order_hole_in_an_unsynced_batch_is_a_torn_tail() {
        let mut segment = SegmentWriter::new();
        segment.batch(&big_entries(1..=1));
        segment.sync();
        // Two unsynced batches, the first spanning three pages.
        let unsynced = segment.batch(&big_entries(2..=25));
        segment.batch(&big_entries(26..=30));
        assert!(unsynced < PAGE && segment.buf.len() > 2 * PAGE);
        // Power loss: the first page's unsynced part never reached the disk (zeros), the
        // later pages did.
        let mut disk = segment.buf.clone();
        disk[unsynced..PAGE].fill(0);
        let scan = scan_segment(&disk, MAX);
        assert!(
            matches!(
                scan.end,
                ScanEnd::TornTail {
                    offset,
                    reason: TornReason::Unsynced { valid_record_at, .. },
                } if offset == unsynced as u64 && valid_record_at > PAGE as u64
            ),
            "{:?}",
            scan.end
        );
        // The head and the synced batch (SyncedUpTo, entry 1) survive; nothing after.
        assert_eq!(scan.records.len(), 4);
        assert_eq!(scan.valid_bytes(disk.len() as u64), unsynced as u64);
    }

    #[test]
    fn the_same_hole_in_bytes_a_later_batch_says_were_synced_is_corrupt() {
        let mut segment = SegmentWriter::new();
        segment.batch(&big_entries(1..=1));
        segment.sync();
        let hole = segment.batch(&big_entries(2..=25));
        segment.sync();
        let synced = segment.buf.len() as u64;
        segment.batch(&big_entries(26..=30));
        let mut disk = segment.buf.clone();
        disk[hole..PAGE].fill(0);
        let scan = scan_segment(&disk, MAX);
        assert!(
            matches!(
                scan.end,
                ScanEnd::Corrupt { offset, synced_up_to: Some(claim), .. }
                    if offset == hole as u64 && claim == synced
            ),
            "{:?}",
            scan.end
        );
    }

    /// The blind spot of the rule (module docs): nothing after the last synced batch
    /// says it was synced, so damage to it reads as a torn tail until a later batch
    /// (whose SyncedUpTo covers it) is written.
    #[test]
    fn damage_to_the_last_synced_batch_is_caught_only_once_a_later_batch_vouches_for_it() {
        let mut segment = SegmentWriter::new();
        segment.batch(&big_entries(1..=1));
        segment.sync();
        let last_synced = segment.batch(&big_entries(2..=4));
        segment.sync();
        let flip = |buf: &mut Vec<u8>| buf[last_synced + SYNCED_UP_TO_RECORD_BYTES + 40] ^= 1;
        let mut disk = segment.buf.clone();
        flip(&mut disk);
        assert!(matches!(
            scan_segment(&disk, MAX).end,
            ScanEnd::TornTail {
                reason: TornReason::Unsynced { .. },
                ..
            }
        ));
        segment.batch(&big_entries(5..=5));
        let mut disk = segment.buf.clone();
        flip(&mut disk);
        assert!(matches!(
            scan_segment(&disk, MAX).end,
            ScanEnd::Corrupt {
                synced_up_to: Some(_),
                ..
            }
        ));
    }

    /// Segments written before SyncedUpTo existed (these streams hold none) keep the old
    /// rule: a valid record after damage means corruption.
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
                synced_up_to: None,
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
