//! WAL recovery: list the segments, replay them in order, judge how each ends, cut a
//! torn tail off the last one, reconcile with the snapshot file, and say where the WAL
//! continues.
//!
//! Rules (see `wal.rs` and `scan.rs`): a torn tail is cut only in the LAST segment; a
//! torn or corrupt record anywhere else, a gap in sequence numbers, or a WAL that
//! disagrees with the snapshot is an error that stops the node.
//!
//! The WAL continues in the last segment when it holds a hard state record. Every
//! segment's head (snapshot marker, hard state, SyncedUpTo) is written and fsynced before
//! anything else goes into it, so a last segment without a hard state was cut short
//! while being created: it holds no more than the start of a head, which restates what
//! the segments before it say. It is removed (durably) when there are such segments, or
//! when it holds no record at all; the WAL then continues in the one before it or starts
//! afresh. So restarts add no segments, however often a node crashes.

use super::spare::is_spare_name;
use super::{io_error, parse_segment_name, segment_name, Segment, WalOptions};
use crate::error::StorageError;
use crate::storage::fs::Fs;
use crate::storage::record::{CorruptReason, WalRecord};
use crate::storage::replay::{Replayed, WalReplay};
use crate::storage::scan::{scan_segment, ScanEnd, TornReason};
use crate::types::{LogIndex, SnapshotMeta};
use std::path::Path;

/// Segments larger than this are refused (they would be read whole).
const MIN_SEGMENT_READ_LIMIT_BYTES: u64 = 1 << 30;

/// The record length limit when reading. `max_record_bytes` limits what is written;
/// reading accepts any length (a record is sliced out of the segment bytes already in
/// memory, never allocated from its length), so lowering the option never turns
/// records written under a higher limit into "garbage".
const READ_MAX_RECORD_BYTES: u32 = u32::MAX;

/// How recovery left the last segment, when the WAL can continue in it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tail {
    /// Bytes of valid records: where appends continue.
    pub valid_bytes: u64,
    /// The file's length (more than `valid_bytes` when it ends in zeros: preallocated or
    /// zero-filled space).
    pub file_bytes: u64,
    /// Whether it holds a `SyncedUpTo` (false for a segment written before they existed).
    pub marked: bool,
}

/// What replaying one segment found.
#[derive(Clone, Copy, Debug)]
struct SegmentEnd {
    tail: Tail,
    records: usize,
    holds_hard_state: bool,
}

/// What recovery found: the segments left on disk, the state, and where to continue.
pub(super) struct Recovered {
    pub segments: Vec<Segment>,
    pub replayed: Replayed,
    /// `Some` when the WAL continues in the last of `segments`.
    pub tail: Option<Tail>,
}

/// Replays every segment in `dir` against the newest valid snapshot file's position,
/// then settles the last segment (module docs).
///
/// # Errors
/// `Io`, `Corrupt` (damage before the tail), `CorruptFile` (missing segments or
/// entries, disagreement with the snapshot).
pub(super) fn recover(
    fs: &dyn Fs,
    dir: &Path,
    options: &WalOptions,
    snapshot_file: Option<SnapshotMeta>,
) -> Result<Recovered, StorageError> {
    let mut segments = list_segments(fs, dir)?;
    if let (true, Some(meta)) = (segments.is_empty(), snapshot_file) {
        // Every open writes a segment before a snapshot can exist: the WAL, and with it
        // the hard state (term, vote), was deleted. Starting would risk a double vote.
        return Err(StorageError::CorruptFile {
            path: dir.to_path_buf(),
            reason: format!("no WAL segments, but a snapshot at {meta:?} exists"),
        });
    }
    let mut replay = WalReplay::default();
    let count = segments.len();
    let mut ends = Vec::with_capacity(count);
    for (i, segment) in segments.iter_mut().enumerate() {
        ends.push(replay_segment(
            fs,
            segment,
            i + 1 == count,
            options,
            &mut replay,
        )?);
    }
    let replayed = replay
        .finish(snapshot_file)
        .map_err(|reason| StorageError::CorruptFile {
            path: dir.to_path_buf(),
            reason,
        })?;
    // Only now that the data is known good: a refused start leaves the directory alone.
    let tail = settle_last_segment(fs, dir, &mut segments, &mut ends)?;
    Ok(Recovered {
        segments,
        replayed,
        tail,
    })
}

/// The segment files in `dir`, in sequence order, checked for gaps.
fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<Segment>, StorageError> {
    let mut segments = Vec::new();
    for name in fs.list_files(dir).map_err(io_error(dir))? {
        match parse_segment_name(&name) {
            Some(seq) => segments.push(Segment {
                seq,
                path: dir.join(&name),
                max_entry_index: LogIndex::ZERO,
            }),
            // A zero-filled spare never renamed into the log (see `spare.rs`): not part of
            // the log; `Wal::open` removes it once recovery has succeeded.
            None if is_spare_name(&name) => {}
            None => {
                tracing::warn!(file = %dir.join(&name).display(), "ignoring unknown file in the WAL directory")
            }
        }
    }
    segments.sort_by_key(|s| s.seq);
    for pair in segments.windows(2) {
        if pair[1].seq != pair[0].seq + 1 {
            return Err(StorageError::CorruptFile {
                path: dir.to_path_buf(),
                reason: format!(
                    "WAL segments {} to {} are missing",
                    segment_name(pair[0].seq + 1),
                    segment_name(pair[1].seq - 1)
                ),
            });
        }
    }
    Ok(segments)
}

