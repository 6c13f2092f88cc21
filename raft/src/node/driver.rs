//! The driver thread: runs a node's [`Executor`] on the system clock. It waits until
//! there is input, a tick or a deferred fsync falls due, a snapshot file was written, or
//! the apply channel has room for the backlog, then runs one round; everything a round does is the executor's
//! (shared with the simulator).

use super::clock::SystemClock;
use super::executor::Executor;
use crossbeam_channel::Select;

/// A round this long is logged: a tenth of the default election timeout.
const SLOW_ROUND: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs `executor` until the node shuts down or its storage fails.
pub(crate) fn run(mut executor: Executor, clock: SystemClock) {
    loop {
        let started = std::time::Instant::now();
        executor.run_round();
        let took = started.elapsed();
        if took >= SLOW_ROUND {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                "slow driver round: no heartbeats were sent meanwhile"
            );
        }
        if !executor.is_running() {
            break;
        }
        wait(&executor, &clock);
    }
    executor.stop();
}

/// Blocks until a round has something to do (it may wake spuriously: a round then
/// finds nothing and waits again).
fn wait(executor: &Executor, clock: &SystemClock) {
    let mut select = Select::new();
    select.recv(executor.inbox());
    select.recv(executor.snapshot_writes_done());
    if let Some(apply_tx) = executor.apply_waiting_for_room() {
        select.send(apply_tx);
    }
    let _ = select.ready_deadline(clock.instant(executor.next_deadline()));
}
