//! Snapshot files: `<dir>/snap-<term:020>-<index:020>.snap`, written crash-safely.
//!
//! # File layout
//! See `snapshot/format.rs`: a header naming the (index, term), the data, and a trailer
//! with the data's length and checksum (version 2; version-1 files, with both in the
//! header, are still read).
//!
//! # Write protocol
//! Write `<name>.tmp` (the data streamed in from the caller, fsynced every 4 MiB as it
//! goes, `snapshot/writer.rs`), fsync it, rename it to `<name>`, fsync the directory. Only then
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
use crate::types::{ConfState, LogIndex, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod format;
mod reader;
mod writer;

use super::snapshot_reader::SnapshotReader;
use reader::VerifiedData;
use writer::DataWriter;

/// A snapshot file that failed validation.
#[derive(Debug)]
pub(crate) struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Why it was rejected.
    pub reason: String,
}

/// A snapshot file being written: its data goes in through [`SnapshotFile::data`] (in as
/// many pieces as it comes), then [`SnapshotStore::finish`] makes it durable.
pub(crate) struct SnapshotFile {
    meta: SnapshotMeta,
    tmp: PathBuf,
    data: DataWriter,
    header_stats: StorageStats,
}

impl SnapshotFile {
    /// Where the data goes.
    pub fn data(&mut self) -> &mut dyn std::io::Write {
        &mut self.data
    }

    /// Bytes of data written so far.
    pub fn data_bytes(&self) -> u64 {
        self.data.data_bytes()
    }

