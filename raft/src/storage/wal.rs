//! The write-ahead log: segment files of records, batched writes, one fsync per batch,
//! rotation, purge, and recovery.
//!
//! # Files
//! `<dir>/wal-<seq:020>.log`, `seq` = 1, 2, 3, ... A sequence number, not the first
//! index: an overwrite can move the log back below a segment's first index, and a
//! segment may hold no entries at all (only hard states), so only a sequence number
//! orders segments truthfully.
//!
//! Every new segment starts with a *head*: a snapshot marker for the snapshot in force
//! (if any) and the hard state, as of the records written before it, then a
//! `SyncedUpTo { offset: 0 }`. So any suffix of segments replays to the right hard state
//! and snapshot point, which lets a purge delete a prefix of segments freely, and every
//! segment written by this version holds a `SyncedUpTo` (see below).
//!
//! # Write path and durability
//! `append_*` encode records into an in-memory buffer (flushed early past
//! `write_buffer_bytes`, so it stays bounded). `sync` writes the buffer with one
//! `write()` and then issues ONE `fdatasync` for everything written since the last sync:
//! group commit is the caller batching many appends before one `sync`. Every such write
//! (a *batch*) starts with a `SyncedUpTo { offset }` record (21 bytes): the active
//! segment's length at its last fdatasync, i.e. what was durable when the batch was
//! written. Recovery uses it to tell an unsynced batch persisted out of order (a hole
//! followed by later records of it: a torn tail) from damage to synced bytes (see
//! `scan.rs`). Its slot is reserved when a batch's first record is buffered and filled
//! in at the write, once rotation has settled which segment the batch lands in. A segment
//! rotates (at a flush, once it holds `segment_bytes`) only after it is fsynced, and a
//! new segment's file and directory entry are fsynced before anything relies on it. So
//! every segment except the last is complete and durable on disk.
//!
//! With fsync on a real file system, segments come zero-filled from a background thread
//! (`wal/spare.rs`) so that each fdatasync writes data alone; until a spare is ready the
//! WAL writes short (8 MiB) `fallocate`d segments instead.
//!
//! # Recovery
//! Segments are replayed in `seq` order (see `replay.rs`). The end of each is judged by
//! `scan.rs`: a torn tail in the LAST segment is cut off (the file truncated there,
//! with a warning); damage anywhere else is `StorageError::Corrupt` naming the file and
//! offset. A gap in the sequence numbers is an error too (a prefix gap is a purge).
//!
//! The WAL then continues the last segment after its valid records (`wal/active.rs`,
//! after fsyncing what recovery read) rather than starting a new one at every open, so
//! a crash-looping node does not fill its disk with preallocated segments. A last
//! segment whose head a crash cut short is removed first (`wal/recovery.rs`). If replay
//! had to apply a snapshot file no marker records, a marker is appended and synced
//! before anything else (a new segment's head would have carried it); a segment from
//! before `SyncedUpTo` records existed gets one first, alone and synced.
//!
//! # Purge
//! After a snapshot at index `s` is durable and its marker synced, the longest prefix of
//! non-active segments whose entries are all `<= s` is deleted, one file at a time,
//! each removal made durable before the next, so the segments on disk are always a
//! contiguous suffix. A crash mid-purge leaves redundant segments that replay skips.

use super::fs::{Fs, FsFile};
use super::record::{
    encode_entry, encode_record, encode_synced_up_to, SnapshotMarker, WalRecord,
    SYNCED_UP_TO_RECORD_BYTES,
};
use super::replay::Replayed;
use super::StorageStats;
use crate::error::StorageError;
use crate::types::{Entry, HardState, LogIndex, SnapshotMeta};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod active;
mod recovery;
mod spare;

use active::{continue_segment, create_segment, fallback_bytes, ActiveFile, NewSegment};
use recovery::{Recovered, Tail};
use spare::SparePipeline;

