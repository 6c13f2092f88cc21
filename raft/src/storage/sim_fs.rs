//! `SimFs`: an in-memory disk that knows what was written versus what was made durable,
//! and can lose power. Tests (and the simulator) run `DiskStorage` on it to check crash
//! safety without real power cuts.
//!
//! # Model (strict POSIX, the pessimistic reading)
//! - File data is durable up to the last `sync_data` of that file; bytes written after
//!   it are "unsynced".
//! - A directory entry (a create, rename or remove) is durable only after `sync_dir` of
//!   its directory. Directories themselves are durable as soon as they are created (a
//!   simplification: storage creates its directories once, at first open).
//! - [`SimFs::crash`] applies a [`CrashMode`]: unsynced names are dropped (or kept), and
//!   each file's unsynced appended bytes are dropped, kept in part (a prefix, or a random
//!   subset of pages written back out of order), or zero-filled. Handles opened before
//!   the crash fail afterwards.
//! - [`SimFs::cut_power_after`] makes every operation after the next `n` mutating ones
//!   fail without effect, to stop the storage at an exact point (e.g. "after the
//!   snapshot's rename, before the directory fsync").
//!
//! - [`SimFs::set_sync_hook`] runs a callback at every `sync_data` / `sync_dir`: the
//!   simulator uses it to make fsyncs take virtual time.
//!
//! Everything is deterministic: the only randomness is the seed in `CrashMode`.

use super::fs::{Fs, FsFile};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a crash does to data and directory entries that were not made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced byte and every unsynced directory entry is lost.
    DropUnsynced,
    /// Each file keeps a seeded pseudo-random prefix of its unsynced appended bytes (a
    /// torn write); if `zero_fill`, the rest of the written length reads as zeros
    /// instead of being cut (the size reached the disk, the data did not). Unsynced
    /// directory entries are kept when `keep_unsynced_names` (metadata journaled eagerly).
    TornWrites {
        /// Seed for the kept prefix lengths.
        seed: u64,
        /// Zero-fill the lost bytes instead of cutting the file.
        zero_fill: bool,
        /// Keep directory entries that were not fsynced.
        keep_unsynced_names: bool,
    },
    /// Out-of-order writeback, as a page cache flushes dirty pages in any order: each
    /// file's unsynced appended bytes persist as a seeded pseudo-random subset of
    /// `page_bytes` pages (aligned to file offsets, as pages are; the page holding the
    /// synced end counts from there), not as a prefix. A lost page before the last kept
    /// one reads as zeros; the file ends with the last kept page (its size reached the
    /// disk with it), or at its synced length when no page is kept. Unsynced directory
    /// entries are kept when `keep_unsynced_names`.
    OutOfOrderWriteback {
        /// Seed for the kept pages (each is kept with probability 1/2).
        seed: u64,
        /// The page size: 4096 for a page cache, 512 for a disk's sectors.
        page_bytes: usize,
        /// Keep directory entries that were not fsynced.
        keep_unsynced_names: bool,
    },
}

impl CrashMode {
    fn keeps_unsynced_names(self) -> bool {
        match self {
            CrashMode::DropUnsynced => false,
            CrashMode::TornWrites {
                keep_unsynced_names,
                ..
            }
            | CrashMode::OutOfOrderWriteback {
                keep_unsynced_names,
                ..
            } => keep_unsynced_names,
        }
    }

    fn seed(self) -> u64 {
        match self {
            CrashMode::DropUnsynced => 0,
            CrashMode::TornWrites { seed, .. } | CrashMode::OutOfOrderWriteback { seed, .. } => {
                seed
            }
        }
    }
}

/// Called at every fsync (`sync_data` or `sync_dir`).
pub type SyncHook = Arc<dyn Fn() + Send + Sync>;

/// An in-memory, crashable file system. Cheap to clone: clones share the same disk.
#[derive(Clone, Default)]
pub struct SimFs {
    disk: Arc<Mutex<SimDisk>>,
    sync_hook: Arc<Mutex<Option<SyncHook>>>,
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFs").finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// `data` starts with `durable` (appends since the last sync only), so a sync copies
    /// just the new tail.
    durable_is_prefix: bool,
}

