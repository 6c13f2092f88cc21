//! Benchmarks of the checker on simulated 6.824-sized KV histories. Measures, never asserts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/util/mod.rs"]
mod util;

use criterion::{criterion_group, criterion_main, Criterion};
use lincheck::{check, Budget, KvModel};

fn bench_checker(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_kv");
    group.sample_size(10);
    let cases = [
        (
            "appends_5c_1key_1000ops",
            util::Workload::appends(5, 1, 200),
        ),
        (
            "appends_5c_10keys_10000ops",
            util::Workload::appends(5, 10, 2000),
        ),
        (
            "appends_10c_1key_2000ops",
            util::Workload::appends(10, 1, 200),
        ),
    ];
    for (name, workload) in cases {
        let history = util::simulate(workload, 42);
        group.bench_function(name, |b| {
            b.iter(|| check(&KvModel, &history, Budget::default()));
        });
    }
    let mut unknowns = util::Workload::appends(5, 4, 400);
    unknowns.unknown_applied_percent = 2;
    unknowns.unknown_dropped_percent = 2;
    let history = util::simulate(unknowns, 7);
    group.bench_function("appends_5c_4keys_2000ops_4pct_unknown", |b| {
        b.iter(|| check(&KvModel, &history, Budget::default()));
    });
    group.finish();
}

criterion_group!(benches, bench_checker);
criterion_main!(benches);
