//! Snapshot files: `<dir>/snap-<term:020>-<index:020>.snap`, written crash-safely.
//!
//! # File layout (little-endian)
//! ```text
//!  0        8        12       20       28          36         40           44
//!  | magic  | version| index  | term   | data_len  | data_crc | header_crc | data ... |
//!  "RKVSNAP\0"  u32=1   u64      u64      u64         u32        u32
//! ```
//! `header_crc` covers bytes 0..40; `data_crc` covers the data. The file is valid only
//! if both match, the length is exactly `44 + data_len`, and the header's (index, term)
//! match the file name.
//!
//! # Write protocol
//! Write `<name>.tmp`, fsync it, rename it to `<name>`, fsync the directory. Only then
//! is the snapshot durable; older snapshot files are deleted after the caller has also
//! made the WAL consistent with it (marker synced, covered segments purged). Leftover
//! `.tmp` files are removed at open.
//!
//! # Which snapshot is used
//! The newest valid file. A newer file that fails validation is skipped with a warning
//! and reported to the caller, which accepts the older one only if the WAL still
//! covers everything after it (no WAL marker names the skipped one, no entries missing);
//! otherwise opening fails. See `DiskStorage::open`.

use super::fs::Fs;
use super::StorageStats;
use crate::error::StorageError;
use crate::types::{LogIndex, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"RKVSNAP\0";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 44;

/// A snapshot file that failed validation.
#[derive(Debug)]
pub(crate) struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was rejected.
    pub reason: String,
}

/// A snapshot file is fsynced after every this many bytes of data (see `SnapshotStore::save`).
const SYNC_EVERY_BYTES: usize = 4 << 20;

/// The snapshot files of one data directory. Cloning shares the directory: a clone may
/// write a snapshot file on another thread (see `Storage::snapshot_file_job`).
#[derive(Clone, Debug)]
pub(crate) struct SnapshotStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    fsync: bool,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn snapshot_name(meta: SnapshotMeta) -> String {
    format!("snap-{:020}-{:020}.snap", meta.term.get(), meta.index.get())
}

fn parse_snapshot_name(name: &str) -> Option<SnapshotMeta> {
    let stem = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (term, index) = stem.split_once('-')?;
    let valid = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !valid(term) || !valid(index) {
        return None;
    }
    Some(SnapshotMeta {
        index: LogIndex(index.parse().ok()?),
        term: Term(term.parse().ok()?),
    })
}

/// Encodes the file header for `snapshot`.
fn encode_header(snapshot: &Snapshot) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&snapshot.meta.index.get().to_le_bytes());
    header.extend_from_slice(&snapshot.meta.term.get().to_le_bytes());
    header.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
    let header_crc = crc32fast::hash(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    header
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

/// Validates a whole snapshot file named for `expected`. PURE.
fn decode_file(bytes: Vec<u8>, expected: SnapshotMeta) -> Result<Snapshot, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    let header = &bytes[..HEADER_BYTES];
    if crc32fast::hash(&header[..40]) != le_u32(header, 40) {
        return Err("header checksum mismatch".into());
    }
    if &header[..8] != MAGIC || le_u32(header, 8) != VERSION {
        return Err("not a version-1 raftkv snapshot".into());
    }
    let meta = SnapshotMeta {
        index: LogIndex(le_u64(header, 12)),
        term: Term(le_u64(header, 20)),
    };
    if meta != expected {
        return Err(format!(
            "header says {meta:?} but the file name says {expected:?}"
        ));
    }
    let data_len = le_u64(header, 28);
    if bytes.len() as u64 - HEADER_BYTES as u64 != data_len {
        return Err(format!(
            "data is {} bytes, header says {data_len}",
            bytes.len() - HEADER_BYTES
        ));
    }
    if crc32fast::hash(&bytes[HEADER_BYTES..]) != le_u32(header, 36) {
        return Err("data checksum mismatch".into());
    }
    let mut bytes = Bytes::from(bytes);
    Ok(Snapshot {
        meta,
        data: bytes.split_off(HEADER_BYTES),
    })
}