/// How long a segment without a zero-filled spare may grow before the WAL rotates (and
/// takes a spare if one is ready by then): short, because appends into it cost more.
const FALLBACK_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// How the WAL writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalOptions {
    /// Rotate to a new segment once the active one holds this many bytes.
    pub segment_bytes: u64,
    /// Issue fsyncs (false only for tests and benches).
    pub fsync: bool,
    /// Largest record body.
    pub max_record_bytes: u32,
    /// Write the buffer out (without syncing) once it holds this many bytes.
    pub write_buffer_bytes: usize,
}

/// One segment file.
#[derive(Debug)]
pub(super) struct Segment {
    pub seq: u64,
    pub path: PathBuf,
    /// Highest entry index written into this segment (0 if none).
    pub max_entry_index: LogIndex,
}

/// What a new segment restates first.
#[derive(Clone, Copy, Debug, Default)]
struct SegmentHead {
    snapshot: Option<SnapshotMarker>,
    hard_state: HardState,
}

/// The write-ahead log of one data directory.
#[derive(Debug)]
pub(crate) struct Wal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: WalOptions,
    /// One per segment file on disk, oldest first; the last is active. Unbounded in
    /// type, bounded in practice: each snapshot purges the covered prefix.
    segments: Vec<Segment>,
    active: Box<dyn FsFile>,
    active_bytes: u64,
    /// Rotate once `active_bytes` reaches this (`segment_bytes`, or less for a segment
    /// that is not zero-filled).
    active_limit: u64,
    /// Zero-filled spare segments (with fsync on a real file system).
    spares: Option<SparePipeline>,
    /// The next batch: a slot for its `SyncedUpTo`, then encoded records not yet
    /// written (bounded by `write_buffer_bytes` + one record). Empty when there is none.
    buffer: Vec<u8>,
    buffer_records: u64,
    buffer_max_entry_index: LogIndex,
    buffer_head: SegmentHead,
    written_head: SegmentHead,
    /// Bytes were written to the active segment since its last fdatasync.
    unsynced: bool,
    /// The active segment's length at its last fdatasync (0 with fsync off: nothing is
    /// durable then): what the next batch's `SyncedUpTo` claims.
    durable_bytes: u64,
    stats: StorageStats,
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn segment_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, replays it against the newest valid snapshot
    /// file's position, cuts a torn tail, and continues the last segment (or starts one).
    ///
    /// # Errors
    /// `Io` on I/O failure, `Corrupt` for damage before the tail, `CorruptFile` when
    /// the WAL and the snapshot disagree or entries are missing.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: WalOptions,
        snapshot_file: Option<SnapshotMeta>,
    ) -> Result<(Wal, Replayed), StorageError> {
        let Recovered {
            mut segments,
            replayed,
            tail,
        } = recovery::recover(fs.as_ref(), dir, &options, snapshot_file)?;
        // Only now that the data is known good (a refused start leaves the directory
        // alone): spares a crash left behind are garbage.
        remove_leftover_spares(fs.as_ref(), dir)?;
        let mut stats = StorageStats::default();
        let (head, first_head) = heads(&replayed);
        // A spare is prepared lazily, once a segment is half full (see `flush`): a node
        // that writes little never pays for zero-filling one.
        let spares = (options.fsync && fs.supports_spare_segments())
            .then(|| SparePipeline::new(fs.clone(), dir, options.segment_bytes));
        let start = ActiveStart {
            tail,
            head: first_head,
            fallback_bytes: fallback_bytes(&options, spares.is_some()),
        };
        let active = open_active(fs.as_ref(), dir, start, &options, &mut segments, &mut stats)?;
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            entries = replayed.entries.len(),
            continued = tail.is_some(),
            "write-ahead log recovered"
        );
        let mut wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            options,
            segments,
            active: active.file,
            active_bytes: active.bytes,
            active_limit: active.limit,
            spares,
            buffer: Vec::new(),
            buffer_records: 0,
            buffer_max_entry_index: LogIndex::ZERO,
            buffer_head: head,
            written_head: head,
            unsynced: false,
            durable_bytes: if options.fsync { active.bytes } else { 0 },
            stats,
        };
        if let Some(tail) = tail {
            wal.prepare_continued_segment(tail, replayed.implicit_marker)?;
        }
        Ok((wal, replayed))
    }

    /// Writes what a continued segment lacks that a new one's head would hold: a
    /// `SyncedUpTo` (a segment from before they existed; otherwise a hole in its first
    /// new batch that also took that batch's `SyncedUpTo` would be judged by the old
    /// rule, corrupt), and the snapshot marker for a compaction replay applied without
    /// one (the WAL must record it before anything is appended after it). Each synced.
    fn prepare_continued_segment(
        &mut self,
        tail: Tail,
        implicit_marker: Option<SnapshotMarker>,
    ) -> Result<(), StorageError> {
        if !tail.marked {
            self.mark_active_segment()?;
        }
        if let Some(marker) = implicit_marker {
            self.append_snapshot_marker(marker)?;
            self.sync()?;
        }
        Ok(())
    }

    /// Counters of what this WAL did.
    pub fn stats(&self) -> StorageStats {
        self.stats
    }

    /// Number of segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Buffers Entry records (the caller checked their sizes).
    ///
    /// # Errors
    /// `Contract` if an entry exceeds the record size limit (nothing is buffered);
    /// `Io` if an early flush fails.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let start = self.buffer.len();
        self.reserve_synced_up_to();
        for entry in entries {
            if let Err(too_large) =
                encode_entry(entry, self.options.max_record_bytes, &mut self.buffer)
            {
                self.buffer.truncate(start);
                return Err(StorageError::Contract(format!(
                    "entry {} needs a {}-byte record, over the limit of {}",
                    entry.index, too_large.len, too_large.max
                )));
            }
        }
        self.buffer_records += entries.len() as u64;
        if let Some(max) = entries.iter().map(|e| e.index).max() {
            self.buffer_max_entry_index = self.buffer_max_entry_index.max(max);
        }
        self.maybe_flush()
    }

    /// Buffers a HardState record.
    ///
    /// # Errors
    /// `Io` if an early flush fails.
    pub fn append_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.append_small(&WalRecord::HardState(hard_state))?;
        self.buffer_head.hard_state = hard_state;
        self.maybe_flush()
    }

    /// Buffers a SnapshotMarker record.
    ///
    /// # Errors
    /// `Io` if an early flush fails.
    pub fn append_snapshot_marker(&mut self, marker: SnapshotMarker) -> Result<(), StorageError> {
        self.append_small(&WalRecord::SnapshotMarker(marker))?;
        self.buffer_head.snapshot = Some(SnapshotMarker {
            meta: marker.meta,
            log_kept: true,
        });
        self.maybe_flush()
    }

    fn append_small(&mut self, record: &WalRecord) -> Result<(), StorageError> {
        let start = self.buffer.len();
        self.reserve_synced_up_to();
        encode_record(record, self.options.max_record_bytes, &mut self.buffer).map_err(|e| {
            self.buffer.truncate(start);
            StorageError::Contract(format!(
                "record of {} bytes over the limit {}",
                e.len, e.max
            ))
        })?;
        self.buffer_records += 1;
        Ok(())
    }

    /// Writes a `SyncedUpTo` alone into the active segment and syncs it.
    fn mark_active_segment(&mut self) -> Result<(), StorageError> {
        let path = self.active_path().to_path_buf();
        let mark = encode_synced_up_to(self.durable_bytes);
        self.active.write_all(&mark).map_err(io_error(&path))?;
        self.active_bytes += mark.len() as u64;
        self.unsynced = true;
        self.stats.bytes_written += mark.len() as u64;
        self.stats.records_written += 1;
        self.sync_active()
    }

    /// Starts a batch: reserves the slot of its `SyncedUpTo` (filled in by `flush`).
    fn reserve_synced_up_to(&mut self) {
        if self.buffer.is_empty() {
            self.buffer.resize(SYNCED_UP_TO_RECORD_BYTES, 0);
        }
    }

    /// Writes the batch's `SyncedUpTo` (what the active segment's last fdatasync made
    /// durable) into its slot.
    ///
    /// # Panics
    /// If the buffer does not start with the slot (a bug: the first record of a batch
    /// reserves it).
    fn fill_synced_up_to(&mut self) {
        assert!(
            self.buffer.len() > SYNCED_UP_TO_RECORD_BYTES,
            "a WAL batch starts with its SyncedUpTo slot and holds a record"
        );
        self.buffer[..SYNCED_UP_TO_RECORD_BYTES]
            .copy_from_slice(&encode_synced_up_to(self.durable_bytes));
    }

    fn maybe_flush(&mut self) -> Result<(), StorageError> {
        if self.buffer.len() >= self.options.write_buffer_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffer to the active segment with one write (rotating first if the
    /// segment is full). Not durable until [`Wal::sync`].
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.active_bytes >= self.active_limit {
            self.rotate()?;
        }
        if self.active_bytes >= self.active_limit / 2 {
            if let Some(spares) = self.spares.as_mut() {
                spares.prepare();
            }
        }
        self.fill_synced_up_to();
        let path = self.active_path().to_path_buf();
        self.active
            .write_all(&self.buffer)
            .map_err(io_error(&path))?;
        let written = self.buffer.len() as u64;
        self.active_bytes += written;
        self.unsynced = true;
        self.stats.bytes_written += written;
        // The buffered records and the batch's SyncedUpTo.
        self.stats.records_written += self.buffer_records + 1;
        if let Some(active) = self.segments.last_mut() {
            active.max_entry_index = active.max_entry_index.max(self.buffer_max_entry_index);
        }
        self.written_head = self.buffer_head;
        self.buffer.clear();
        self.buffer_records = 0;
        self.buffer_max_entry_index = LogIndex::ZERO;
        Ok(())
    }

    /// Makes everything appended so far durable: one write, then one fdatasync.
    ///
    /// # Errors
    /// `Io` on failure; the WAL's durable state is then unknown and it must not be used.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.sync_active()
    }

    fn sync_active(&mut self) -> Result<(), StorageError> {
        if self.unsynced && self.options.fsync {
            let path = self.active_path().to_path_buf();
            let started = std::time::Instant::now();
            self.active.sync_data().map_err(io_error(&path))?;
            warn_if_slow(
                started,
                "WAL fdatasync",
                self.active_bytes.saturating_sub(self.durable_bytes),
            );
            self.stats.syncs += 1;
            self.durable_bytes = self.active_bytes;
        }
        self.unsynced = false;
        Ok(())
    }

    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// Seals the active segment (fsync) and starts the next one.
    fn rotate(&mut self) -> Result<(), StorageError> {
        self.sync_active()?;
        let started = std::time::Instant::now();
        let seq = self.segments.last().map_or(1, |s| s.seq + 1);
        let spare = self.spares.as_mut().and_then(SparePipeline::take_ready);
        let what = if spare.is_some() {
            "WAL rotation onto a spare segment"
        } else {
            "WAL rotation (no spare ready)"
        };
        let new_segment = NewSegment {
            seq,
            head: self.written_head,
            spare,
            fallback_bytes: fallback_bytes(&self.options, self.spares.is_some()),
        };
        let active = create_segment(
            self.fs.as_ref(),
            &self.dir,
            new_segment,
            &self.options,
            &mut self.stats,
        )?;
        self.active = active.file;
        self.active_bytes = active.bytes;
        self.active_limit = active.limit;
        self.durable_bytes = if self.options.fsync { active.bytes } else { 0 };
        warn_if_slow(started, what, 0);
        let path = self.dir.join(segment_name(seq));
        self.segments.push(Segment {
            seq,
            path,
            max_entry_index: LogIndex::ZERO,
        });
        tracing::debug!(seq, "write-ahead log rotated to a new segment");
        Ok(())
    }

    /// Takes the oldest segments whose entries are all covered by a snapshot at
    /// `snapshot_index` (never the active one) out of this WAL and returns their paths,
    /// for the caller to delete (`FileCleanup`), on any thread. Call only once the
    /// snapshot and its marker are durable. A crash that keeps any subset of them
    /// recovers the same: replay skips covered entries and holes among them.
    pub fn detach_covered(&mut self, snapshot_index: LogIndex) -> Vec<PathBuf> {
        let sealed = self.segments.len().saturating_sub(1);
        let covered = self.segments[..sealed]
            .iter()
            .take_while(|s| s.max_entry_index <= snapshot_index)
            .count();
        if covered > 0 {
            tracing::info!(segments = covered, %snapshot_index, "WAL segments covered by a snapshot: to delete");
        }
        self.segments.drain(..covered).map(|s| s.path).collect()
    }

    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The head of later segments, and that of a segment created at open: later heads
