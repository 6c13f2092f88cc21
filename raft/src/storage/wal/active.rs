//! The active segment's file: created with a head (at rotation, or at open when there is
//! no segment to continue), or continued after recovery (at open).
//!
//! Continuing instead of starting a segment at every open is what keeps a crash-looping
//! node from filling its disk: each new segment takes a preallocated 8 MiB (or a 64 MiB
//! spare) that only a snapshot purges. A continued segment is opened at its valid end
//! (over its zeros, on a real disk) and fsynced before anything is appended: what
//! recovery read may have come from the page cache of a process that died, and the next
//! batch's `SyncedUpTo` claims it durable.

use super::spare::Spare;
use super::{io_error, segment_name, SegmentHead, WalOptions, FALLBACK_SEGMENT_BYTES};
use crate::error::StorageError;
use crate::storage::fs::{Fs, FsFile};
use crate::storage::record::{encode_record, WalRecord};
use crate::storage::StorageStats;
use std::path::Path;

use super::recovery::Tail;

/// An open active segment.
#[derive(Debug)]
pub(super) struct ActiveFile {
    pub file: Box<dyn FsFile>,
    /// Bytes of records in it (where the next write goes).
    pub bytes: u64,
    /// Rotate once `bytes` reaches this.
    pub limit: u64,
}

/// The next segment to create.
pub(super) struct NewSegment {
    pub seq: u64,
    pub head: SegmentHead,
    /// A zero-filled spare to rename into place, if one is ready.
    pub spare: Option<Spare>,
    /// The rotation limit of a segment made without a spare.
    pub fallback_bytes: u64,
}

/// Rotation limit of segments created without a spare: short while spares are coming.
pub(super) fn fallback_bytes(options: &WalOptions, spares: bool) -> u64 {
    if spares {
        options.segment_bytes.min(FALLBACK_SEGMENT_BYTES)
    } else {
        options.segment_bytes
    }
}

/// Creates segment `seq` with its head records, durable (file and directory entry)
/// before it is returned: from the spare if given, else a new file.
pub(super) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    new_segment: NewSegment,
    options: &WalOptions,
    stats: &mut StorageStats,
) -> Result<ActiveFile, StorageError> {
    let NewSegment {
        seq,
        head,
        spare,
        fallback_bytes,
    } = new_segment;
    let path = dir.join(segment_name(seq));
    let mut buf = Vec::new();
    // The SyncedUpTo marks the segment as written with them (`scan.rs`): nothing of it
    // was durable before this write.
    let mut records = vec![
        WalRecord::HardState(head.hard_state),
        WalRecord::SyncedUpTo { offset: 0 },
    ];
    if let Some(marker) = head.snapshot {
        records.insert(0, WalRecord::SnapshotMarker(marker));
    }
    for record in &records {
        encode_record(record, options.max_record_bytes, &mut buf)
            .map_err(|_| StorageError::Contract("head record over the size limit".into()))?;
    }
    let (mut file, limit) = match spare {
        Some(spare) => {
            // Zero-filled and durable already; the rename is made durable below.
            fs.rename(&spare.path, &path).map_err(io_error(&path))?;
            (spare.file, options.segment_bytes)
        }
        None => {
            let mut file = fs.create_new(&path).map_err(io_error(&path))?;
            if options.fsync {
                // Reserve the segment up front: appends inside it then leave the file's
                // size alone. The reservation is made durable by the sync below.
                preallocate(file.as_mut(), &path, fallback_bytes);
            }
            (file, fallback_bytes)
        }
    };
    file.write_all(&buf).map_err(io_error(&path))?;
    if options.fsync {
        file.sync_data().map_err(io_error(&path))?;
        fs.sync_dir(dir).map_err(io_error(dir))?;
        stats.syncs += 2;
    }
    stats.bytes_written += buf.len() as u64;
    stats.records_written += records.len() as u64;
    Ok(ActiveFile {
        file,
        bytes: buf.len() as u64,
        limit,
    })
}

/// Opens the segment at `path` (the last one, ending as recovery left it) to append
/// after its valid records, with what they hold durable. A segment of the full size (a
/// spare) keeps rotating at `segment_bytes`; any other at `fallback_bytes`, preallocated
/// again if recovery cut it.
pub(super) fn continue_segment(
    fs: &dyn Fs,
    path: &Path,
    tail: Tail,
    fallback_bytes: u64,
    options: &WalOptions,
    stats: &mut StorageStats,
) -> Result<ActiveFile, StorageError> {
    let mut file = fs.open_at(path, tail.valid_bytes).map_err(io_error(path))?;
    let limit = if tail.file_bytes >= options.segment_bytes {
        options.segment_bytes
    } else {
        fallback_bytes
    };
    if options.fsync {
        if tail.file_bytes < limit {
            preallocate(file.as_mut(), path, limit);
        }
        file.sync_data().map_err(io_error(path))?;
        stats.syncs += 1;
    }
    tracing::debug!(file = %path.display(), bytes = tail.valid_bytes, "continuing the last WAL segment");
    Ok(ActiveFile {
        file,
        bytes: tail.valid_bytes,
        limit,
    })
}

/// Best effort: a file system without `fallocate` appends instead.
fn preallocate(file: &mut dyn FsFile, path: &Path, bytes: u64) {
    if let Err(e) = file.preallocate(bytes) {
        tracing::debug!(file = %path.display(), error = %e, "preallocation unavailable");
    }
}
