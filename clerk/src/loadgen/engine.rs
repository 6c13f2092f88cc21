//! The closed-loop engine: client threads (scoped, so targets are borrowed), the phase
//! clock run by the calling thread (warm-up, then measured), and the merge of per-client
//! histograms into a [`LoadReport`].
//!
//! Invariants: a client records an operation's latency only if the phase was `Measure`
//! when the operation started; in [`StopAfter::Ops`] mode a client takes a ticket before
//! each measured operation, so exactly `n` operations are measured; clients share only
//! atomics and the start gate, never a lock held while an operation runs.

use super::keys::{value_bytes, SplitMix64};
use super::prefill::prefill;
use super::process_cpu::process_cpu_time;
use super::progress::{Phase, Progress, ProgressTicker};
use super::report::new_latency_histogram;
use super::shared::{
    RunningGuard, Shared, CLIENT_STACK_BYTES, ERROR_PAUSE, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP,
    POLL_EVERY,
};
use super::{KeySpace, LatencySummary, LoadError, LoadReport, LoadSpec, LoadTarget, StopAfter};
use hdrhistogram::Histogram;
use std::sync::atomic::Ordering;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// What one client measured.
#[derive(Debug)]
struct ClientResult {
    reads: Option<Histogram<u64>>,
    writes: Option<Histogram<u64>>,
    first_error: Option<String>,
    last_end: Option<Instant>,
}

/// Runs a closed-loop load against `targets` (client `i` uses `targets[i % len]`) and
/// reports what the measured phase saw. Blocks until the run ends; `on_progress` runs on
/// the calling thread.
///
/// # Errors
/// [`LoadError`] when the spec is invalid, a thread cannot start or panics, or the
/// prefill fails. Failed operations during warm-up and measurement are counted instead.
pub fn run_load<T: LoadTarget>(
    targets: &[T],
    spec: &LoadSpec,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<LoadReport, LoadError> {
    let keys = spec.validate(targets.len())?;
    let template = new_latency_histogram()?;
    let value = value_bytes(spec.value_bytes, spec.seed);
    let prefill_ops = if spec.prefill {
        prefill(targets, spec, keys, &value, on_progress)?
    } else {
        0
    };
    let shared = Shared::default();
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(spec.clients);
        for client in 0..spec.clients {
            let ctx = ClientContext {
                client,
                target: &targets[client % targets.len()],
                shared: &shared,
                spec,
                keys,
                value: &value,
                template: &template,
            };
            match spawn_client(scope, ctx) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.phase.store(PHASE_STOP, Ordering::Release);
                    shared.gate.open();
                    return Err(e);
                }
            }
        }
        let (start, cpu_before) = drive_phases(&shared, spec, on_progress);
        let results = join_clients(handles)?;
        let window = MeasuredWindow {
            start,
            cpu: process_cpu_time()
                .zip(cpu_before)
                .map(|(a, b)| a.saturating_sub(b)),
        };
        let connections = targets.len();
        Ok(build_report(
            connections,
            spec,
            prefill_ops,
            &shared,
            window,
            results,
        ))
    })
}

/// Everything a client thread borrows.
struct ClientContext<'a, T> {
    client: usize,
    target: &'a T,
    shared: &'a Shared,
    spec: &'a LoadSpec,
    keys: KeySpace,
    value: &'a [u8],
    template: &'a Histogram<u64>,
}

fn spawn_client<'scope, 'env, T: LoadTarget>(
    scope: &'scope Scope<'scope, 'env>,
    ctx: ClientContext<'env, T>,
) -> Result<ScopedJoinHandle<'scope, ClientResult>, LoadError> {
    let (client, shared) = (ctx.client, ctx.shared);
    shared.running.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new()
        .name(format!("load-client-{client}"))
        .stack_size(CLIENT_STACK_BYTES)
        .spawn_scoped(scope, move || {
            let _running = RunningGuard(&ctx.shared.running);
            ctx.shared.gate.wait();
            client_loop(&ctx)
        });
    spawned.map_err(|e| {
        shared.running.fetch_sub(1, Ordering::AcqRel);
        LoadError::Spawn {
            client,
            reason: e.to_string(),
        }
    })
}

fn join_clients(
    handles: Vec<ScopedJoinHandle<'_, ClientResult>>,
) -> Result<Vec<ClientResult>, LoadError> {
    let mut results = Vec::with_capacity(handles.len());
    let mut panicked = None;
    for (client, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(r) => results.push(r),
            Err(_) => panicked = panicked.or(Some(client)),
        }
    }
    match panicked {
        Some(client) => Err(LoadError::ClientPanicked { client }),
        None => Ok(results),
    }
}