impl Inode {
    fn new() -> Inode {
        Inode {
            durable_is_prefix: true,
            ..Inode::default()
        }
    }

    fn sync(&mut self) {
        if self.durable_is_prefix {
            let tail = &self.data[self.durable.len()..];
            self.durable.extend_from_slice(tail);
        } else {
            self.durable = self.data.clone();
        }
        self.durable_is_prefix = true;
    }

    fn set_len(&mut self, len: usize) {
        if len < self.durable.len() {
            self.durable_is_prefix = false;
        }
        self.data.resize(len, 0);
    }
}

#[derive(Debug, Default)]
struct SimDisk {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    epoch: u64,
    mutations: u64,
    power_cut_at: Option<u64>,
    syncs: u64,
}

fn power_cut_error() -> io::Error {
    io::Error::other("simulated power cut")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimDisk {
    /// Counts a mutating operation, failing it if the power is cut.
    fn mutate(&mut self) -> io::Result<()> {
        self.check_power()?;
        self.mutations += 1;
        Ok(())
    }

    fn check_power(&self) -> io::Result<()> {
        match self.power_cut_at {
            Some(limit) if self.mutations >= limit => Err(power_cut_error()),
            _ => Ok(()),
        }
    }

    fn parent_exists(&self, path: &Path) -> bool {
        path.parent().is_some_and(|p| self.dirs.contains(p))
    }

    fn inode_of(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("file was removed"))
    }
}

impl SimFs {
    /// An empty disk.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    /// Runs `hook` at every later fsync (`None` removes it). Clones share the hook.
    pub fn set_sync_hook(&self, hook: Option<SyncHook>) {
        *self.sync_hook.lock() = hook;
    }

    fn run_sync_hook(&self) {
        let hook = self.sync_hook.lock().clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// After `mutations` more mutating operations, every operation fails ("power cut")
    /// until [`SimFs::crash`].
    pub fn cut_power_after(&self, mutations: u64) {
        let mut disk = self.disk.lock();
        disk.power_cut_at = Some(disk.mutations + mutations);
    }

    /// Restores power without a crash, cancelling [`SimFs::cut_power_after`]: for a caller
    /// that knows no operation has failed yet (the cut point may have been reached).
    pub fn cancel_power_cut(&self) {
        self.disk.lock().power_cut_at = None;
    }

    /// Mutating operations done so far (writes, syncs, creates, renames, removes).
    pub fn mutations(&self) -> u64 {
        self.disk.lock().mutations
    }

    /// `sync_data` + `sync_dir` calls so far.
    pub fn syncs(&self) -> u64 {
        self.disk.lock().syncs
    }

    /// Loses power: applies `mode` to everything not durable, restores power, and
    /// invalidates every open handle.
    pub fn crash(&self, mode: CrashMode) {
        let mut disk = self.disk.lock();
        let disk = &mut *disk;
        disk.power_cut_at = None;
        disk.epoch += 1;
        if !mode.keeps_unsynced_names() {
            disk.names = disk.durable_names.clone();
        }
        disk.durable_names = disk.names.clone();
        let mut rng = mode.seed();
        for inode in disk.inodes.values_mut() {
            let survived = surviving_bytes(inode, mode, &mut rng);
            inode.data = survived.clone();
            inode.durable = survived;
            inode.durable_is_prefix = true;
        }
        let live: BTreeSet<u64> = disk.names.values().copied().collect();
        disk.inodes.retain(|id, _| live.contains(id));
    }

    /// The current (not necessarily durable) contents of a file, for tests.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk.lock();
        let id = disk.names.get(path)?;
        disk.inodes.get(id).map(|inode| inode.data.clone())
    }

    /// Replaces a file's contents, durably, as media corruption would. For tests.
    ///
    /// # Errors
    /// `NotFound` when the file does not exist.
    pub fn overwrite_durably(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut disk = self.disk.lock();
        let id = disk.inode_of(path)?;
        let inode = disk.inode_mut(id)?;
        inode.data = bytes.clone();
        inode.durable = bytes;
        inode.durable_is_prefix = true;
        Ok(())
    }

