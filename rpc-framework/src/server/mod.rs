//! The server side: `Provider` collects services, `serve` binds and starts one event-loop
//! thread plus a worker pool, and the returned `ProviderHandle` stops and joins them.
//!
//! Invariant: when `ProviderHandle::shutdown` (or its `Drop`) returns, the listener and
//! every connection are closed and every thread the provider started has been joined.

mod admission;
pub(crate) mod budget;
pub(crate) mod connection;
mod event_loop;
mod workers;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Interest, Poll, Waker};

use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::service::{Service, ServiceRegistry};
use budget::BufferBudget;
use event_loop::{EventLoop, LISTENER_TOKEN, WAKER_TOKEN};
use workers::WorkerPool;

/// Limits and sizes of a `Provider`.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Threads running handlers of services registered with `register` (not inline).
    pub worker_threads: usize,
    /// Requests waiting for a free worker; over it, requests are answered
    /// `ResourceExhausted`.
    pub worker_queue_capacity: usize,
    /// Largest frame accepted or sent (the length prefix's value). A client that announces
    /// a larger one is disconnected.
    pub max_frame_bytes: usize,
    /// Open ordinary connections (not promoted to priority, see
    /// `Responder::promote_connection`). A newcomer beyond it is still accepted: the
    /// ordinary connection heard from least recently is closed to make room (logged). The
    /// same happens when `accept` runs out of file descriptors.
    pub max_connections: usize,
    /// Connections a handler may promote to priority; promotions beyond it are ignored.
    pub max_priority_connections: usize,
    /// Bytes the provider may buffer for ordinary connections altogether: partial request
    /// frames beyond 64 KiB per connection, request bodies until they are answered, and
    /// queued replies. A request over it is answered `ResourceExhausted`; a partial frame
    /// or a reply over it closes its connection.
    pub max_buffered_bytes: usize,
    /// Bytes above `max_buffered_bytes` that only priority connections may use, so peers
    /// keep working while clients exhaust the budget.
    pub reserved_priority_bytes: usize,
    /// An ordinary connection that sends nothing for this long while no call of it is in
    /// progress is closed. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection that has held a partly received frame for this long is closed (a
    /// sender stalled mid-frame must not hold memory forever). `None`: never.
    pub partial_frame_timeout: Option<Duration>,
    /// Calls in progress per connection; over it, requests are answered
    /// `ResourceExhausted` without reaching a handler.
    pub max_pending_calls_per_connection: usize,
    /// Reply bytes queued for a connection that is not reading; over it, the connection is
    /// closed.
    pub max_queued_reply_bytes_per_connection: usize,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            worker_threads: 4,
            worker_queue_capacity: 4096,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            max_priority_connections: 64,
            max_buffered_bytes: 8 * DEFAULT_MAX_FRAME_BYTES,
            reserved_priority_bytes: 4 * DEFAULT_MAX_FRAME_BYTES,
            idle_timeout: Some(Duration::from_secs(300)),
            partial_frame_timeout: Some(Duration::from_secs(30)),
            max_pending_calls_per_connection: 1024,
            max_queued_reply_bytes_per_connection: 2 * DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// A server under construction: register services, then `serve`.
#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    registry: ServiceRegistry,
}

impl Provider {
    /// A provider with no services yet.
    pub fn new(config: ProviderConfig) -> Provider {
        Provider {
            config,
            registry: ServiceRegistry::default(),
        }
    }

    /// Hosts `service`; its handlers run on the worker pool. A later registration under
    /// the same name replaces an earlier one.
    pub fn register(&mut self, service: impl Service) {
        self.registry.insert(Arc::new(service), false);
    }

    /// Hosts `service` with handlers that run directly on the event-loop thread (no
    /// hand-off to the pool: the fastest path).
    ///
    /// # Correctness
    /// The handler must return quickly and never block: while it runs, no connection is
    /// read or written. It may keep the `Responder` and complete it later from any thread.
    pub fn register_inline(&mut self, service: impl Service) {
        self.registry.insert(Arc::new(service), true);
    }

    /// Binds `addr` (SO_REUSEADDR, so a restarted server can take the same port; port 0
    /// picks a free one) and starts serving.
    ///
    /// # Errors
    /// Binding, creating the poller or spawning threads failed.
    pub fn serve(self, addr: SocketAddr) -> io::Result<ProviderHandle> {
        let mut listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER_TOKEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let has_pooled_services = self.registry.has_pooled_services();
        let mut pool = has_pooled_services
            .then(|| {
                WorkerPool::start(
                    self.config.worker_threads,
                    self.config.worker_queue_capacity,
                )
            })
            .transpose()?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let event_loop = EventLoop::new(
            poll,
            listener,
            Arc::new(self.registry),
            pool.as_ref().map(WorkerPool::queue),
            self.config,
            shutdown.clone(),
        );
        let budget = event_loop.budget();
        let spawned = std::thread::Builder::new()
            .name(format!("rpc-server-{}", local_addr.port()))
            .spawn(move || event_loop.run());
        let loop_thread = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                if let Some(pool) = pool.as_mut() {
                    pool.shutdown();
                }
                return Err(e);
            }
        };
        tracing::info!(%local_addr, "rpc server listening");
        Ok(ProviderHandle {
            local_addr,
            shutdown,
            waker,
            loop_thread: Some(loop_thread),
            pool,
            budget,
        })
    }
}

/// A running server. Dropping it shuts it down (see `shutdown`).
pub struct ProviderHandle {
    local_addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    loop_thread: Option<JoinHandle<()>>,
    pool: Option<WorkerPool>,
    budget: Arc<BufferBudget>,
}

impl ProviderHandle {
    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Bytes buffered for connections right now (what `ProviderConfig::max_buffered_bytes`
    /// and `reserved_priority_bytes` bound).
    pub fn buffered_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Stops accepting, closes every connection, drops queued requests, waits for running
    /// handlers to return, and joins every thread. Handlers that never return make this
    /// wait forever: release them first.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(loop_thread) = self.loop_thread.take() else {
            return;
        };
        self.shutdown.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::error!("could not wake the rpc server event loop: {e}");
        }
        if loop_thread.join().is_err() {
            tracing::error!("the rpc server event loop panicked");
        }
        if let Some(pool) = self.pool.as_mut() {
            pool.shutdown();
        }
        tracing::info!(local_addr = %self.local_addr, "rpc server stopped");
    }
}

impl Drop for ProviderHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for ProviderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHandle")
            .field("local_addr", &self.local_addr)
            .field("running", &self.loop_thread.is_some())
            .finish()
    }
}