/// Reads, judges and replays one segment; cuts a torn tail when it is the last.
fn replay_segment(
    fs: &dyn Fs,
    segment: &mut Segment,
    is_last: bool,
    options: &WalOptions,
    replay: &mut WalReplay,
) -> Result<SegmentEnd, StorageError> {
    let path = segment.path.clone();
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    let len = fs.file_len(&path).map_err(io_error(&path))?;
    let limit = MIN_SEGMENT_READ_LIMIT_BYTES.max(options.segment_bytes.saturating_mul(2));
    if len > limit {
        return Err(corrupt(
            0,
            format!("segment of {len} bytes exceeds the {limit}-byte limit"),
        ));
    }
    let bytes = fs.read(&path).map_err(io_error(&path))?;
    let scan = scan_segment(&bytes, READ_MAX_RECORD_BYTES);
    let valid_bytes = scan.valid_bytes(len);
    let records = scan.records.len();
    let holds = |kind: fn(&WalRecord) -> bool| scan.records.iter().any(|(_, r)| kind(r));
    let holds_hard_state = holds(|r| matches!(r, WalRecord::HardState(_)));
    let marked = holds(|r| matches!(r, WalRecord::SyncedUpTo { .. }));
    for (offset, record) in scan.records {
        if let WalRecord::Entry(entry) = &record {
            segment.max_entry_index = segment.max_entry_index.max(entry.index);
        }
        replay
            .apply(record)
            .map_err(|reason| corrupt(offset, reason))?;
    }
    let file_bytes = judge_end(fs, &path, len, scan.end, is_last)?;
    Ok(SegmentEnd {
        tail: Tail {
            valid_bytes,
            file_bytes,
            marked,
        },
        records,
        holds_hard_state,
    })
}

/// Applies the segment rule to how a segment of `len` bytes ends: accepts it, cuts a
/// torn tail off the last segment, or fails. Returns the file's length afterwards.
fn judge_end(
    fs: &dyn Fs,
    path: &Path,
    len: u64,
    end: ScanEnd,
    is_last: bool,
) -> Result<u64, StorageError> {
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    match end {
        ScanEnd::Clean => Ok(len),
        ScanEnd::Corrupt {
            offset,
            reason,
            valid_record_at,
            synced_up_to,
        } => Err(corrupt(
            offset,
            corrupt_reason(reason, valid_record_at, synced_up_to),
        )),
        // Zeros to the end of a sealed segment are space it preallocated and never used:
        // a segment is sealed only after everything written to it was fsynced, so no
        // data can have been lost there.
        ScanEnd::TornTail {
            reason: TornReason::ZeroFilled,
            ..
        } if !is_last => Ok(len),
        ScanEnd::TornTail { offset, reason } if !is_last => Err(corrupt(
            offset,
            format!("{reason} in a sealed (not the last) segment"),
        )),
        // Preallocated space the segment never used: nothing to cut (opening never
        // changes the data directory unless it must, so a refused start leaves it as it
        // was); the WAL goes on writing into it.
        ScanEnd::TornTail {
            reason: TornReason::ZeroFilled,
            ..
        } => Ok(len),
        ScanEnd::TornTail { offset, reason } => {
            tracing::warn!(
                file = %path.display(), offset, cut_bytes = len - offset, %reason,
                "cutting a torn tail off the write-ahead log"
            );
            let mut file = fs.open_append(path).map_err(io_error(path))?;
            file.set_len(offset).map_err(io_error(path))?;
            file.sync_data().map_err(io_error(path))?;
            Ok(offset)
        }
    }
}

/// Why a segment scanned as [`ScanEnd::Corrupt`] is corrupt, in words.
fn corrupt_reason(
    reason: CorruptReason,
    valid_record_at: u64,
    synced_up_to: Option<u64>,
) -> String {
    match synced_up_to {
        Some(synced) => format!(
            "{reason}; a valid record follows at byte {valid_record_at}, and a later one says \
             the first {synced} bytes had been fsynced"
        ),
        None => format!("{reason}; a valid record follows at byte {valid_record_at}"),
    }
}

/// Removes a last segment whose head was cut short (module docs) if nothing needs it, and
/// returns where the WAL continues: in the last segment left, if it holds a hard state.
fn settle_last_segment(
    fs: &dyn Fs,
    dir: &Path,
    segments: &mut Vec<Segment>,
    ends: &mut Vec<SegmentEnd>,
) -> Result<Option<Tail>, StorageError> {
    let (Some(last), Some(end)) = (segments.last(), ends.last()) else {
        return Ok(None);
    };
    if end.holds_hard_state {
        return Ok(Some(end.tail));
    }
    if end.records > 0 && segments.len() == 1 {
        // Only the start of a head, and nothing before it: keep it, and start the next
        // segment after it.
        return Ok(None);
    }
    tracing::info!(file = %last.path.display(), "removing a WAL segment whose creation a crash cut short");
    fs.remove_file(&last.path).map_err(io_error(&last.path))?;
    fs.sync_dir(dir).map_err(io_error(dir))?;
    segments.pop();
    ends.pop();
    Ok(ends
        .last()
        .filter(|end| end.holds_hard_state)
        .map(|end| end.tail))
}
