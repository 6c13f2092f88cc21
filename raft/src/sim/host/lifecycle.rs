//! A simulated node's lives: booting an incarnation from what its disk recovers (checked
//! against the storage oracle), with its executor, clock, transport and fsync latency
//! wired to the simulation; and crashing it, which drops the executor and lets `SimFs`
//! decide what unsynced data survives.

use super::{Boot, Running, SimNode};
use crate::node::executor::{Executor, ExecutorIo};
use crate::node::shared::Shared;
use crate::sim::app::SimStateMachine;
use crate::sim::background::SimBackground;
use crate::sim::clock::SimClock;
use crate::sim::invariants::{Checker, Violation};
use crate::sim::storage_model::{DiskState, ObservedStorage, StorageModel};
use crate::sim::transport::SimTransport;
use crate::storage::sim_fs::CrashMode;
use crate::storage::{DiskStorage, Storage};
use crate::types::LogIndex;
use crossbeam_channel::bounded;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

impl<S: SimStateMachine> SimNode<S> {
    /// Starts (or restarts) the node from what its disk recovers.
    ///
    /// # Errors
    /// When recovery fails or contradicts the storage model, or the core refuses the
    /// recovered state.
    pub(crate) fn boot(&mut self, boot: Boot<S>, checker: &mut Checker) -> Result<(), Violation> {
        let id = self.id;
        let storage = DiskStorage::open_with_fs(
            Arc::new(self.fs.clone()),
            Path::new("/data"),
            boot.disk.clone(),
        )
        .map_err(|e| format!("{id:?} cannot open its data directory after a crash: {e}"))?;
        let initial = storage
            .initial_state()
            .map_err(|e| format!("{id:?} cannot read its recovered state: {e}"))?;
        let recovered = DiskState::from_initial(initial);
        self.model
            .lock()
            .check_recovered(&recovered)
            .map_err(|e| format!("{id:?} storage recovery: {e}"))?;
        *self.model.lock() = StorageModel::recovered(recovered);
        let now_us = boot.now_us;
        let tick_us = u64::try_from(boot.config.tick_interval.as_micros()).unwrap_or(u64::MAX);
        let clock = SimClock::new(now_us, tick_us, boot.tick_period_us);
        self.install_fsync_latency(&clock);
        let run = self.start_executor(boot, storage, clock)?;
        let durable = self.model.lock().durable().clone();
        checker.on_durable_change(id, &durable)?;
        checker.on_restart(id, &run.executor.core().status(), &durable)?;
        self.model.lock().take_durable_changed();
        self.incarnation += 1;
        self.run = Some(run);
        self.applied = LogIndex(0);
        self.busy_until_us = now_us;
        self.next_wake_us = None;
        self.app_run_scheduled = false;
        self.mid_round = false;
        Ok(())
    }

    fn install_fsync_latency(&self, clock: &SimClock) {
        let fsync = self.fsync.clone();
        let clock = clock.clone();
        self.fs.set_sync_hook(Some(Arc::new(move || {
            let mut f = fsync.lock();
            let (latency, rng) = &mut *f;
            let us = rng.range_inclusive(latency.min_us, latency.max_us.max(latency.min_us));
            clock.spend(us);
        })));
    }

    fn start_executor(
        &self,
        boot: Boot<S>,
        storage: DiskStorage,
        clock: SimClock,
    ) -> Result<Running<S>, Violation> {
        let (inbox_tx, inbox_rx) = bounded(boot.config.inbox_capacity);
        let (apply_tx, apply_rx) = bounded(boot.apply_capacity.max(1));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let transport = SimTransport::new(
            clock.clone(),
            self.model.clone(),
            boot.strict_term_reveal,
            sent.clone(),
        );
        let background = SimBackground::default();
        let io = ExecutorIo {
            inbox: inbox_rx,
            transport: Arc::new(transport),
            apply_tx,
            clock: Arc::new(clock.clone()),
            shared: Arc::new(Shared::new(self.id)),
            background: Arc::new(background.clone()),
        };
        let storage = ObservedStorage::new(Box::new(storage), self.model.clone());
        let executor = Executor::start(&boot.config, Box::new(storage), io)
            .map_err(|e| format!("{:?} failed to start from its durable state: {e}", self.id))?;
        Ok(Running {
            executor,
            clock,
            inbox: inbox_tx,
            apply_rx,
            sent,
            read_answers: Arc::new(Mutex::new(Vec::new())),
            app: boot.app,
            snapshot_interval: self.snapshot_interval,
            background,
            waiting_reads: Vec::new(),
            reads_in_flight: BTreeSet::new(),
        })
    }

    /// Crashes the node: its executor is gone, and its disk loses what `mode` says.
    pub(crate) fn crash(&mut self, mode: CrashMode, checker: &mut Checker) {
        if let Some(run) = self.run.take() {
            checker.forget_reads(run.reads_in_flight);
        }
        self.fs.set_sync_hook(None);
        self.fs.crash(mode);
        checker.on_crash(self.id);
        self.next_wake_us = None;
        self.app_run_scheduled = false;
        self.mid_round = false;
    }
}
