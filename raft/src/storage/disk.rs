//! `DiskStorage`: the durable [`Storage`] of one node: an identity file, a write-ahead log
//! and snapshot files in one data directory.
//!
//! ```text
//! <dir>/IDENTITY                          cluster id + node id (checked at every open)
//! <dir>/wal/wal-<seq:020>.log             WAL segments (wal.rs)
//! <dir>/snap/snap-<term:020>-<index:020>.snap   the latest snapshot (snapshot.rs)
//! ```
//!
//! # Invariants
//! - The in-memory [`LogState`] equals what replaying the files would give, plus what
//!   is buffered: every write goes to the WAL first, then to the in-memory state.
//! - After any I/O failure the storage is *poisoned*: every later call fails with
//!   `StorageError::Poisoned`. Retrying an fsync after a failure can falsely report
//!   success (the kernel may have dropped the dirty pages), so the node must restart
//!   and recover from what is really on disk.
//! - Nothing is written when the storage is dropped: writes not yet synced are lost, as
//!   in a crash (only `sync`'s result can tell the caller whether they are durable).
//! - `save_snapshot` order: WAL synced, snapshot durable (tmp, fsync, rename, dir
//!   fsync), marker appended and synced; then the covered segments and older snapshot
//!   files are handed out for deletion off the caller's thread (`take_obsolete_files`).
//!   A crash at any point recovers to the state before or after the snapshot; files not
//!   yet deleted are ignored by recovery (and older snapshots deleted at open).

use super::fs::{Fs, RealFs};
use super::identity::{self, Identity};
use super::log_state::LogState;
use super::record::{
    encoded_entry_bytes, SnapshotMarker, DEFAULT_MAX_RECORD_BYTES, RECORD_HEADER_BYTES,
};
use super::snapshot::{SnapshotFile, SnapshotStore};
use super::wal::{Wal, WalOptions};
use super::{
    FileCleanup, SnapshotFileJob, SnapshotReader, SnapshotSource, Storage, StorageStats,
    WrittenFile,
};
use crate::error::StorageError;
use crate::types::{
    Entry, HardState, InitialState, LogIndex, NodeId, ReceivedSnapshot, Snapshot, SnapshotChunk,
    SnapshotMeta,
};
use bytes::Bytes;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which cluster and node a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDirIdentity {
    /// The cluster's id (non-empty, one line).
    pub cluster_id: String,
    /// This node's id.
    pub node_id: NodeId,
}

/// How [`DiskStorage`] stores data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskOptions {
    /// The cluster and node this data directory must belong to.
    pub identity: DataDirIdentity,
    /// Rotate to a new WAL segment once the active one holds this many bytes
    /// (default 64 MiB).
    pub segment_bytes: u64,
    /// Issue fsyncs. Default `true`.
    ///
    /// **`false` IS UNSAFE: acknowledged writes can be lost on a power loss or OS
    /// crash, which breaks Raft's safety (a node may forget a vote or an acknowledged
    /// entry), and the WAL may even be left unrecoverable (a sealed segment with a torn
    /// tail is reported as corruption). Use it only in tests and benchmarks that do
    /// not care about durability.**
    pub fsync: bool,
    /// Largest WAL record body, i.e. largest entry data + 18 bytes (default 64 MiB).
    pub max_record_bytes: u32,
    /// Buffered WAL bytes that trigger a write before `sync` (default 1 MiB).
    pub write_buffer_bytes: usize,
    /// May a directory holding no data of this node be initialised as a new node (default
    /// `true`)? A server sets it only on the first start of a new cluster: a node whose
    /// data is gone (deleted, or looked for in the wrong place) must not come back as an
    /// empty voter, so without this `open` refuses with `NotBootstrapped` and creates
    /// nothing. Ignored when the directory already belongs to this node.
    pub bootstrap: bool,
}

impl DiskOptions {
    /// Defaults for a node of a cluster: 64 MiB segments, fsync on.
    pub fn new(cluster_id: impl Into<String>, node_id: NodeId) -> DiskOptions {
        DiskOptions {
            identity: DataDirIdentity {
                cluster_id: cluster_id.into(),
                node_id,
            },
            segment_bytes: 64 * 1024 * 1024,
            fsync: true,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            write_buffer_bytes: 1024 * 1024,
            bootstrap: true,
        }
    }

