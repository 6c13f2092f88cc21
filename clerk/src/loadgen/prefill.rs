//! The optional prefill: every key written once before the warm-up, spread round-robin
//! over the clients, so that reads find values. Stops all writers at the first error.

use super::progress::{Phase, Progress, ProgressTicker};
use super::shared::{RunningGuard, Shared, CLIENT_STACK_BYTES, PHASE_STOP, POLL_EVERY};
use super::{KeySpace, LoadError, LoadSpec, LoadTarget};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Writes every key once, the keys spread round-robin over the clients.
pub(super) fn prefill<T: LoadTarget>(
    targets: &[T],
    spec: &LoadSpec,
    keys: KeySpace,
    value: &[u8],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<u64, LoadError> {
    let shared = Shared::default();
    let writers = spec
        .clients
        .min(usize::try_from(keys.len()).unwrap_or(usize::MAX));
    shared.running.store(writers, Ordering::Release);
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(writers);
        for writer in 0..writers {
            let target = &targets[writer % targets.len()];
            let shared = &shared;
            let spawned = std::thread::Builder::new()
                .name(format!("load-prefill-{writer}"))
                .stack_size(CLIENT_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    let _running = RunningGuard(&shared.running);
                    prefill_slice(target, shared, keys, value, writer, writers)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.phase.store(PHASE_STOP, Ordering::Release);
                    shared.running.fetch_sub(writers - writer, Ordering::AcqRel);
                    let reason = e.to_string();
                    return Err(LoadError::Spawn {
                        client: writer,
                        reason,
                    });
                }
            }
        }
        let start = Instant::now();
        let mut ticker = ProgressTicker::new(Phase::Prefill, start, spec.progress_every);
        while shared.running.load(Ordering::Acquire) > 0 {
            std::thread::sleep(POLL_EVERY);
            ticker.maybe_emit(&shared, false, on_progress);
        }
        ticker.maybe_emit(&shared, true, on_progress);
        let mut first_error = None;
        for (writer, h) in handles.into_iter().enumerate() {
            let r = h
                .join()
                .map_err(|_| LoadError::ClientPanicked { client: writer });
            if let Err(e) = r.and_then(|r| r) {
                first_error = first_error.or(Some(e));
            }
        }
        first_error.map_or(Ok(shared.ok.load(Ordering::Relaxed)), Err)
    })
}

/// Prefill writer `writer` of `writers`: keys `writer, writer + writers, ...`.
fn prefill_slice<T: LoadTarget>(
    target: &T,
    shared: &Shared,
    keys: KeySpace,
    value: &[u8],
    writer: usize,
    writers: usize,
) -> Result<(), LoadError> {
    let mut key = Vec::new();
    let mut index = writer as u64;
    while index < keys.len() && shared.phase.load(Ordering::Acquire) != PHASE_STOP {
        keys.write_key(index, &mut key);
        if let Err(reason) = target.put(&key, value) {
            // Tell the other writers to give up too.
            shared.phase.store(PHASE_STOP, Ordering::Release);
            return Err(LoadError::Prefill {
                key_index: index,
                reason,
            });
        }
        shared.ok.fetch_add(1, Ordering::Relaxed);
        index += writers as u64;
    }
    Ok(())
}
