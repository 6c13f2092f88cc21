//! Work the executor hands to another thread so that its rounds never wait on it: today
//! the file of an application snapshot (hundreds of megabytes and their fsync, seconds on
//! a large data set), during which the driver would otherwise send no heartbeats and its
//! followers would elect another leader.
//!
//! The seam is a trait so that the simulator runs the same jobs deterministically, at
//! points of virtual time it chooses (`sim/host.rs`).

use crossbeam_channel::{unbounded, Sender};
use std::thread::JoinHandle;

/// A unit of background work. It reports back through a channel of its own.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Runs jobs off the executor's thread, in the order given.
pub(crate) trait Background: Send + Sync {
    /// Queues `job`.
    fn spawn(&self, job: Job);
}

/// One long-lived thread running jobs in order; it exits once its sender is dropped (with
/// the executor) and the queued jobs are done.
pub(crate) struct BackgroundThread {
    jobs: Sender<Job>,
}

impl BackgroundThread {
    /// Starts the thread, named `name`.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub(crate) fn start(name: String) -> std::io::Result<(BackgroundThread, JoinHandle<()>)> {
        let (jobs, queue) = unbounded::<Job>();
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            for job in queue {
                job();
            }
        })?;
        Ok((BackgroundThread { jobs }, handle))
    }
}

impl Background for BackgroundThread {
    fn spawn(&self, job: Job) {
        // Only fails once the thread is gone (it never exits while we hold the sender).
        let _ = self.jobs.send(job);
    }
}