    fn validate(&self) -> Result<(), StorageError> {
        if self.segment_bytes == 0 || self.write_buffer_bytes == 0 || self.max_record_bytes < 64 {
            return Err(StorageError::Contract(format!(
                "invalid disk options: segment_bytes {}, write_buffer_bytes {}, \
                 max_record_bytes {} (need > 0, > 0, >= 64)",
                self.segment_bytes, self.write_buffer_bytes, self.max_record_bytes
            )));
        }
        Ok(())
    }
}

/// Durable Raft storage in a data directory. See the module docs for the layout.
pub struct DiskStorage {
    dir: PathBuf,
    options: DiskOptions,
    state: LogState,
    wal: Wal,
    snapshots: SnapshotStore,
    /// Counters of snapshot-file writes (the WAL keeps its own).
    snapshot_stats: StorageStats,
    /// Set after an I/O failure: the storage refuses all further work.
    failure: Option<String>,
    /// Entries dropped from the in-memory log by snapshots, until the caller takes them
    /// to free elsewhere (`Storage::take_freed_entries`).
    freed: Vec<Vec<Entry>>,
    /// Files snapshots made obsolete, until the caller takes them to delete elsewhere
    /// (`Storage::take_obsolete_files`).
    obsolete: FileCleanup,
    /// The snapshot read (and validated) at open, handed to the first `initial_state`
    /// call so that start-up reads the file once; later calls read it again.
    recovered_snapshot: parking_lot::Mutex<Option<Snapshot>>,
    /// The snapshot being received from the leader (`write_incoming_snapshot`).
    incoming: Option<SnapshotFile>,
    /// The exclusive lock on the directory's `LOCK` file, held while this is open.
    _dir_lock: Box<dyn fmt::Debug + Send>,
}