/// One client: one operation at a time until the phase says stop.
fn client_loop<T: LoadTarget>(ctx: &ClientContext<'_, T>) -> ClientResult {
    let spec = ctx.spec;
    let mut rng = SplitMix64::new(spec.seed ^ (ctx.client as u64 + 1).wrapping_mul(0xA24B_AED4));
    let mut key = Vec::with_capacity(spec.key_bytes);
    let mut result = ClientResult {
        reads: None,
        writes: None,
        first_error: None,
        last_end: None,
    };
    loop {
        let measured = match ctx.shared.phase.load(Ordering::Acquire) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        if measured && !claim_ticket(ctx.shared, spec.stop_after) {
            break;
        }
        ctx.keys.write_key(rng.next_u64(), &mut key);
        let is_read = spec.read_ratio > 0.0 && rng.next_f64() < spec.read_ratio;
        let started = Instant::now();
        let outcome = if is_read {
            ctx.target.get(&key).map(|_| ())
        } else {
            ctx.target.put(&key, ctx.value)
        };
        let ended = Instant::now();
        let (ok, errors) = if measured {
            (&ctx.shared.ok, &ctx.shared.errors)
        } else {
            (&ctx.shared.warmup_ok, &ctx.shared.warmup_errors)
        };
        match outcome {
            Ok(()) => {
                ok.fetch_add(1, Ordering::Relaxed);
                if measured {
                    let slot = if is_read {
                        &mut result.reads
                    } else {
                        &mut result.writes
                    };
                    let hist = slot.get_or_insert_with(|| ctx.template.clone());
                    hist.saturating_record(micros(ended - started));
                }
            }
            Err(reason) => {
                errors.fetch_add(1, Ordering::Relaxed);
                if measured && result.first_error.is_none() {
                    result.first_error = Some(reason);
                }
                std::thread::sleep(ERROR_PAUSE);
            }
        }
        if measured {
            result.last_end = Some(ended);
        }
    }
    result
}

/// In [`StopAfter::Ops`] mode, takes one of the `n` measured-operation tickets.
fn claim_ticket(shared: &Shared, stop_after: StopAfter) -> bool {
    match stop_after {
        StopAfter::Ops(n) => shared.tickets.fetch_add(1, Ordering::Relaxed) < n,
        StopAfter::Elapsed(_) => true,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Runs the warm-up and the measured phase on the calling thread; returns when the
/// measured phase ended (clients told to stop) with its start and the CPU time then.
fn drive_phases(
    shared: &Shared,
    spec: &LoadSpec,
    on_progress: &mut dyn FnMut(&Progress),
) -> (Instant, Option<Duration>) {
    if !spec.warmup.is_zero() {
        let warmup_start = Instant::now();
        shared.gate.open();
        let mut ticker = ProgressTicker::new(Phase::Warmup, warmup_start, spec.progress_every);
        while warmup_start.elapsed() < spec.warmup {
            let left = spec.warmup.saturating_sub(warmup_start.elapsed());
            std::thread::sleep(POLL_EVERY.min(left));
            ticker.maybe_emit(shared, false, on_progress);
        }
        ticker.maybe_emit(shared, true, on_progress);
    }
    let cpu_before = process_cpu_time();
    let start = Instant::now();
    shared.phase.store(PHASE_MEASURE, Ordering::Release);
    shared.gate.open();
    let mut ticker = ProgressTicker::new(Phase::Measure, start, spec.progress_every);
    loop {
        std::thread::sleep(POLL_EVERY);
        let done = shared.running.load(Ordering::Acquire) == 0
            || match spec.stop_after {
                StopAfter::Elapsed(d) => start.elapsed() >= d,
                StopAfter::Ops(n) => {
                    shared.ok.load(Ordering::Relaxed) + shared.errors.load(Ordering::Relaxed) >= n
                }
            };
        ticker.maybe_emit(shared, done, on_progress);
        if done {
            shared.phase.store(PHASE_STOP, Ordering::Release);
            return (start, cpu_before);
        }
    }
}

/// When the measured phase started, and the CPU this process used from then to the end.
struct MeasuredWindow {
    start: Instant,
    cpu: Option<Duration>,
}

fn build_report(
    connections: usize,
    spec: &LoadSpec,
    prefill_ops: u64,
    shared: &Shared,
    window: MeasuredWindow,
    results: Vec<ClientResult>,
) -> LoadReport {
    let MeasuredWindow { start, cpu } = window;
    let mut reads: Option<Histogram<u64>> = None;
    let mut writes: Option<Histogram<u64>> = None;
    let mut first_error = None;
    let mut last_end = start;
    for r in results {
        merge_into(&mut reads, r.reads);
        merge_into(&mut writes, r.writes);
        first_error = first_error.or(r.first_error);
        last_end = last_end.max(r.last_end.unwrap_or(start));
    }
    let mut all = reads.clone();
    merge_into(&mut all, writes.clone());
    let summary =
        |h: &Option<Histogram<u64>>| h.as_ref().and_then(LatencySummary::from_histogram_us);
    let ops = all.as_ref().map_or(0, |h| h.len());
    let seconds = (last_end - start).as_secs_f64();
    LoadReport {
        clients: spec.clients,
        connections,
        keys: spec.keys,
        key_bytes: spec.key_bytes,
        value_bytes: spec.value_bytes,
        read_ratio: spec.read_ratio,
        prefill_ops,
        warmup_ops: shared.warmup_ok.load(Ordering::Relaxed)
            + shared.warmup_errors.load(Ordering::Relaxed),
        seconds,
        ops,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        throughput_ops_per_sec: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
        latency: summary(&all),
        read_latency: summary(&reads),
        write_latency: summary(&writes),
        client_cpu_secs: cpu.map(|d| d.as_secs_f64()),
    }
}

/// Adds `source` into `into` (histograms share bounds, so adding cannot fail).
fn merge_into(into: &mut Option<Histogram<u64>>, source: Option<Histogram<u64>>) {
    match (into.as_mut(), source) {
        (Some(total), Some(h)) => {
            let added = total.add(&h);
            assert!(
                added.is_ok(),
                "latency histograms with different bounds: {added:?}"
            );
        }
        (None, Some(h)) => *into = Some(h),
        (_, None) => {}
    }
}

#[cfg(test)]
mod tests;
