//! Deleting the files a snapshot made obsolete, off the executor's thread: unlinking
//! hundreds of megabytes and syncing the directories took 100-450 ms per snapshot on a
//! 2M-key data set, during which the driver sent no heartbeats.
//!
//! Until the files are gone they are harmless: recovery skips covered segments and takes
//! the newest valid snapshot file.
//!
//! Tried and not kept: pacing the deletions (an old snapshot cut down 32 MiB at a time,
//! at most 256 MiB/s freed), against the WAL fdatasync stalls seen after large deletions
//! on a file system that discards freed blocks. It changed neither the stalls nor the
//! put tail on 2M keys (BENCHMARKS.md).

use super::fs::Fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files snapshots made obsolete (WAL segments they cover, older snapshot files), to
/// delete off the executor's thread (`Storage::take_obsolete_files`).
pub struct FileCleanup {
    fs: Arc<dyn Fs>,
    /// Each directory with the files to delete in it.
    dirs: Vec<(PathBuf, Vec<PathBuf>)>,
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

    /// Adds `files`, all in `dir`.
    pub(crate) fn add(&mut self, dir: &Path, files: Vec<PathBuf>) {
        if files.is_empty() {
            return;
        }
        match self.dirs.iter_mut().find(|(d, _)| d == dir) {
            Some((_, known)) => known.extend(files),
            None => self.dirs.push((dir.to_path_buf(), files)),
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

    /// Deletes the files (one already gone is fine) and syncs their directories.
    /// A failure is logged, not returned: what is left is deleted by a later cleanup or
    /// ignored by recovery.
    pub fn run(self) {
        let started = std::time::Instant::now();
        let mut deleted = 0;
        for (dir, files) in &self.dirs {
            for file in files {
                match self.fs.remove_file(file) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
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
}

impl std::fmt::Debug for FileCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCleanup")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim_fs::SimFs;

    #[test]
    fn deletes_every_file_and_tolerates_missing_ones() {
        let fs = SimFs::new();
        let (snap, wal) = (Path::new("/d/snap"), Path::new("/d/wal"));
        fs.create_dir_all(snap).unwrap();
        fs.create_dir_all(wal).unwrap();
        let big = snap.join("snap-old.snap");
        let mut file = fs.create_new(&big).unwrap();
        file.write_all(&[7u8; 4096]).unwrap();
        file.sync_data().unwrap();
        drop(file);
        let segment = wal.join("wal-1.log");
        fs.create_new(&segment).unwrap().write_all(b"x").unwrap();
        let mut cleanup = FileCleanup::new(Arc::new(fs.clone()), true);
        cleanup.add(snap, vec![big.clone(), snap.join("gone.snap")]);
        cleanup.add(wal, vec![segment.clone()]);
        let syncs = fs.syncs();
        cleanup.run();
        assert!(fs.list_files(snap).unwrap().is_empty());
        assert!(fs.list_files(wal).unwrap().is_empty());
        assert_eq!(fs.syncs(), syncs + 2, "each directory synced once");
    }
}
