//! Deleting the files a snapshot made obsolete, off the executor's thread and at a pace.
//!
//! Off the thread: unlinking hundreds of megabytes and syncing the directories took
//! 100-450 ms per snapshot on a 2M-key data set, during which the driver sent no
//! heartbeats. At a pace: on a file system that discards freed blocks (ext4 `discard`, as
//! on the development VM), freeing a gigabyte at once made the WAL's fdatasyncs wait behind
//! the discards for 50-150 ms for seconds afterwards. So a large old snapshot file is cut
//! down in `SHRINK_STEP_BYTES` steps before its unlink, and every file's size is paced at
//! `DELETE_BYTES_PER_SEC` (RocksDB's delete scheduler does the same for its SST files).
//! WAL segments are only unlinked, never truncated: a cut sealed segment that a crash left
//! behind would read as corrupt.
//!
//! Until the files are gone they are harmless: recovery skips covered segments and takes
//! the newest valid snapshot file (a cut older one fails validation and is ignored).

use super::fs::Fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Bytes freed per second, at most.
const DELETE_BYTES_PER_SEC: f64 = 256.0 * 1024.0 * 1024.0;
/// A large file is cut down by this much at a time before it is unlinked.
const SHRINK_STEP_BYTES: u64 = 32 << 20;

/// Files snapshots made obsolete (WAL segments they cover, older snapshot files), to
/// delete off the executor's thread (`Storage::take_obsolete_files`).
pub struct FileCleanup {
    fs: Arc<dyn Fs>,
    /// Each directory with the files to delete in it, and whether they may be cut
    /// down before their unlink.
    dirs: Vec<(PathBuf, Vec<PathBuf>, bool)>,
    fsync: bool,
}

impl FileCleanup {
    pub(crate) fn new(fs: Arc<dyn Fs>, fsync: bool) -> Self {
        FileCleanup {
            fs,
            dirs: Vec::new(),
            fsync,
        }
    }

    /// Adds `files`, all in `dir`; `shrink_first`: they may be truncated in steps before
    /// their unlink (not for WAL segments).
    pub(crate) fn add(&mut self, dir: &Path, files: Vec<PathBuf>, shrink_first: bool) {
        if files.is_empty() {
            return;
        }
        match self
            .dirs
            .iter_mut()
            .find(|(d, _, shrink)| d == dir && *shrink == shrink_first)
        {
            Some((_, known, _)) => known.extend(files),
            None => self.dirs.push((dir.to_path_buf(), files, shrink_first)),
        }
    }

    /// The file system the files are on.
    pub(crate) fn fs(&self) -> Arc<dyn Fs> {
        self.fs.clone()
    }

    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// Deletes the files, paced (one already gone is fine), and syncs their directories.
    /// A failure is logged, not returned: what is left is deleted by a later cleanup or
    /// ignored by recovery.
    pub fn run(self) {
        let started = std::time::Instant::now();
        let mut deleted = 0;
        for (dir, files, shrink_first) in &self.dirs {
            for file in files {
                match self.delete(file, *shrink_first) {
                    Ok(true) => deleted += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(file = %file.display(), error = %e, "cannot delete an obsolete file")
                    }
                }
            }
            if self.fsync {
                if let Err(e) = self.fs.sync_dir(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot sync a directory after deletions");
                }
            }
        }
        tracing::info!(
            deleted,
            took_ms = started.elapsed().as_millis() as u64,
            "deleted files a snapshot made obsolete"
        );
    }

    /// Deletes `file`; whether it was there.
    fn delete(&self, file: &Path, shrink_first: bool) -> std::io::Result<bool> {
        let mut len = match self.fs.file_len(file) {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if shrink_first && len > SHRINK_STEP_BYTES {
            let mut handle = self.fs.open_append(file)?;
            while len > SHRINK_STEP_BYTES {
                len -= SHRINK_STEP_BYTES;
                handle.set_len(len)?;
                if self.fsync {
                    handle.sync_data()?;
                }
                pace(SHRINK_STEP_BYTES);
            }
        }
        match self.fs.remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        pace(len);
        Ok(true)
    }
}

/// Waits as long as freeing `bytes` may take at `DELETE_BYTES_PER_SEC`.
fn pace(bytes: u64) {
    std::thread::sleep(Duration::from_secs_f64(bytes as f64 / DELETE_BYTES_PER_SEC));
}

impl std::fmt::Debug for FileCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCleanup")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}
