//! The client side: `Channel`, one multiplexed TCP connection to one server, shared by any
//! number of threads (`Clone + Send + Sync`).
//!
//! Callers encode their request and write it straight to the socket (through the combining
//! `SocketWriter`); the channel's I/O thread reads replies, matches them to pending calls by
//! request id, enforces async deadlines and reconnects. The connection rules callers see
//! are documented on `Channel`.
//!
//! Invariant: every call is completed exactly once: with its reply, its error, a timeout, a
//! disconnect, or `Shutdown` when the I/O thread exits.

mod call;
mod io_thread;
mod options;
mod pending;
mod submit;

pub use options::{CallOptions, ChannelConfig};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, ThreadId};
use std::time::Instant;

use bytes::Bytes;
use mio::Waker;
use parking_lot::{Condvar, Mutex};

use crate::RpcError;
use call::{CallRecord, CallResult, CallWaiter, ClientConn, Completion};
use pending::PendingCalls;

/// The channel's connection state, as callers see it.
#[derive(Debug)]
pub(crate) enum Link {
    /// The I/O thread is resolving the address for the next attempt (brief): calls wait.
    Resolving,
    /// An attempt is in progress: calls queue on it.
    Connecting(Arc<ClientConn>),
    Connected(Arc<ClientConn>),
    /// The last attempt failed; calls fail fast until the next one starts.
    Failed(String),
    Shutdown,
}

/// State shared by every clone of a channel and its I/O thread.
#[derive(Debug)]
pub(crate) struct ChannelShared {
    pub(crate) addr: String,
    pub(crate) config: ChannelConfig,
    next_request_id: AtomicU64,
    pub(crate) link: Mutex<Link>,
    /// Signalled whenever `link` changes.
    link_changed: Condvar,
    pub(crate) pending: Mutex<PendingCalls<CallRecord>>,
    waker: Option<Waker>,
    shutdown: AtomicBool,
    /// Set by the I/O thread when it starts.
    pub(crate) io_thread_id: OnceLock<ThreadId>,
}

impl ChannelShared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Replaces the link state unless the channel is shutting down.
    pub(crate) fn set_link(&self, link: Link) {
        let mut current = self.link.lock();
        if !self.is_shutting_down() {
            *current = link;
            self.link_changed.notify_all();
        }
    }

    fn begin_shutdown(&self) {
        {
            let mut link = self.link.lock();
            self.shutdown.store(true, Ordering::Release);
            *link = Link::Shutdown;
            self.link_changed.notify_all();
        }
        self.wake_io_thread();
    }

    fn wake_io_thread(&self) {
        if let Some(waker) = &self.waker {
            if let Err(e) = waker.wake() {
                tracing::error!(addr = %self.addr, "could not wake the channel's I/O thread: {e}");
            }
        }
    }
}

/// Stops and joins the I/O thread when the last `Channel` clone is dropped.
#[derive(Debug)]
struct ChannelOwner {
    shared: Arc<ChannelShared>,
    io_thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ChannelOwner {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
        if let Some(handle) = self.io_thread.lock().take() {
            // The last clone may be dropped by a callback on the I/O thread itself.
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!(addr = %self.shared.addr, "the channel's I/O thread panicked");
            }
        }
    }
}

/// A client connection to one server, multiplexing concurrent calls by request id.
/// Cheap to clone; every clone shares the connection. Dropping the last clone shuts the
/// channel down and joins its I/O thread.
///
/// # Connection rules
/// - The channel connects in the background from `Channel::new` on; nothing blocks.
/// - While a connect attempt is in progress, new calls queue and wait for it (up to their
///   deadline). If it fails, they fail with `Unreachable`.
/// - After a failed attempt the channel backs off (`reconnect_backoff_min`, doubling up to
///   `reconnect_backoff_max`); calls made meanwhile fail fast with `Unreachable` (the request
///   was definitely not sent), so a dead server never piles up calls.
/// - When an established connection breaks, its pending calls fail with
///   `Disconnected { sent }`, and a new attempt starts at once if that connection had
///   delivered at least one reply (else after the backoff, so a server that accepts and
///   drops never makes us spin).
///
/// # Limits
/// At most `max_pending_calls` calls may be pending and `max_queued_request_bytes` request
/// bytes queued; over either, a call fails at once with `RpcError::Overloaded` (nothing is
/// sent). Blocking instead would deadlock callbacks that issue calls.
///
/// # Name resolution
/// `host:port` is resolved with the system resolver on the I/O thread at every connect
/// attempt (`Link::Resolving`); calls made meanwhile wait for it, up to their deadline.
#[derive(Clone)]
pub struct Channel {
    shared: Arc<ChannelShared>,
    _owner: Arc<ChannelOwner>,
}

