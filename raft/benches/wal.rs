//! WAL append throughput with fsync ON, 256-byte entries, on the disk that holds the
//! build's target directory:
//! - `one_writer`: append one entry, sync, repeat (one fsync per entry).
//! - `group_commit_64_writers`: 64 producer threads each append-and-wait in a closed
//!   loop; one writer thread drains whatever is queued, appends it all, issues ONE sync,
//!   then acknowledges every producer (the runtime's persister does the same).
//!
//! Criterion reports time per entry (and entries/s). The fsyncs per batch and entries
//! per fsync are printed to stderr at the end of each benchmark, from `StorageStats`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_channel::{bounded, Receiver, Sender};
use raft::storage::{DiskOptions, DiskStorage, Storage, StorageStats};
use raft::{Entry, LogIndex, NodeId, Term};
use std::time::{Duration, Instant};

const ENTRY_BYTES: usize = 256;
const WRITERS: usize = 64;

fn open_storage(dir: &tempfile::TempDir) -> DiskStorage {
    DiskStorage::open(
        &dir.path().join("node"),
        DiskOptions::new("bench", NodeId(1)),
    )
    .unwrap()
}

fn entry(index: u64, data: &Bytes) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(1),
        data: data.clone(),
        ..Entry::default()
    }
}

fn report(name: &str, stats: StorageStats, entries: u64, batches: u64) {
    eprintln!(
        "{name}: {entries} entries in {batches} batches; {} fsyncs ({:.3} per batch, {:.1} entries per fsync)",
        stats.syncs,
        stats.syncs as f64 / batches.max(1) as f64,
        entries as f64 / stats.syncs.max(1) as f64,
    );
}

fn one_writer(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut storage = open_storage(&dir);
    let data = Bytes::from(vec![7u8; ENTRY_BYTES]);
    let start_stats = storage.stats();
    let mut next = 1u64;
    let mut group = c.benchmark_group("wal_fsync_on_256B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_writer", |b| {
        b.iter(|| {
            storage.append(&[entry(next, &data)]).unwrap();
            storage.sync().unwrap();
            next += 1;
        })
    });
    group.finish();
    let stats = storage.stats();
    let delta = StorageStats {
        syncs: stats.syncs - start_stats.syncs,
        bytes_written: stats.bytes_written - start_stats.bytes_written,
        records_written: stats.records_written - start_stats.records_written,
    };
    report("one_writer", delta, next - 1, next - 1);
}

/// One append request: the data and where to send the assigned index.
struct Request {
    data: Bytes,
    ack: Sender<u64>,
}

/// The writer thread: drain, append all, one sync, ack all. Returns (stats delta,
/// entries, batches) when every producer's sender is gone.
fn run_writer(mut storage: DiskStorage, requests: Receiver<Request>) -> (StorageStats, u64, u64) {
    let start = storage.stats();
    let (mut next, mut batches) = (1u64, 0u64);
    let mut batch: Vec<Request> = Vec::with_capacity(WRITERS);
    let mut entries: Vec<Entry> = Vec::with_capacity(WRITERS);
    while let Ok(first) = requests.recv() {
        batch.push(first);
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        entries.clear();
        for (i, request) in batch.iter().enumerate() {
            entries.push(entry(next + i as u64, &request.data));
        }
        storage.append(&entries).unwrap();
        storage.sync().unwrap();
        for request in batch.drain(..) {
            request.ack.send(next).unwrap();
            next += 1;
        }
        batches += 1;
    }
    let stats = storage.stats();
    let delta = StorageStats {
        syncs: stats.syncs - start.syncs,
        bytes_written: stats.bytes_written - start.bytes_written,
        records_written: stats.records_written - start.records_written,
    };
    (delta, next - 1, batches)
}

fn group_commit_64_writers(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let storage = open_storage(&dir);
    let (requests_tx, requests_rx) = bounded::<Request>(WRITERS);
    let writer = std::thread::spawn(move || run_writer(storage, requests_rx));
    let data = Bytes::from(vec![7u8; ENTRY_BYTES]);
    let mut group = c.benchmark_group("wal_fsync_on_256B");
    group.throughput(Throughput::Elements(1));
    group.bench_function("group_commit_64_writers", |b| {
        b.iter_custom(|iters| {
            let per_writer = iters.div_ceil(WRITERS as u64);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..WRITERS {
                    let requests = requests_tx.clone();
                    let data = data.clone();
                    scope.spawn(move || {
                        let (ack_tx, ack_rx) = bounded(1);
                        for _ in 0..per_writer {
                            let request = Request {
                                data: data.clone(),
                                ack: ack_tx.clone(),
                            };
                            requests.send(request).unwrap();
                            ack_rx.recv().unwrap();
                        }
                    });
                }
            });
            // Scale to the requested count (each writer did a rounded-up share).
            let elapsed = start.elapsed();
            elapsed.mul_f64(iters as f64 / (per_writer * WRITERS as u64) as f64)
        })
    });
    group.finish();
    drop(requests_tx);
    let (stats, entries, batches) = writer.join().unwrap();
    report("group_commit_64_writers", stats, entries, batches);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_writer, group_commit_64_writers
}
criterion_main!(benches);