impl fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStorage")
            .field("dir", &self.dir)
            .field("snapshot", &self.state.snapshot_meta())
            .field("last_index", &self.state.last_index())
            .field("hard_state", &self.state.hard_state)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the data directory `dir` on the real file system and
    /// recovers its state.
    ///
    /// # Errors
    /// `InUse` if another process (or handle) has the directory open; `WrongIdentity` if
    /// the directory belongs to another cluster or node; `Corrupt` /
    /// `CorruptFile` for damage recovery must not paper over; `Io` (naming the path)
    /// when the directory cannot be created, read or written; `Contract` for invalid
    /// options.
    pub fn open(dir: &Path, options: DiskOptions) -> Result<DiskStorage, StorageError> {
        DiskStorage::open_with_fs(Arc::new(RealFs), dir, options)
    }

    /// [`DiskStorage::open`] on any [`Fs`], e.g. the crashable `SimFs` in tests.
    ///
    /// # Errors
    /// As [`DiskStorage::open`].
    pub fn open_with_fs(
        fs: Arc<dyn Fs>,
        dir: &Path,
        options: DiskOptions,
    ) -> Result<DiskStorage, StorageError> {
        options.validate()?;
        let (wal_dir, snap_dir, dir_lock, identified) = prepare_dirs(fs.as_ref(), dir, &options)?;
        let (snapshots, snapshot, skipped) =
            SnapshotStore::open(fs.clone(), &snap_dir, options.fsync)?;
        let wal_options = WalOptions {
            segment_bytes: options.segment_bytes,
            fsync: options.fsync,
            max_record_bytes: options.max_record_bytes,
            write_buffer_bytes: options.write_buffer_bytes,
        };
        let meta = snapshot.as_ref().map(|s| s.meta);
        let (wal, replayed) = match Wal::open(fs.clone(), &wal_dir, wal_options, meta) {
            Ok(opened) => opened,
            Err(err) => match skipped.first() {
                Some(bad) => {
                    return Err(StorageError::CorruptFile {
                        path: bad.path.clone(),
                        reason: format!("{}; no older snapshot can replace it ({err})", bad.reason),
                    })
                }
                None => return Err(err),
            },
        };
        for bad in &skipped {
            let aside = bad.path.with_extension("snap.corrupt");
            tracing::warn!(file = %bad.path.display(), "moving an invalid snapshot aside");
            fs.rename(&bad.path, &aside).map_err(io_error(&aside))?;
            fs.sync_dir(&snap_dir).map_err(io_error(&snap_dir))?;
        }
        if !identified {
            // Written only now that the WAL holds a durable segment: an identity file
            // proves the directory once held this node's Raft state (`prepare_dirs`).
            let pristine = replayed.hard_state == HardState::default()
                && replayed.entries.is_empty()
                && snapshot.is_none();
            if !pristine {
                return Err(StorageError::CorruptFile {
                    path: dir.join(identity::IDENTITY_FILE),
                    reason: "missing, but the directory holds Raft data".into(),
                });
            }
            identity::write(fs.as_ref(), dir, &identity_of(&options))?;
        }
        let mut snapshot_stats = StorageStats::default();
        if let Some(meta) = meta {
            snapshots.remove_all_but(meta, &mut snapshot_stats)?;
        }
        let state = LogState {
            hard_state: replayed.hard_state,
            // The bytes stay in the file: `initial_state` and `read_snapshot_chunk` read
            // them from there, so no copy of a data set lives on in memory.
            snapshot: snapshot.as_ref().map(position_only),
            entries: replayed.entries,
        };
        let recovered_snapshot = parking_lot::Mutex::new(snapshot);
        let fsync = options.fsync;
        let storage = DiskStorage {
            dir: dir.to_path_buf(),
            options,
            state,
            wal,
            snapshots,
            snapshot_stats,
            failure: None,
            freed: Vec::new(),
            obsolete: FileCleanup::new(fs.clone(), fsync),
            recovered_snapshot,
            incoming: None,
            _dir_lock: dir_lock,
        };
        tracing::info!(storage = ?storage, "storage opened");
        Ok(storage)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot the log starts after (zeros when there is none).
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.state.snapshot_meta()
    }

    /// The last index held (the snapshot index when there are no entries).
    pub fn last_index(&self) -> LogIndex {
        self.state.last_index()
    }

    /// Number of WAL segment files on disk.
    pub fn wal_segment_count(&self) -> usize {
        self.wal.segment_count()
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.failure {
            Some(reason) => Err(StorageError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write step; any error other than a contract violation poisons the storage.
    fn guarded<T>(
        &mut self,
        step: impl FnOnce(&mut DiskStorage) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.check_usable()?;
        let result = step(self);
        if let Err(err) = &result {
            if !matches!(err, StorageError::Contract(_)) {
                tracing::error!(dir = %self.dir.display(), error = %err, "storage failed; refusing further writes");
                self.failure = Some(err.to_string());
            }
        }
        result
    }

    fn check_entry_sizes(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let max = self.options.max_record_bytes as usize + RECORD_HEADER_BYTES;
        match entries.iter().find(|e| encoded_entry_bytes(e) > max) {
            Some(e) => Err(StorageError::Contract(format!(
                "entry {} of {} bytes exceeds the record limit of {} bytes",
                e.index,
                e.data.len(),
                self.options.max_record_bytes
            ))),
            None => Ok(()),
        }
    }

    /// The body of `save_snapshot`, after the contract check.
    fn persist_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.wal.sync()?;
        self.snapshots.save(snapshot, &mut self.snapshot_stats)?;
        self.record_snapshot(snapshot)
    }

    /// What follows a durable snapshot file: the state takes it, a marker goes to the WAL
    /// (synced), covered segments and older snapshot files are deleted.
    fn record_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let (log_kept, freed) = self.state.apply_snapshot(position_only(snapshot));
        *self.recovered_snapshot.get_mut() = None;
        self.freed.push(freed);
        self.wal.append_snapshot_marker(SnapshotMarker {
            meta: snapshot.meta,
            log_kept,
        })?;
        self.wal.sync()?;
        // Deleted later, off this thread (`take_obsolete_files`).
        let segments = self.wal.detach_covered(snapshot.meta.index);
        self.obsolete.add(self.wal.dir(), segments);
        let old_snapshots = self.snapshots.obsolete_files(snapshot.meta)?;
        self.obsolete.add(self.snapshots.dir(), old_snapshots);
        tracing::info!(index = %snapshot.meta.index,
            took_ms = started.elapsed().as_millis() as u64, "snapshot recorded in the WAL");
        Ok(())
    }
}

/// `snapshot` without its bytes (which the file holds): its position and configuration.
fn position_only(snapshot: &Snapshot) -> Snapshot {
    Snapshot {
        meta: snapshot.meta,
        data: Bytes::new(),
        conf: snapshot.conf.clone(),
    }
}

/// What `prepare_dirs` returns: the WAL and snapshot directories, the directory lock, and
/// whether the identity file was there (if not, the caller writes it once the WAL holds a
/// durable segment).
type PreparedDirs = (PathBuf, PathBuf, Box<dyn std::fmt::Debug + Send>, bool);

