//! The simulator's `Background`: jobs queue up and the host runs them between the node's
//! rounds (`SimNode::run_round`), deterministically, with the time they take charged to
//! the background thread, not to the driver (`SimClock::detached`). Their completions
//! wake the node (`SimNode::next_wake_at`).

use crate::node::background::{Background, Job};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// Jobs waiting to run, shared by the executor (which queues) and the host (which runs).
#[derive(Clone, Default)]
pub(crate) struct SimBackground {
    jobs: Arc<Mutex<VecDeque<Job>>>,
}

impl SimBackground {
    /// Runs every queued job, oldest first.
    pub(crate) fn run_queued(&self) {
        loop {
            let Some(job) = self.jobs.lock().pop_front() else {
                return;
            };
            job();
        }
    }
}

impl Background for SimBackground {
    fn spawn(&self, job: Job) {
        self.jobs.lock().push_back(job);
    }
}
