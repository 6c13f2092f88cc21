//! Benchmarks of the state machine's data structure: `SkipList` against `BTreeMap` for
//! insert, point get and 100-key range scans at 10k and 1M keys, plus snapshot encode and
//! decode of 1M keys with 256-byte values (the restart budget is 2 s including WAL replay).
//!
//! Keys are 19-byte `Bytes` ("key" + 16 hex digits of a hashed counter), looked up by
//! `&[u8]` as the state machine does. Run: `cargo bench -p kvserver --bench skiplist`.
//! The 1M-key groups use few samples so the whole run takes a few minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvserver::skiplist::SkipList;
use kvserver::snapshot;
use kvserver::state_machine::{register_request, Limits, StateMachine};
use proto::kv::{write_request::Op, Put, WriteRequest};
use raft::LogIndex;

const SIZES: [usize; 2] = [10_000, 1_000_000];
/// Distinct random probes per iteration: enough that at 1M keys the search paths do not
/// stay cache-resident between iterations (1000 repeated probes flatter both maps).
const PROBES: usize = 10_000;
const SCANS: usize = 1_000;
const SCAN_LEN: usize = 100;

/// splitmix64: a fixed, seedable sequence of pseudo-random numbers.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key{:016x}", mix(i)))
}

fn keys(n: usize) -> Vec<Bytes> {
    (0..n as u64).map(key).collect()
}

fn probes(keys: &[Bytes]) -> Vec<Bytes> {
    (0..PROBES as u64)
        .map(|i| keys[(mix(i ^ 0xABCD) % keys.len() as u64) as usize].clone())
        .collect()
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
    n: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(format!("{name}/{n}"));
    if n >= 1_000_000 {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(8));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    }
    group
}

fn bench_insert(c: &mut Criterion) {
    let value = Bytes::from_static(b"value-0123456789");
    for n in SIZES {
        let keys = keys(n);
        let mut group = configure(c, "insert", n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("skiplist", n), |b| {
            b.iter_with_large_drop(|| {
                let mut map = SkipList::new();
                for k in &keys {
                    map.insert(k.clone(), value.clone());
                }
                map
            })
        });
        group.bench_function(BenchmarkId::new("btreemap", n), |b| {
            b.iter_with_large_drop(|| {
                let mut map = BTreeMap::new();
                for k in &keys {
                    map.insert(k.clone(), value.clone());
                }
                map
            })
        });
        group.finish();
    }
}

fn bench_get(c: &mut Criterion) {
    let value = Bytes::from_static(b"value-0123456789");
    for n in SIZES {
        let keys = keys(n);
        let probes = probes(&keys);
        let skiplist: SkipList<Bytes, Bytes> =
            keys.iter().map(|k| (k.clone(), value.clone())).collect();
        let btree: BTreeMap<Bytes, Bytes> =
            keys.iter().map(|k| (k.clone(), value.clone())).collect();
        drop(keys);
        let mut group = configure(c, "get", n);
        group.throughput(Throughput::Elements(PROBES as u64));
        group.bench_function(BenchmarkId::new("skiplist", n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .map(|p| skiplist.get(&p[..]).map_or(0, Bytes::len))
                    .sum::<usize>()
            })
        });
        group.bench_function(BenchmarkId::new("btreemap", n), |b| {
            b.iter(|| {
                probes
                    .iter()
                    .map(|p| btree.get(&p[..]).map_or(0, Bytes::len))
                    .sum::<usize>()
            })
        });
        group.finish();
    }
}

fn bench_range(c: &mut Criterion) {
    let value = Bytes::from_static(b"value-0123456789");
    for n in SIZES {
        let keys = keys(n);
        let starts: Vec<Bytes> = probes(&keys).into_iter().take(SCANS).collect();
        let skiplist: SkipList<Bytes, Bytes> =
            keys.iter().map(|k| (k.clone(), value.clone())).collect();
        let btree: BTreeMap<Bytes, Bytes> =
            keys.iter().map(|k| (k.clone(), value.clone())).collect();
        drop(keys);
        let mut group = configure(c, "range100", n);
        group.throughput(Throughput::Elements((SCANS * SCAN_LEN) as u64));
        group.bench_function(BenchmarkId::new("skiplist", n), |b| {
            b.iter(|| {
                let mut bytes = 0;
                for start in &starts {
                    let bounds = (Bound::Included(&start[..]), Bound::Unbounded);
                    for (_, v) in skiplist.range::<[u8], _>(bounds).take(SCAN_LEN) {
                        bytes += v.len();
                    }
                }
                bytes
            })
        });
        group.bench_function(BenchmarkId::new("btreemap", n), |b| {
            b.iter(|| {
                let mut bytes = 0;
                for start in &starts {
                    let bounds = (Bound::Included(&start[..]), Bound::Unbounded);
                    for (_, v) in btree.range::<[u8], _>(bounds).take(SCAN_LEN) {
                        bytes += v.len();
                    }
                }
                bytes
            })
        });
        group.finish();
    }
}

/// 1M keys of 256-byte values, applied through the state machine (one client that
/// acknowledges as it goes, so its session holds one cached reply).
fn big_state_machine() -> StateMachine {
    let mut sm = StateMachine::new(Limits::default());
    let client_id = sm.apply(LogIndex(1), &register_request()).client_id;
    let value = Bytes::from(vec![0xAB; 256]);
    for i in 1..=1_000_000u64 {
        let op = Op::Put(Put {
            key: key(i),
            value: value.clone(),
        });
        let request = WriteRequest {
            client_id,
            seq: i,
            first_unacked_seq: i,
            op: Some(op),
        };
        sm.apply(LogIndex(i + 1), &request);
    }
    sm
}

fn bench_snapshot(c: &mut Criterion) {
    let sm = big_state_machine();
    let encoded = snapshot::encode(&sm);
    let mut group = c.benchmark_group("snapshot/1000000x256B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode", |b| {
        b.iter_with_large_drop(|| snapshot::encode(black_box(&sm)))
    });
    group.bench_function("decode", |b| {
        b.iter_with_large_drop(|| snapshot::decode(black_box(&encoded)).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_insert,
    bench_get,
    bench_range,
    bench_snapshot
);
criterion_main!(benches);