/// restate the snapshot as "log kept" (a no-op on the log as it then is); only the
/// first may carry the discard decision replay just made.
fn heads(replayed: &Replayed) -> (SegmentHead, SegmentHead) {
    let head = SegmentHead {
        snapshot: replayed.snapshot.map(|meta| SnapshotMarker {
            meta,
            log_kept: true,
        }),
        hard_state: replayed.hard_state,
    };
    let first_head = SegmentHead {
        snapshot: replayed.implicit_marker.or(head.snapshot),
        ..head
    };
    (head, first_head)
}

/// Where the active segment comes from at open.
struct ActiveStart {
    /// Continue the last segment, which recovery left ending here.
    tail: Option<Tail>,
    /// Else create the next one with this head.
    head: SegmentHead,
    fallback_bytes: u64,
}

/// Continues the last segment, or creates the next one (and adds it to `segments`).
fn open_active(
    fs: &dyn Fs,
    dir: &Path,
    start: ActiveStart,
    options: &WalOptions,
    segments: &mut Vec<Segment>,
    stats: &mut StorageStats,
) -> Result<ActiveFile, StorageError> {
    if let (Some(tail), Some(last)) = (start.tail, segments.last()) {
        return continue_segment(fs, &last.path, tail, start.fallback_bytes, options, stats);
    }
    let seq = segments.last().map_or(1, |s| s.seq + 1);
    let new_segment = NewSegment {
        seq,
        head: start.head,
        spare: None,
        fallback_bytes: start.fallback_bytes,
    };
    let active = create_segment(fs, dir, new_segment, options, stats)?;
    segments.push(Segment {
        seq,
        path: dir.join(segment_name(seq)),
        max_entry_index: LogIndex::ZERO,
    });
    Ok(active)
}