    /// The names of every file, current namespace, for tests.
    pub fn all_files(&self) -> Vec<PathBuf> {
        self.disk.lock().names.keys().cloned().collect()
    }

    fn handle(&self, disk: &SimDisk, inode: u64) -> Box<dyn FsFile> {
        Box::new(SimFile {
            fs: self.clone(),
            inode,
            epoch: disk.epoch,
        })
    }
}

/// What of a file a crash leaves: its durable bytes, plus what `mode` keeps of the bytes
/// appended since (nothing when the file was cut below its durable length since).
fn surviving_bytes(inode: &Inode, mode: CrashMode, rng: &mut u64) -> Vec<u8> {
    let mut survived = inode.durable.clone();
    if !inode.durable_is_prefix {
        return survived;
    }
    let unsynced = inode.data.get(inode.durable.len()..).unwrap_or_default();
    match mode {
        CrashMode::DropUnsynced => {}
        CrashMode::TornWrites { zero_fill, .. } => {
            let keep = match unsynced.len() {
                0 => 0,
                len => (splitmix64(rng) % (len as u64 + 1)) as usize,
            };
            survived.extend_from_slice(&unsynced[..keep]);
            if zero_fill {
                survived.resize(inode.data.len(), 0);
            }
        }
        CrashMode::OutOfOrderWriteback { page_bytes, .. } => {
            let pages = written_back_pages(survived.len(), unsynced, page_bytes, rng);
            survived.extend_from_slice(&pages);
        }
    }
    survived
}

/// The bytes of `unsynced` (appended at file offset `start`) that a random subset of its
/// pages brings to disk: lost pages as zeros, cut after the last kept page.
fn written_back_pages(start: usize, unsynced: &[u8], page_bytes: usize, rng: &mut u64) -> Vec<u8> {
    let page_bytes = page_bytes.max(1);
    let mut image = vec![0u8; unsynced.len()];
    let mut kept_end = 0;
    let mut at = 0;
    while at < unsynced.len() {
        let page_end = ((start + at) / page_bytes + 1) * page_bytes - start;
        let end = page_end.min(unsynced.len());
        if splitmix64(rng) & 1 == 1 {
            image[at..end].copy_from_slice(&unsynced[at..end]);
            kept_end = end;
        }
        at = end;
    }
    image.truncate(kept_end);
    image
}

/// splitmix64: a tiny seeded PRNG, enough to pick torn-write lengths and kept pages.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A handle to a `SimFs` file.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: u64,
    epoch: u64,
}

impl SimFile {
    fn with_inode<T>(&self, f: impl FnOnce(&mut Inode, &mut u64) -> T) -> io::Result<T> {
        let mut disk = self.fs.disk.lock();
        if disk.epoch != self.epoch {
            return Err(io::Error::other("stale handle from before a crash"));
        }
        disk.mutate()?;
        let disk = &mut *disk;
        let inode = disk
            .inodes
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::other("removed"))?;
        Ok(f(inode, &mut disk.syncs))
    }
}