fn identity_of(options: &DiskOptions) -> Identity {
    Identity {
        cluster_id: options.identity.cluster_id.clone(),
        node_id: options.identity.node_id.get(),
    }
}

/// Creates the directory layout, locks it for this process (`LOCK`) and checks the
/// identity file. Refuses, creating nothing:
/// - a directory holding no data of this node unless `options.bootstrap`;
/// - an identified directory whose `wal/` and `snap/` hold no file (`DataMissing`): the
///   identity file is written only after the first WAL segment is durable, so its
///   presence proves Raft state existed and was lost.
fn prepare_dirs(
    fs: &dyn Fs,
    dir: &Path,
    options: &DiskOptions,
) -> Result<PreparedDirs, StorageError> {
    let existed = fs.exists(dir).map_err(io_error(dir))?;
    if !existed && !options.bootstrap {
        return Err(StorageError::NotBootstrapped {
            path: dir.to_path_buf(),
        });
    }
    fs.create_dir_all(dir).map_err(io_error(dir))?;
    if !existed {
        // Make the new directory's own entry durable in its parent.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs.sync_dir(parent).map_err(io_error(parent))?;
    }
    let lock_path = dir.join("LOCK");
    let dir_lock = fs.lock_exclusive(&lock_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            StorageError::InUse {
                path: dir.to_path_buf(),
            }
        } else {
            io_error(&lock_path)(e)
        }
    })?;
    let wal_dir = dir.join("wal");
    let snap_dir = dir.join("snap");
    let wal_existed = fs.exists(&wal_dir).map_err(io_error(&wal_dir))?;
    let snap_existed = fs.exists(&snap_dir).map_err(io_error(&snap_dir))?;
    let has_data =
        holds_files(fs, &wal_dir, wal_existed)? || holds_files(fs, &snap_dir, snap_existed)?;
    let identified = identity::check(fs, dir, &identity_of(options))?;
    if identified && !has_data {
        return Err(StorageError::DataMissing {
            path: dir.to_path_buf(),
        });
    }
    if !identified && !has_data && !options.bootstrap {
        return Err(StorageError::NotBootstrapped {
            path: dir.to_path_buf(),
        });
    }
    // A crash during the first open may leave either missing (never once identified).
    let mut created = false;
    for sub in [&wal_dir, &snap_dir] {
        if !fs.exists(sub).map_err(io_error(sub))? {
            fs.create_dir_all(sub).map_err(io_error(sub))?;
            created = true;
        }
    }
    if created {
        fs.sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok((wal_dir, snap_dir, dir_lock, identified))
}

/// Whether `sub` (if it exists) holds any file.
fn holds_files(fs: &dyn Fs, sub: &Path, exists: bool) -> Result<bool, StorageError> {
    if !exists {
        return Ok(false);
    }
    Ok(!fs.list_files(sub).map_err(io_error(sub))?.is_empty())
}

