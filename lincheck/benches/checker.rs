//! Benchmarks of the checker on simulated KV histories (6.824-sized and heavier). Measures,
//! never asserts. Run with `cargo bench -p lincheck`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/util/mod.rs"]
mod util;

use criterion::{criterion_group, criterion_main, Criterion};
use lincheck::{check, Budget, KvModel};
use util::Workload;

fn with_unknowns(mut workload: Workload, percent: u64) -> Workload {
    workload.unknown_applied_percent = percent;
    workload.unknown_dropped_percent = percent;
    workload
}

fn long_values(mut workload: Workload) -> Workload {
    workload.value_padding_bytes = 100;
    (workload.get_percent, workload.append_percent) = (50, 50);
    (workload.put_percent, workload.cas_percent) = (0, 0);
    workload
}

fn bench_checker(c: &mut Criterion) {
    let mut group = c.benchmark_group("check_kv");
    group.sample_size(10);
    let cases = [
        ("5clients_10keys_10000ops", Workload::appends(5, 10, 2000)),
        (
            "5clients_10keys_10000ops_2pct_unknown",
            with_unknowns(Workload::appends(5, 10, 2000), 1),
        ),
        ("5clients_1key_1000ops", Workload::appends(5, 1, 200)),
        (
            "8clients_1key_2400ops_4pct_unknown",
            with_unknowns(Workload::appends(8, 1, 300), 2),
        ),
        ("10clients_1key_1000ops", Workload::appends(10, 1, 100)),
        (
            "3clients_1key_3000ops_150kb_values",
            long_values(Workload::appends(3, 1, 1000)),
        ),
    ];
    for (name, workload) in cases {
        let history = util::simulate(workload, 42);
        group.bench_function(name, |b| {
            b.iter(|| check(&KvModel, &history, Budget::default()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_checker);
criterion_main!(benches);
