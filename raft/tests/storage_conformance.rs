//! Runs the storage conformance suite (`raft::storage::conformance`) against every
//! `Storage`: `MemStorage`, `DiskStorage` on the crashable simulated disk, and
//! `DiskStorage` on the real file system (fsync on) in a temp directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::storage::conformance::{run_all, StorageHarness};
use raft::storage::sim_fs::{CrashMode, SimFs};
use raft::storage::{DiskOptions, DiskStorage, MemStorage};
use raft::NodeId;
use std::path::Path;
use std::sync::Arc;

fn options() -> DiskOptions {
    let mut options = DiskOptions::new("conformance", NodeId(1));
    // Small segments so the suite also crosses segment boundaries.
    options.segment_bytes = 256;
    options
}

struct MemHarness;

impl StorageHarness for MemHarness {
    type S = MemStorage;

    fn fresh(&mut self) -> MemStorage {
        MemStorage::new()
    }

    fn restart(&mut self, mut storage: MemStorage) -> MemStorage {
        storage.crash();
        storage
    }

    fn simulates_power_loss(&self) -> bool {
        true
    }

    fn power_loss(&mut self, mut storage: MemStorage) -> MemStorage {
        storage.crash();
        storage
    }
}

#[derive(Default)]
struct SimDiskHarness {
    fs: SimFs,
}

impl SimDiskHarness {
    fn open(&self) -> DiskStorage {
        DiskStorage::open_with_fs(Arc::new(self.fs.clone()), Path::new("/data"), options()).unwrap()
    }
}

impl StorageHarness for SimDiskHarness {
    type S = DiskStorage;

    fn fresh(&mut self) -> DiskStorage {
        self.fs = SimFs::new();
        self.open()
    }

    fn restart(&mut self, storage: DiskStorage) -> DiskStorage {
        drop(storage);
        self.open()
    }

    fn simulates_power_loss(&self) -> bool {
        true
    }

    fn power_loss(&mut self, storage: DiskStorage) -> DiskStorage {
        drop(storage);
        self.fs.crash(CrashMode::DropUnsynced);
        self.open()
    }
}

#[derive(Default)]
struct RealDiskHarness {
    dirs: Vec<tempfile::TempDir>,
}

impl StorageHarness for RealDiskHarness {
    type S = DiskStorage;

    fn fresh(&mut self) -> DiskStorage {
        let dir = tempfile::tempdir().unwrap();
        let storage = DiskStorage::open(&dir.path().join("node"), options()).unwrap();
        self.dirs.push(dir);
        storage
    }

    fn restart(&mut self, storage: DiskStorage) -> DiskStorage {
        let dir = storage.dir().to_path_buf();
        drop(storage);
        DiskStorage::open(&dir, options()).unwrap()
    }

    fn simulates_power_loss(&self) -> bool {
        false
    }

    fn power_loss(&mut self, storage: DiskStorage) -> DiskStorage {
        self.restart(storage)
    }
}

#[test]
fn mem_storage_conforms() {
    run_all(&mut MemHarness);
}

#[test]
fn disk_storage_on_simulated_disk_conforms() {
    run_all(&mut SimDiskHarness::default());
}

#[test]
fn disk_storage_on_real_disk_conforms() {
    run_all(&mut RealDiskHarness::default());
}
