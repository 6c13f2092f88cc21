//! The handler thread pool: a fixed number of named threads running `Service::call` for
//! jobs the event loop hands over through a bounded queue, so a slow handler never stalls
//! socket I/O.
//!
//! Invariants: the queue is bounded (the event loop answers ResourceExhausted when it is
//! full); a panicking handler is contained (its responder answers `Internal` while
//! unwinding) and the worker lives on; once stopping, queued jobs are dropped unrun (their
//! responders answer `Internal` to connections that are closing anyway).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};

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

/// The pool of handler threads.
#[derive(Debug)]
pub(crate) struct WorkerPool {
    sender: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl WorkerPool {
    /// Starts `threads` workers behind a queue of `queue_capacity` jobs.
    pub(crate) fn start(threads: usize, queue_capacity: usize) -> io::Result<WorkerPool> {
        let (sender, receiver) = crossbeam_channel::bounded(queue_capacity.max(1));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut pool = WorkerPool {
            sender: Some(sender),
            threads: Vec::new(),
            stopping: stopping.clone(),
        };
        for index in 0..threads.max(1) {
            let receiver: Receiver<Job> = receiver.clone();
            let stopping = stopping.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rpc-worker-{index}"))
                .spawn(move || run_worker(&receiver, &stopping));
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

    /// A sender for the event loop. Workers exit once every sender is gone.
    pub(crate) fn sender(&self) -> Option<Sender<Job>> {
        self.sender.clone()
    }

    /// Drops queued jobs, lets running handlers finish, and joins every worker. The event
    /// loop must have dropped its sender first (or be about to).
    pub(crate) fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.sender = None;
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!("an rpc worker thread panicked outside a handler");
            }
        }
    }
}

fn run_worker(receiver: &Receiver<Job>, stopping: &AtomicBool) {
    while let Ok(job) = receiver.recv() {
        if stopping.load(Ordering::Acquire) {
            continue; // dropped unrun
        }
        job.run();
    }
}