impl Storage for DiskStorage {
    /// Right after `open`, exactly what recovery found on disk. Later, what has been
    /// written through this handle (synced or not): call it at start-up.
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.check_usable()?;
        let mut initial = self.state.to_initial_state();
        if let Some(snapshot) = initial.snapshot.as_mut() {
            *snapshot = match self.recovered_snapshot.lock().take() {
                Some(recovered) if recovered.meta == snapshot.meta => recovered,
                _ => self.snapshots.load(snapshot.meta)?,
            };
        }
        Ok(initial)
    }

    fn read_snapshot_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        self.check_usable()?;
        if meta != self.state.snapshot_meta() || meta.index == LogIndex::ZERO {
            return Err(super::not_latest(meta));
        }
        self.snapshots.read_chunk(meta, offset, len)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.guarded(|s| {
            s.state.check_append(entries)?;
            s.check_entry_sizes(entries)?;
            s.wal.append_entries(entries)?;
            s.state.append(entries);
            Ok(())
        })
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.guarded(|s| {
            s.state.check_hard_state(&hard_state)?;
            s.wal.append_hard_state(hard_state)?;
            s.state.hard_state = hard_state;
            Ok(())
        })
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.guarded(|s| s.wal.sync())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.guarded(|s| {
            s.state.check_snapshot(&snapshot.meta)?;
            s.persist_snapshot(snapshot)
        })
    }

    fn stats(&self) -> StorageStats {
        self.wal.stats() + self.snapshot_stats
    }

    fn take_freed_entries(&mut self) -> Vec<Vec<Entry>> {
        std::mem::take(&mut self.freed)
    }

    fn take_obsolete_files(&mut self) -> Option<FileCleanup> {
        if self.obsolete.is_empty() {
            return None;
        }
        let empty = FileCleanup::new(self.obsolete.fs(), self.options.fsync);
        Some(std::mem::replace(&mut self.obsolete, empty))
    }

    /// The snapshot file, written by a clone of the snapshot store (another thread may
    /// run it while this storage goes on appending).
    fn snapshot_file_job(&self, snapshot: &Snapshot) -> Option<SnapshotFileJob> {
        self.check_usable().ok()?;
        let store = self.snapshots.clone();
        let snapshot = snapshot.clone();
        Some(SnapshotFileJob::new(move || {
            let mut stats = StorageStats::default();
            store.save(&snapshot, &mut stats)?;
            Ok(WrittenFile {
                stats,
                data_bytes: snapshot.data.len() as u64,
            })
        }))
    }

    /// As `snapshot_file_job`, the data streamed into the file as `source` encodes it.
    fn streamed_snapshot_file_job(
        &self,
        position: &Snapshot,
        source: SnapshotSource,
    ) -> Result<SnapshotFileJob, SnapshotSource> {
        if self.check_usable().is_err() {
            return Err(source);
        }
        let store = self.snapshots.clone();
        let (meta, conf) = (position.meta, position.conf.clone());
        Ok(SnapshotFileJob::new(move || {
            let mut stats = StorageStats::default();
            let write = |out: &mut dyn std::io::Write| source.write_to(out);
            let data_bytes = store.save_with(meta, conf.as_ref(), write, &mut stats)?;
            Ok(WrittenFile { stats, data_bytes })
        }))
    }

    /// Appended to `<snapshot name>.incoming.tmp`, fdatasynced every 4 MiB as it grows
    /// (so the install's final sync is short).
    fn write_incoming_snapshot(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        self.check_usable()?;
        if chunk.offset == 0 {
            if let Some(old) = self.incoming.take() {
                self.snapshots.abandon(old);
            }
            let file = self.guarded(|s| s.snapshots.begin(chunk.meta, "incoming.tmp"))?;
            self.incoming = Some(file);
        }
        let continues = self
            .incoming
            .as_ref()
            .is_some_and(|f| f.meta() == chunk.meta && f.data_bytes() == chunk.offset);
        if !continues {
            return Err(super::incoming_gap(chunk));
        }
        self.guarded(|s| {
            let Some(file) = s.incoming.as_mut() else {
                return Err(super::incoming_gap(chunk));
            };
            let tmp = file.tmp_path().to_path_buf();
            file.data().write_all(&chunk.data).map_err(io_error(&tmp))
        })
    }

    fn install_incoming_snapshot(
        &mut self,
        received: ReceivedSnapshot,
    ) -> Result<(), StorageError> {
        let held = self.incoming.as_ref().map(|f| (f.meta(), f.data_bytes()));
        if held != Some((received.meta, received.data_bytes)) {
            return Err(super::not_received(&received, held));
        }
        self.guarded(|s| {
            s.state.check_snapshot(&received.meta)?;
            let Some(file) = s.incoming.take() else {
                return Err(super::not_received(&received, None));
            };
            s.wal.sync()?;
            let mut stats = s.snapshot_stats;
            s.snapshots
                .finish(file, received.conf.as_ref(), &mut stats)?;
            s.snapshot_stats = stats;
            s.record_snapshot(&Snapshot {
                meta: received.meta,
                data: Bytes::new(),
                conf: received.conf.clone(),
            })
        })
    }

    fn open_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        self.check_usable()?;
        if meta != self.state.snapshot_meta() || meta.index == LogIndex::ZERO {
            return Err(super::not_latest(meta));
        }
        self.snapshots.open_reader(meta)
    }

    fn adopt_snapshot(
        &mut self,
        snapshot: &Snapshot,
        file_stats: StorageStats,
    ) -> Result<(), StorageError> {
        self.guarded(|s| {
            s.state.check_snapshot(&snapshot.meta)?;
            s.snapshot_stats = s.snapshot_stats + file_stats;
            // The entries the snapshot covers were durable before it was taken (they were
            // applied); what came after is made durable with the marker's sync.
            s.record_snapshot(snapshot)
        })
    }
}