impl FsFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_inode(|inode, _| inode.data.extend_from_slice(buf))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.with_inode(|inode, syncs| {
            inode.sync();
            *syncs += 1;
        })?;
        self.fs.run_sync_hook();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.with_inode(|inode, _| inode.set_len(len))
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.mutate()?;
        if disk.names.contains_key(dir) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file has that name",
            ));
        }
        for ancestor in dir.ancestors() {
            if disk.names.contains_key(ancestor) {
                return Err(io::Error::other("not a directory"));
            }
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk.lock();
        disk.check_power()?;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let names = disk.names.keys().filter(|p| p.parent() == Some(dir));
        Ok(names
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let disk = self.disk.lock();
        disk.check_power()?;
        Ok(disk.names.contains_key(path) || disk.dirs.contains(path))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let disk = self.disk.lock();
        disk.check_power()?;
        let id = disk.inode_of(path)?;
        Ok(disk
            .inodes
            .get(&id)
            .map_or(0, |inode| inode.data.len() as u64))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.disk.lock();
        disk.check_power()?;
        let id = disk.inode_of(path)?;
        Ok(disk
            .inodes
            .get(&id)
            .map(|inode| inode.data.clone())
            .unwrap_or_default())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut disk = self.disk.lock();
        disk.mutate()?;
        if !disk.parent_exists(path) {
            return Err(not_found(path));
        }
        if disk.names.contains_key(path) || disk.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
        }
        let id = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(id, Inode::new());
        disk.names.insert(path.to_path_buf(), id);
        Ok(self.handle(&disk, id))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let disk = self.disk.lock();
        disk.check_power()?;
        let id = disk.inode_of(path)?;
        Ok(self.handle(&disk, id))
    }

    /// Cuts the file at `offset`: `SimFs` preallocates nothing, so what follows can only
    /// be zeros a crash left (zero-filled torn writes), and files stay append-only.
    fn open_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FsFile>> {
        let mut file = self.open_append(path)?;
        let len = self.file_len(path)?;
        if len > offset {
            file.set_len(offset)?;
        }
        Ok(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.mutate()?;
        let id = disk.inode_of(from)?;
        if !disk.parent_exists(to) {
            return Err(not_found(to));
        }
        disk.names.remove(from);
        disk.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.mutate()?;
        disk.inode_of(path)?;
        disk.names.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sync_dir_entries(dir)?;
        self.run_sync_hook();
        Ok(())
    }
}

impl SimFs {
    fn sync_dir_entries(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk.lock();
        disk.mutate()?;
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let disk = &mut *disk;
        disk.syncs += 1;
        disk.durable_names.retain(|p, _| p.parent() != Some(dir));
        for (path, id) in disk.names.iter().filter(|(p, _)| p.parent() == Some(dir)) {
            disk.durable_names.insert(path.clone(), *id);
        }
        // Forget files no name (current or durable) refers to any more.
        let live: BTreeSet<u64> = disk
            .names
            .values()
            .chain(disk.durable_names.values())
            .copied()
            .collect();
        disk.inodes.retain(|id, _| live.contains(id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with `durable` synced bytes, then `unsynced` more appended, crashed.
    fn crash_file(durable: usize, unsynced: usize, mode: CrashMode) -> (Vec<u8>, Vec<u8>) {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join("f");
        let mut file = fs.create_new(&path).unwrap();
        fs.sync_dir(dir).unwrap();
        let written: Vec<u8> = (0..durable + unsynced)
            .map(|i| (i % 251) as u8 + 1)
            .collect();
        file.write_all(&written[..durable]).unwrap();
        file.sync_data().unwrap();
        file.write_all(&written[durable..]).unwrap();
        fs.crash(mode);
        (written, fs.file_bytes(&path).unwrap())
    }

    #[test]
    fn out_of_order_writeback_keeps_whole_aligned_pages_and_zeros_the_lost_ones() {
        let (durable, unsynced, page) = (1000, 5 * 512 + 100, 512);
        let mut holes_before_data = 0;
        for seed in 0..64 {
            let mode = CrashMode::OutOfOrderWriteback {
                seed,
                page_bytes: page,
                keep_unsynced_names: false,
            };
            let (written, after) = crash_file(durable, unsynced, mode);
            assert_eq!(
                after[..durable],
                written[..durable],
                "seed {seed}: synced bytes lost"
            );
            assert!(after.len() <= written.len());
            // Page by page (the first one starts at the synced end): all kept or all zeros.
            let mut at = durable;
            let mut saw_hole = false;
            while at < after.len() {
                let end = ((at / page + 1) * page).min(after.len());
                if after[at..end] == written[at..end] {
                    holes_before_data += usize::from(saw_hole);
                } else {
                    assert!(
                        after[at..end].iter().all(|&b| b == 0),
                        "seed {seed}: page at {at}"
                    );
                    saw_hole = true;
                }
                at = end;
            }
            assert!(
                after.len() == durable || after[after.len() - 1] != 0,
                "seed {seed}: the file must end with a kept page"
            );
        }
        assert!(
            holes_before_data > 0,
            "no seed persisted a page after a lost one"
        );
    }
}