impl Channel {
    /// A channel to `addr` (`"host:port"`, resolved at each connect attempt). Starts its
    /// I/O thread and the first connect attempt in the background; never blocks.
    ///
    /// If the I/O thread cannot be started (out of threads or file descriptors) the error
    /// is logged and every call fails with `Unreachable`.
    pub fn new(addr: impl Into<String>, config: ChannelConfig) -> Channel {
        let addr = addr.into();
        let poll_and_waker = mio::Poll::new().and_then(|poll| {
            let waker = Waker::new(poll.registry(), io_thread::WAKER_TOKEN)?;
            Ok((poll, waker))
        });
        let (poll, waker) = match poll_and_waker {
            Ok((poll, waker)) => (Some(poll), Some(waker)),
            Err(e) => {
                tracing::error!(%addr, "could not create the channel's poller: {e}");
                (None, None)
            }
        };
        let shared = Arc::new(ChannelShared {
            next_request_id: AtomicU64::new(1),
            link: Mutex::new(Link::Resolving),
            link_changed: Condvar::new(),
            pending: Mutex::new(PendingCalls::new(config.max_pending_calls)),
            waker,
            shutdown: AtomicBool::new(false),
            io_thread_id: OnceLock::new(),
            addr,
            config,
        });
        let io_thread = poll.and_then(|poll| io_thread::spawn(shared.clone(), poll));
        if io_thread.is_none() {
            shared.set_link(Link::Failed(format!(
                "the channel to {} could not start its I/O thread",
                shared.addr
            )));
        }
        let owner = Arc::new(ChannelOwner {
            shared: shared.clone(),
            io_thread: Mutex::new(io_thread),
        });
        Channel {
            shared,
            _owner: owner,
        }
    }

    /// The server address this channel connects to.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Calls `service`/`method` with an encoded request and blocks until the reply, an
    /// error, or the deadline (`options.timeout`).
    ///
    /// Never call it from a `call_async` callback of the same channel: that callback runs
    /// on the thread that would deliver the reply. Such a call fails at once with
    /// `Unreachable` instead of deadlocking.
    ///
    /// # Errors
    /// See `RpcError`; `may_have_executed` tells whether a retry could run it twice.
    pub fn call(
        &self,
        service: &str,
        method: &str,
        body: Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, RpcError> {
        if self.on_io_thread() {
            return Err(RpcError::Unreachable(
                "a blocking call from the channel's own I/O thread (a callback) would deadlock"
                    .to_owned(),
            ));
        }
        let deadline = options.deadline(Instant::now());
        let waiter = Arc::new(CallWaiter::default());
        let completion = Completion::Waiter(waiter.clone());
        let id = self
            .submit(service, method, &body, deadline, completion)
            .map_err(|(error, _)| error)?;
        if let Some(result) = waiter.wait_until(deadline) {
            return result;
        }
        let timed_out = self.shared.pending.lock().remove(id);
        match timed_out {
            Some(record) => Err(RpcError::Timeout {
                sent: record.sent(),
            }),
            // Someone removed it just now and is delivering the result.
            None => waiter.wait_until(None).unwrap_or(Err(RpcError::Shutdown)),
        }
    }

    /// Starts a call without blocking; `done` receives the result.
    ///
    /// `done` runs on the channel's I/O thread (it must be quick and must not block: no
    /// other reply on this channel is processed meanwhile), except when the call fails
    /// before it is queued (`Unreachable`, `Overloaded`, `FrameTooLarge`, `Shutdown`): then
    /// it runs on the calling thread before `call_async` returns.
    pub fn call_async(
        &self,
        service: &str,
        method: &str,
        body: Bytes,
        options: &CallOptions,
        done: impl FnOnce(Result<Bytes, RpcError>) + Send + 'static,
    ) {
        let deadline = options.deadline(Instant::now());
        let completion = Completion::Callback(Box::new(done));
        let submitted = self.submit(service, method, &body, deadline, completion);
        if let Err((error, Some(completion))) = submitted {
            completion.complete(Err(error));
        }
    }

    /// Sends a one-way call: the server runs the handler and sends no reply, so there is
    /// no result and no deadline; the server only logs a failure. `Ok` means the frame was
    /// handed to the connection (written, or queued while it connects); it is lost if the
    /// connection fails first. Never blocks, except for at most 10 ms while the channel
    /// resolves its address at a connection attempt. Meant for protocols that acknowledge at their
    /// own level (Raft's responses are messages of their own), where a reply per frame
    /// would only cost a frame, a syscall and a wake-up.
    ///
    /// # Errors
    /// [`RpcError::Unreachable`] / [`RpcError::Disconnected`] / [`RpcError::Shutdown`]
    /// when there is no connection to write to, [`RpcError::Overloaded`] when the
    /// connection's send queue is full, [`RpcError::FrameTooLarge`], or
    /// [`RpcError::Timeout`] while the address is being resolved.
    pub fn send_one_way(&self, service: &str, method: &str, body: &[u8]) -> Result<(), RpcError> {
        self.submit_one_way(service, method, body)
    }

    /// Shuts the channel down: pending and later calls fail with `Shutdown`. Returns at
    /// once; the I/O thread is joined when the last clone is dropped.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    fn on_io_thread(&self) -> bool {
        self.shared.io_thread_id.get() == Some(&std::thread::current().id())
    }

    /// Whether a connection is established right now (best effort: it may break a moment
    /// later).
    pub fn is_connected(&self) -> bool {
        matches!(*self.shared.link.lock(), Link::Connected(_))
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("addr", &self.shared.addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Delivers `result` to the call `record` (used by the I/O thread).
pub(crate) fn complete_call(record: CallRecord, result: CallResult) {
    record.completion.complete(result);
}
