//! The handler thread pool: a fixed number of named threads running `Service::call` for
//! jobs the event loop hands over through a bounded queue, so a slow handler never stalls
//! socket I/O.
//!
//! The queue is a `Mutex<VecDeque>` + `Condvar` rather than a crossbeam channel: measured
//! on 2 cores, crossbeam's receive spins and yields before parking, and with several idle
//! workers that cost more CPU per call than the handler hand-off itself. Here an idle
//! worker sleeps at once and is woken only when a job arrives, and the most recently idle
//! worker is woken first (a FIFO wake-up rotates jobs through cold threads).
//!
//! Invariants: the queue holds at most `capacity` jobs (the event loop answers
//! ResourceExhausted when it is full); a panicking handler is contained (its responder
//! answers `Internal` while unwinding) and the worker lives on; once closed, queued jobs
//! are dropped unrun (their responders answer connections that are closing anyway).

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::service::{Responder, Service};

/// One request for a handler.
pub(crate) struct Job {
    pub(crate) service: Arc<dyn Service>,
    pub(crate) method: String,
    pub(crate) body: Bytes,
    pub(crate) responder: Responder,
}

impl Job {
    /// Runs the handler, containing a panic.
    pub(crate) fn run(self) {
        let Job {
            service,
            method,
            body,
            responder,
        } = self;
        let outcome = catch_unwind(AssertUnwindSafe(|| service.call(&method, body, responder)));
        if outcome.is_err() {
            tracing::error!(service = service.name(), %method, "handler panicked");
        }
    }
}

/// Why a job was not queued; the job comes back.
pub(crate) enum PushError {
    Full(Job),
    Closed(Job),
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Sleeping workers, most recently idle last: a job wakes the top one (LIFO keeps one
    /// hot worker busy instead of rotating through cold ones).
    idle_workers: Vec<usize>,
}

/// A bounded multi-consumer job queue whose consumers sleep without spinning.
pub(crate) struct JobQueue {
    state: Mutex<QueueState>,
    /// One per worker, so a job wakes exactly the worker chosen.
    wakeups: Vec<Condvar>,
    capacity: usize,
}

impl JobQueue {
    fn new(capacity: usize, workers: usize) -> JobQueue {
        JobQueue {
            state: Mutex::new(QueueState::default()),
            wakeups: (0..workers).map(|_| Condvar::new()).collect(),
            capacity: capacity.max(1),
        }
    }

    /// Queues `job` unless the queue is full or closed.
    pub(crate) fn try_push(&self, job: Job) -> Result<(), PushError> {
        let mut state = self.state.lock();
        if state.closed {
            return Err(PushError::Closed(job));
        }
        if state.jobs.len() >= self.capacity {
            return Err(PushError::Full(job));
        }
        state.jobs.push_back(job);
        let wake = state.idle_workers.pop();
        drop(state);
        if let Some(worker) = wake.and_then(|worker| self.wakeups.get(worker)) {
            worker.notify_one();
        }
        Ok(())
    }

    /// The next job for `worker`, sleeping until there is one; `None` once closed.
    fn pop(&self, worker: usize) -> Option<Job> {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            let wakeup = self.wakeups.get(worker)?;
            state.idle_workers.push(worker);
            wakeup.wait(&mut state);
            // Woken by a push (which took us off the idle list) or by close; on a spurious
            // wake-up we are still listed, so take us off before listing us again.
            state.idle_workers.retain(|&idle| idle != worker);
        }
    }

    /// Closes the queue and drops the jobs still in it (outside the lock).
    fn close(&self) {
        let dropped = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.jobs)
        };
        for wakeup in &self.wakeups {
            wakeup.notify_all();
        }
        drop(dropped);
    }
}

/// The pool of handler threads.
pub(crate) struct WorkerPool {
    queue: Arc<JobQueue>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `threads` workers behind a queue of `queue_capacity` jobs.
    pub(crate) fn start(threads: usize, queue_capacity: usize) -> io::Result<WorkerPool> {
        let threads = threads.max(1);
        let mut pool = WorkerPool {
            queue: Arc::new(JobQueue::new(queue_capacity, threads)),
            threads: Vec::new(),
        };
        for index in 0..threads {
            let queue = pool.queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rpc-worker-{index}"))
                .spawn(move || {
                    while let Some(job) = queue.pop(index) {
                        job.run();
                    }
                });
            match spawned {
                Ok(handle) => pool.threads.push(handle),
                Err(e) => {
                    pool.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    /// The queue the event loop pushes jobs into.
    pub(crate) fn queue(&self) -> Arc<JobQueue> {
        self.queue.clone()
    }

    /// Drops queued jobs, lets running handlers finish, and joins every worker.
    pub(crate) fn shutdown(&mut self) {
        self.queue.close();
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!("an rpc worker thread panicked outside a handler");
            }
        }
    }
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}