impl SnapshotStore {
    /// Opens the snapshot directory: removes leftover temp files and loads the newest
    /// valid snapshot, returning the newer invalid ones it skipped.
    ///
    /// # Errors
    /// `Io` on I/O failure.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        fsync: bool,
    ) -> Result<(SnapshotStore, Option<Snapshot>, Vec<SkippedSnapshot>), StorageError> {
        let store = SnapshotStore {
            fs,
            dir: dir.to_path_buf(),
            fsync,
        };
        let mut candidates = Vec::new();
        for name in store.fs.list_files(dir).map_err(io_error(dir))? {
            let path = dir.join(&name);
            if name.ends_with(".tmp") {
                tracing::warn!(file = %path.display(), "removing an unfinished snapshot");
                store.fs.remove_file(&path).map_err(io_error(&path))?;
            } else if let Some(meta) = parse_snapshot_name(&name) {
                candidates.push((meta, path));
            }
        }
        candidates.sort_by_key(|(meta, _)| std::cmp::Reverse(meta.index));
        let mut skipped = Vec::new();
        for (meta, path) in candidates {
            let bytes = store.fs.read(&path).map_err(io_error(&path))?;
            match decode_file(bytes, meta) {
                Ok(snapshot) => return Ok((store, Some(snapshot), skipped)),
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "skipping an invalid snapshot");
                    skipped.push(SkippedSnapshot { path, reason });
                }
            }
        }
        Ok((store, None, skipped))
    }

    /// Durably writes `snapshot`: temp file, fsync, rename, directory fsync.
    ///
    /// # Errors
    /// `Io` on failure; the snapshot is then not (known to be) durable.
    pub fn save(&self, snapshot: &Snapshot, stats: &mut StorageStats) -> Result<(), StorageError> {
        let path = self.dir.join(snapshot_name(snapshot.meta));
        let tmp = self
            .dir
            .join(format!("{}.tmp", snapshot_name(snapshot.meta)));
        if self.fs.exists(&tmp).map_err(io_error(&tmp))? {
            self.fs.remove_file(&tmp).map_err(io_error(&tmp))?;
        }
        let mut file = self.fs.create_new(&tmp).map_err(io_error(&tmp))?;
        let header = encode_header(snapshot);
        file.write_all(&header).map_err(io_error(&tmp))?;
        stats.bytes_written += header.len() as u64;
        // In pieces, each made durable before the next is written: a large snapshot
        // written whole and fsynced once leaves the disk with hundreds of megabytes of
        // dirty pages to flush at once, and every WAL fdatasync on the same disk (this
        // node's, and on a shared machine its peers') waits behind them for seconds.
        for piece in snapshot.data.chunks(SYNC_EVERY_BYTES) {
            file.write_all(piece).map_err(io_error(&tmp))?;
            stats.bytes_written += piece.len() as u64;
            if self.fsync {
                file.sync_data().map_err(io_error(&tmp))?;
                stats.syncs += 1;
            }
        }
        if self.fsync && snapshot.data.is_empty() {
            file.sync_data().map_err(io_error(&tmp))?;
            stats.syncs += 1;
        }
        drop(file);
        self.fs.rename(&tmp, &path).map_err(io_error(&path))?;
        self.sync_dir(stats)?;
        tracing::info!(index = %snapshot.meta.index, term = %snapshot.meta.term, "snapshot saved");
        Ok(())
    }

    /// Reads and validates the snapshot file at `meta`.
    ///
    /// # Errors
    /// `Io` on I/O failure, `CorruptFile` when the file does not validate.
    pub fn load(&self, meta: SnapshotMeta) -> Result<Snapshot, StorageError> {
        let path = self.dir.join(snapshot_name(meta));
        let bytes = self.fs.read(&path).map_err(io_error(&path))?;
        decode_file(bytes, meta).map_err(|reason| StorageError::CorruptFile { path, reason })
    }

    /// `len` bytes of the data of the snapshot file at `meta`, from `offset` (a chunk
    /// to send; the receiver's application verifies its own checksum once whole).
    ///
    /// # Errors
    /// `Io` on I/O failure or when the file is shorter.
    pub fn read_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        let path = self.dir.join(snapshot_name(meta));
        let at = offset.saturating_add(HEADER_BYTES as u64);
        let bytes = self.fs.read_at(&path, at, len).map_err(io_error(&path))?;
        Ok(Bytes::from(bytes))
    }

    /// Every snapshot file (valid or not) other than the one at `keep`, to delete.
    ///
    /// # Errors
    /// `Io` when the directory cannot be listed.
    pub fn obsolete_files(&self, keep: SnapshotMeta) -> Result<Vec<PathBuf>, StorageError> {
        Ok(self
            .fs
            .list_files(&self.dir)
            .map_err(io_error(&self.dir))?
            .into_iter()
            .filter(|name| parse_snapshot_name(name).is_some_and(|meta| meta != keep))
            .map(|name| self.dir.join(name))
            .collect())
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes every snapshot file (valid or not) other than the one at `keep`.
    ///
    /// # Errors
    /// `Io` on failure.
    pub fn remove_all_but(
        &self,
        keep: SnapshotMeta,
        stats: &mut StorageStats,
    ) -> Result<(), StorageError> {
        let mut removed = false;
        for name in self.fs.list_files(&self.dir).map_err(io_error(&self.dir))? {
            if parse_snapshot_name(&name).is_some_and(|meta| meta != keep) {
                let path = self.dir.join(&name);
                self.fs.remove_file(&path).map_err(io_error(&path))?;
                removed = true;
            }
        }
        if removed {
            self.sync_dir(stats)?;
        }
        Ok(())
    }

    fn sync_dir(&self, stats: &mut StorageStats) -> Result<(), StorageError> {
        if self.fsync {
            self.fs.sync_dir(&self.dir).map_err(io_error(&self.dir))?;
            stats.syncs += 1;
        }
        Ok(())
    }
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

    fn file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut bytes = encode_header(snapshot);
        bytes.extend_from_slice(&snapshot.data);
        bytes
    }

    #[test]
    fn names_round_trip() {
        let meta = SnapshotMeta {
            index: LogIndex(12),
            term: Term(3),
        };
        assert_eq!(parse_snapshot_name(&snapshot_name(meta)), Some(meta));
        assert_eq!(parse_snapshot_name("snap-3-12.snap"), None);
        assert_eq!(
            parse_snapshot_name(&format!("{}.tmp", snapshot_name(meta))),
            None
        );
    }

    #[test]
    fn file_round_trips() {
        let snap = snapshot(12, 3, b"state");
        assert_eq!(decode_file(file_bytes(&snap), snap.meta), Ok(snap));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_rejected() {
        let snap = snapshot(12, 3, b"some state bytes");
        let good = file_bytes(&snap);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            assert!(
                decode_file(bad, snap.meta).is_err(),
                "flip at {at} accepted"
            );
            assert!(
                decode_file(good[..at].to_vec(), snap.meta).is_err(),
                "cut at {at} accepted"
            );
        }
    }

    #[test]
    fn header_must_match_the_name() {
        let snap = snapshot(12, 3, b"x");
        let other = SnapshotMeta {
            index: LogIndex(13),
            term: Term(3),
        };
        assert!(decode_file(file_bytes(&snap), other)
            .unwrap_err()
            .contains("file name"));
    }
}
