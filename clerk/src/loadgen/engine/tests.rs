//! Engine tests against in-memory targets: exact operation counts, prefill coverage,
//! read/write split, error accounting, connection sharing and failure reporting.

use super::*;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier};

/// An in-memory target that can fail every `fail_every`-th call.
#[derive(Debug, Default)]
struct MemTarget {
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    puts: AtomicU64,
    gets: AtomicU64,
    fail_every: u64,
    panic_on_put: bool,
    /// The first `n` calls (over all targets sharing it) wait for each other.
    first_calls: Option<(Arc<Barrier>, Arc<AtomicU64>, u64)>,
}

impl MemTarget {
    fn calls(&self) -> u64 {
        self.puts.load(Ordering::Relaxed) + self.gets.load(Ordering::Relaxed)
    }

    fn maybe_fail(&self) -> Result<(), String> {
        let n = self.calls();
        if self.fail_every > 0 && n % self.fail_every == 0 {
            return Err(format!("injected failure at call {n}"));
        }
        Ok(())
    }
}

impl LoadTarget for MemTarget {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        assert!(!self.panic_on_put, "injected panic");
        if let Some((barrier, calls, n)) = &self.first_calls {
            if calls.fetch_add(1, Ordering::Relaxed) < *n {
                barrier.wait();
            }
        }
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.maybe_fail()?;
        self.data.lock().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.maybe_fail()?;
        Ok(self.data.lock().get(key).cloned())
    }
}

fn spec(clients: usize, ops: u64) -> LoadSpec {
    LoadSpec {
        warmup: Duration::ZERO,
        stop_after: StopAfter::Ops(ops),
        keys: 100,
        progress_every: Duration::from_millis(5),
        ..LoadSpec::new(clients)
    }
}

fn targets(n: usize) -> Vec<MemTarget> {
    (0..n).map(|_| MemTarget::default()).collect()
}

#[test]
fn ops_mode_measures_exactly_the_requested_operations() {
    let targets = targets(2);
    let report = run_load(&targets, &spec(8, 1000), &mut |_| {}).unwrap();
    assert_eq!(report.ops, 1000);
    assert_eq!(report.errors, 0);
    assert_eq!(report.latency.unwrap().count, 1000);
    assert_eq!(report.write_latency.unwrap().count, 1000);
    assert_eq!(report.read_latency, None);
    assert_eq!(report.connections, 2);
    // No warm-up and no prefill: every call made was measured.
    assert_eq!(targets.iter().map(MemTarget::calls).sum::<u64>(), 1000);
}

#[test]
fn every_target_is_used_when_clients_outnumber_connections() {
    // Each client's first call blocks until all 6 clients made one, so no client can
    // take every ticket before the others start.
    let barrier = Arc::new(Barrier::new(6));
    let calls = Arc::new(AtomicU64::new(0));
    let targets: Vec<MemTarget> = (0..3)
        .map(|_| MemTarget {
            first_calls: Some((barrier.clone(), calls.clone(), 6)),
            ..MemTarget::default()
        })
        .collect();
    run_load(&targets, &spec(6, 600), &mut |_| {}).unwrap();
    for (i, t) in targets.iter().enumerate() {
        assert!(t.calls() > 0, "target {i} was never used");
    }
}

#[test]
fn prefill_writes_every_key_once_with_the_configured_sizes() {
    let targets = targets(1);
    let spec = LoadSpec {
        prefill: true,
        key_bytes: 10,
        value_bytes: 33,
        ..spec(4, 1)
    };
    let report = run_load(&targets, &spec, &mut |_| {}).unwrap();
    assert_eq!(report.prefill_ops, 100);
    let data = targets[0].data.lock();
    assert_eq!(data.len(), 100);
    assert!(data.keys().all(|k| k.len() == 10));
    assert!(data.values().all(|v| v.len() == 33));
}

#[test]
fn read_ratio_one_issues_only_reads_and_zero_only_writes() {
    let targets = targets(1);
    let reads = LoadSpec {
        read_ratio: 1.0,
        ..spec(2, 200)
    };
    let report = run_load(&targets, &reads, &mut |_| {}).unwrap();
    assert_eq!(report.read_latency.unwrap().count, 200);
    assert_eq!(report.write_latency, None);
    assert_eq!(targets[0].puts.load(Ordering::Relaxed), 0);
}

#[test]
fn mixed_ratio_records_both_kinds_and_they_add_up() {
    let targets = targets(1);
    let mixed = LoadSpec {
        read_ratio: 0.5,
        ..spec(2, 2000)
    };
    let report = run_load(&targets, &mixed, &mut |_| {}).unwrap();
    let (r, w) = (
        report.read_latency.unwrap().count,
        report.write_latency.unwrap().count,
    );
    assert_eq!(r + w, 2000);
    // Seeded PRNG: a fair coin over 2000 draws lands far from the extremes.
    assert!(r > 500 && w > 500, "reads {r}, writes {w}");
}

#[test]
fn failed_operations_are_counted_not_measured() {
    let targets = vec![MemTarget {
        fail_every: 4,
        ..MemTarget::default()
    }];
    let report = run_load(&targets, &spec(1, 40), &mut |_| {}).unwrap();
    assert_eq!(report.ops + report.errors, 40);
    assert_eq!(report.errors, 10);
    assert_eq!(report.latency.unwrap().count, report.ops);
    assert!(report.first_error.unwrap().contains("injected failure"));
}

#[test]
fn progress_reports_the_measure_phase_and_ends_with_the_final_count() {
    let targets = targets(1);
    let mut samples = Vec::new();
    run_load(&targets, &spec(2, 500), &mut |p| samples.push(*p)).unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last.phase, Phase::Measure);
    assert!(last.phase_done);
    assert_eq!(last.ops + last.errors, 500);
    assert_eq!(
        samples.iter().filter(|p| p.phase_done).count(),
        1,
        "no warm-up: one phase"
    );
}

#[test]
fn elapsed_mode_stops_by_itself_and_reports_consistent_counts() {
    let targets = targets(2);
    let spec = LoadSpec {
        stop_after: StopAfter::Elapsed(Duration::from_millis(30)),
        warmup: Duration::from_millis(10),
        ..spec(4, 1)
    };
    let report = run_load(&targets, &spec, &mut |_| {}).unwrap();
    assert_eq!(report.latency.map_or(0, |l| l.count), report.ops);
    assert_eq!(report.errors, 0);
    let calls: u64 = targets.iter().map(MemTarget::calls).sum();
    assert_eq!(calls, report.ops + report.warmup_ops);
}

#[test]
fn invalid_spec_is_rejected_before_any_call() {
    let targets = targets(4);
    let err = run_load(&targets, &spec(2, 10), &mut |_| {}).unwrap_err();
    assert!(matches!(err, LoadError::InvalidSpec(_)), "{err}");
    assert!(targets.iter().all(|t| t.calls() == 0));
}

#[test]
fn a_panicking_target_is_reported() {
    let targets = vec![MemTarget {
        panic_on_put: true,
        ..MemTarget::default()
    }];
    let err = run_load(&targets, &spec(1, 10), &mut |_| {}).unwrap_err();
    assert_eq!(err, LoadError::ClientPanicked { client: 0 });
}

#[test]
fn a_failing_prefill_is_an_error() {
    let targets = vec![MemTarget {
        fail_every: 7,
        ..MemTarget::default()
    }];
    let spec = LoadSpec {
        prefill: true,
        ..spec(2, 10)
    };
    let err = run_load(&targets, &spec, &mut |_| {}).unwrap_err();
    assert!(matches!(err, LoadError::Prefill { .. }), "{err}");
}
