//! Spare segments: zero-filled, fsynced segment files prepared on a background thread
//! (etcd's "file pipeline"), so that the WAL's fdatasync after an append is a pure data
//! overwrite.
//!
//! Why: appending to a file, or writing into space reserved with `fallocate` (unwritten
//! extents), makes every fdatasync also persist metadata (the size, or the extent's
//! conversion to "written"); overwriting blocks that already hold zeros does not. On the
//! development machine that is 180 us against 120 us per fdatasync of a few KiB
//! (`../shared/peers/fsync_bench`), and 38k against 51k puts/s at 64 clients.
//!
//! Filling 64 MiB with zeros takes a second (the fill is paced, 1 MiB synced at a time,
//! so that it never reaches the disk as one burst that WAL fdatasyncs queue behind: see
//! `RealFile::zero_fill`), so it happens off the write path: the WAL asks for a spare once its active segment is half full and takes it
//! at the next rotation if it is ready (else it falls back to a short `fallocate`d
//! segment, see `wal.rs`). A spare lives under a `spare-*.tmp` name until the WAL renames
//! it to the next segment's name; leftovers of a crash are deleted at open. The thread
//! never touches a file the WAL uses, and exits once its spare is handed over or refused.

use super::super::fs::{Fs, FsFile};
use crossbeam_channel::{bounded, Receiver, TryRecvError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A zero-filled, durable file of the segment size, not yet part of the WAL.
#[derive(Debug)]
pub(crate) struct Spare {
    pub(crate) path: PathBuf,
    pub(crate) file: Box<dyn FsFile>,
}

/// Prepares at most one spare at a time.
#[derive(Debug)]
pub(crate) struct SparePipeline {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    bytes: u64,
    /// The spare being prepared (or prepared and not yet taken).
    pending: Option<Receiver<Option<Spare>>>,
}

/// Distinguishes spares of different WALs and preparations in one process.
static NEXT_SPARE: AtomicU64 = AtomicU64::new(1);

/// Whether `name` is a spare file (in a WAL directory).
pub(crate) fn is_spare_name(name: &str) -> bool {
    name.starts_with("spare-") && name.ends_with(".tmp")
}

impl SparePipeline {
    /// A pipeline preparing spares of `bytes` bytes in `dir`.
    pub(crate) fn new(fs: Arc<dyn Fs>, dir: &Path, bytes: u64) -> SparePipeline {
        SparePipeline {
            fs,
            dir: dir.to_path_buf(),
            bytes,
            pending: None,
        }
    }

    /// Starts preparing a spare unless one is already under way or waiting.
    pub(crate) fn prepare(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let (tx, rx) = bounded(1);
        let fs = self.fs.clone();
        let n = NEXT_SPARE.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("spare-{}-{n}.tmp", std::process::id()));
        let bytes = self.bytes;
        let spawned = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || {
                let spare = fill(fs.as_ref(), &path, bytes);
                if let Err(crossbeam_channel::SendError(Some(spare))) = tx.send(spare) {
                    // The WAL is gone: nobody will rename this file.
                    drop(spare.file);
                    let _ = fs.remove_file(&spare.path);
                }
            });
        match spawned {
            Ok(_) => self.pending = Some(rx),
            Err(e) => tracing::debug!(error = %e, "could not start the spare-segment thread"),
        }
    }

    /// The prepared spare, if it is ready. Never waits.
    pub(crate) fn take_ready(&mut self) -> Option<Spare> {
        let rx = self.pending.as_ref()?;
        match rx.try_recv() {
            Ok(spare) => {
                self.pending = None;
                spare
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                None
            }
        }
    }
}

/// Creates `path` filled with `bytes` zeros, durably; `None` (logged, file removed) on
/// failure: the WAL then simply does without.
fn fill(fs: &dyn Fs, path: &Path, bytes: u64) -> Option<Spare> {
    let result = fs.create_new(path).and_then(|mut file| {
        file.zero_fill(bytes)?;
        Ok(file)
    });
    match result {
        Ok(file) => Some(Spare {
            path: path.to_path_buf(),
            file,
        }),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "could not prepare a spare WAL segment");
            let _ = fs.remove_file(path);
            None
        }
    }
}