/// Logs a WAL operation that took long enough to delay heartbeats (the executor runs it).
fn warn_if_slow(started: std::time::Instant, what: &str, bytes: u64) {
    let took = started.elapsed();
    if took >= std::time::Duration::from_millis(50) {
        tracing::warn!(took_ms = took.as_millis() as u64, bytes, "slow {what}");
    }
}

/// Deletes `spare-*.tmp` files (see `wal/spare.rs`) in `dir`.
///
/// A spare that vanishes between the listing and its removal is fine: the spare thread of
/// a WAL dropped earlier in this process deletes its own file once nobody takes it, and may
/// do so while a new WAL opens the same directory (a restart within one process).
fn remove_leftover_spares(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    let names = fs.list_files(dir).map_err(io_error(dir))?;
    remove_spares_among(fs, dir, &names)
}

fn remove_spares_among(fs: &dyn Fs, dir: &Path, names: &[String]) -> Result<(), StorageError> {
    for name in names {
        if spare::is_spare_name(name) {
            let path = dir.join(name);
            match fs.remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(file = %path.display(), "removed a leftover spare segment")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_strangers() {
        assert_eq!(segment_name(7), "wal-00000000000000000007.log");
        assert_eq!(parse_segment_name(&segment_name(7)), Some(7));
        assert_eq!(parse_segment_name("wal-7.log"), None);
        assert_eq!(parse_segment_name("wal-0000000000000000000x.log"), None);
        assert_eq!(parse_segment_name("snap-00000000000000000007.log"), None);
    }

    #[test]
    fn a_spare_removed_by_its_own_thread_meanwhile_is_not_an_error() {
        let fs = crate::storage::sim_fs::SimFs::new();
        let dir = Path::new("/wal");
        fs.create_dir_all(dir).unwrap();
        fs.create_new(&dir.join("spare-1-2.tmp")).unwrap();
        let listed = vec!["spare-1-1.tmp".to_string(), "spare-1-2.tmp".to_string()];
        remove_spares_among(&fs, dir, &listed).unwrap();
        assert!(fs.list_files(dir).unwrap().is_empty());
    }
}