    /// The snapshot it is the file of.
    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// The temp file, named in errors.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("meta", &self.meta)
            .field("data_bytes", &self.data.data_bytes())
            .finish_non_exhaustive()
    }
}

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
            match format::decode(bytes, meta) {
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
        let write = |out: &mut dyn std::io::Write| out.write_all(&snapshot.data);
        self.save_with(snapshot.meta, snapshot.conf.as_ref(), write, stats)
            .map(|_| ())
    }

    /// Durably writes the snapshot at `meta` (recording `conf`) whose data `write`
    /// produces into the file as it goes (no copy of it in memory). Returns the data's
    /// length.
    ///
    /// # Errors
    /// `Io` (naming the temp file) when `write` or the file fails; the snapshot is then
    /// not durable and the temp file is left for the next open to remove.
    pub fn save_with(
        &self,
        meta: SnapshotMeta,
        conf: Option<&ConfState>,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
        stats: &mut StorageStats,
    ) -> Result<u64, StorageError> {
        let mut file = self.begin(meta, "tmp")?;
        write(file.data()).map_err(io_error(&file.tmp))?;
        self.finish(file, conf, stats)
    }

    /// Starts the file of the snapshot at `meta`: `<name>.<suffix>` (a temp file, removed
    /// at open if a crash leaves it), its header written.
    ///
    /// # Errors
    /// `Io` on failure.
    pub fn begin(&self, meta: SnapshotMeta, suffix: &str) -> Result<SnapshotFile, StorageError> {
        let tmp = self.dir.join(format!("{}.{suffix}", snapshot_name(meta)));
        debug_assert!(tmp.to_string_lossy().ends_with(".tmp"));
        if self.fs.exists(&tmp).map_err(io_error(&tmp))? {
            self.fs.remove_file(&tmp).map_err(io_error(&tmp))?;
        }
        let mut file = self.fs.create_new(&tmp).map_err(io_error(&tmp))?;
        let header = format::header(meta);
        file.write_all(&header).map_err(io_error(&tmp))?;
        let header_stats = StorageStats {
            bytes_written: header.len() as u64,
            ..StorageStats::default()
        };
        Ok(SnapshotFile {
            meta,
            tmp,
            data: DataWriter::new(file, self.fsync),
            header_stats,
        })
    }

    /// Makes a file [`SnapshotStore::begin`] started durable: the trailer (recording
    /// `conf`), fsync, rename to its name, directory fsync. Returns the data's length.
    ///
    /// # Errors
    /// `Io` on failure; the snapshot is then not (known to be) durable.
    pub fn finish(
        &self,
        file: SnapshotFile,
        conf: Option<&ConfState>,
        stats: &mut StorageStats,
    ) -> Result<u64, StorageError> {
        let SnapshotFile {
            meta,
            tmp,
            data,
            header_stats,
        } = file;
        let written = data.finish().map_err(io_error(&tmp))?;
        let mut file = written.file;
        *stats = *stats + header_stats + written.stats;
        let trailer = format::trailer(written.data_bytes, written.data_crc, conf);
        file.write_all(&trailer).map_err(io_error(&tmp))?;
        stats.bytes_written += trailer.len() as u64;
        if self.fsync {
            file.sync_data().map_err(io_error(&tmp))?;
            stats.syncs += 1;
        }
        drop(file);
        let path = self.dir.join(snapshot_name(meta));
        self.fs.rename(&tmp, &path).map_err(io_error(&path))?;
        self.sync_dir(stats)?;
        tracing::info!(index = %meta.index, term = %meta.term, bytes = written.data_bytes, "snapshot saved");
        Ok(written.data_bytes)
    }

    /// Deletes an unfinished file (a transfer given up); best effort, a leftover is
    /// removed at the next open.
    pub fn abandon(&self, file: SnapshotFile) {
        let tmp = file.tmp.clone();
        drop(file);
        if let Err(e) = self.fs.remove_file(&tmp) {
            tracing::warn!(file = %tmp.display(), error = %e, "cannot remove an unfinished snapshot");
        }
    }

    /// The data of the snapshot file at `meta`, read as a stream and checked against the
    /// file's checksum as it goes.
    ///
    /// # Errors
    /// `Io` on I/O failure, `CorruptFile` when the header or trailer does not validate.
    pub fn open_reader(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        let (path, layout) = self.data_layout(meta)?;
        let mut file = self.fs.open_read(&path).map_err(io_error(&path))?;
        let skipped = std::io::copy(&mut (&mut file).take(layout.start), &mut std::io::sink())
            .map_err(io_error(&path))?;
        if skipped != layout.start {
            return Err(StorageError::CorruptFile {
                path,
                reason: "the file is shorter than its header".into(),
            });
        }
        Ok(SnapshotReader::new(
            layout.len,
            VerifiedData::new(file, &layout),
        ))
    }

    /// Reads and validates the snapshot file at `meta`.
    ///
    /// # Errors
    /// `Io` on I/O failure, `CorruptFile` when the file does not validate.
    pub fn load(&self, meta: SnapshotMeta) -> Result<Snapshot, StorageError> {
        let path = self.dir.join(snapshot_name(meta));
        let bytes = self.fs.read(&path).map_err(io_error(&path))?;
        format::decode(bytes, meta).map_err(|reason| StorageError::CorruptFile { path, reason })
    }

    /// `len` bytes of the data of the snapshot file at `meta`, from `offset` (a chunk
    /// to send; the receiver checks the data's checksum once it is whole).
    ///
    /// # Errors
    /// `Io` on I/O failure, `CorruptFile` when the header or trailer does not validate,
    /// `Contract` for a range beyond the data.
    pub fn read_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        let (path, layout) = self.data_layout(meta)?;
        if offset.saturating_add(len as u64) > layout.len {
            return Err(StorageError::Contract(format!(
                "snapshot chunk {offset}+{len} is beyond the snapshot's {} bytes",
                layout.len
            )));
        }
        let bytes = self
            .fs
            .read_at(&path, layout.start.saturating_add(offset), len)
            .map_err(io_error(&path))?;
        Ok(Bytes::from(bytes))
    }

    /// The file of the snapshot at `meta` and where its data lies (its header and
    /// trailer read and checked; the data is not).
    fn data_layout(
        &self,
        meta: SnapshotMeta,
    ) -> Result<(PathBuf, format::DataLayout), StorageError> {
        let path = self.dir.join(snapshot_name(meta));
        let file_len = self.fs.file_len(&path).map_err(io_error(&path))?;
        let read_end = |n: u64| {
            let n = n.min(file_len);
            self.fs
                .read_at(
                    &path,
                    file_len - n,
                    usize::try_from(n).unwrap_or(usize::MAX),
                )
                .map_err(io_error(&path))
        };
        let head_len = usize::try_from(file_len.min(format::HEAD_BYTES as u64)).unwrap_or(0);
        let head = self
            .fs
            .read_at(&path, 0, head_len)
            .map_err(io_error(&path))?;
        let corrupt = |reason| StorageError::CorruptFile {
            path: path.clone(),
            reason,
        };
        let end = read_end(format::END_PROBE_BYTES as u64)?;
        let tail_len = format::tail_len(&head, &end, file_len).map_err(corrupt)?;
        if tail_len > file_len {
            return Err(corrupt(format!(
                "{file_len} bytes is shorter than its trailer"
            )));
        }
        let tail = read_end(tail_len)?;
        let layout = format::layout(&head, &tail, file_len, meta).map_err(corrupt)?;
        Ok((path, layout))
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
        let obsolete = self.obsolete_files(keep)?;
        for path in &obsolete {
            self.fs.remove_file(path).map_err(io_error(path))?;
        }
        if !obsolete.is_empty() {
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
}
