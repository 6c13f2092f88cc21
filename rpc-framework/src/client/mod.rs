//! The client side: `Channel`, one multiplexed TCP connection to one server, shared by any
//! number of threads (`Clone + Send + Sync`).
//!
//! Callers encode their request and write it straight to the socket (through the combining
//! `SocketWriter`); the channel's I/O thread reads replies, matches them to pending calls by
//! request id, enforces async deadlines and reconnects.
//!
//! # Connection rules
//! - The channel connects in the background from `Channel::new` on; nothing blocks.
//! - While a connect attempt is in progress, new calls queue and wait for it (up to their
//!   deadline). If it fails, they fail with `Unreachable`.
//! - After a failed attempt the channel backs off (`reconnect_backoff_min`, doubling up to
//!   `reconnect_backoff_max`); calls made meanwhile fail fast with `Unreachable` (the request
//!   was definitely not sent), so a dead server never piles up calls.
//! - When an established connection breaks, its pending calls fail with
//!   `Disconnected { sent }`, and a new attempt starts at once if that connection had
//!   delivered at least one reply (else after the backoff, so a server that accepts and
//!   drops never makes us spin).
//!
//! # Limits
//! At most `max_pending_calls` calls may be pending and `max_queued_request_bytes` request
//! bytes queued; over either, a call fails at once with `RpcError::Overloaded` (nothing is
//! sent). Blocking instead would deadlock callbacks that issue calls.
//!
//! Invariant: every call is completed exactly once: with its reply, its error, a timeout, a
//! disconnect, or `Shutdown` when the I/O thread exits.

mod call;
mod io_thread;
mod pending;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mio::Waker;
use parking_lot::{Condvar, Mutex};

use crate::frame::{encode_frame, FrameError, RpcHeader, DEFAULT_MAX_FRAME_BYTES};
use crate::socket_writer::SubmitError;
use crate::RpcError;
use call::{CallRecord, CallResult, CallWaiter, ClientConn, Completion};
use pending::PendingCalls;

/// Limits and timings of a `Channel`.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// How long one connect attempt may take.
    pub connect_timeout: Duration,
    /// Wait after the first failed connect attempt.
    pub reconnect_backoff_min: Duration,
    /// Cap of the doubling wait between failed attempts.
    pub reconnect_backoff_max: Duration,
    /// Largest frame sent or accepted (the length prefix's value).
    pub max_frame_bytes: usize,
    /// Calls pending at once; over it, calls fail with `Overloaded`.
    pub max_pending_calls: usize,
    /// Request bytes queued but not yet written; over it, calls fail with `Overloaded`.
    pub max_queued_request_bytes: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff_min: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_secs(1),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_pending_calls: 16 * 1024,
            max_queued_request_bytes: 2 * DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Per-call options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOptions {
    /// How long to wait for the reply; `None` waits until the reply, a disconnect or
    /// shutdown.
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// The default timeout: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Options with the given timeout.
    pub fn with_timeout(timeout: Duration) -> CallOptions {
        CallOptions {
            timeout: Some(timeout),
        }
    }

    fn deadline(&self, now: Instant) -> Option<Instant> {
        self.timeout.and_then(|timeout| now.checked_add(timeout))
    }
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions::with_timeout(CallOptions::DEFAULT_TIMEOUT)
    }
}

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
    /// # Errors
    /// See `RpcError`; `may_have_executed` tells whether a retry could run it twice.
    pub fn call(
        &self,
        service: &str,
        method: &str,
        body: Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, RpcError> {
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

    /// Shuts the channel down: pending and later calls fail with `Shutdown`. Returns at
    /// once; the I/O thread is joined when the last clone is dropped.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Whether a connection is established right now (best effort: it may break a moment
    /// later).
    pub fn is_connected(&self) -> bool {
        matches!(*self.shared.link.lock(), Link::Connected(_))
    }

    /// Encodes, registers and writes one call; returns its request id. On failure, returns
    /// the error and the completion (if it was not consumed) so the caller can deliver it.
    /// The I/O thread enforces the deadline of async calls; blocking callers their own.
    fn submit(
        &self,
        service: &str,
        method: &str,
        body: &[u8],
        deadline: Option<Instant>,
        completion: Completion,
    ) -> Result<u64, (RpcError, Option<Completion>)> {
        let tracked_deadline = match completion {
            Completion::Callback(_) => deadline,
            Completion::Waiter(_) => None,
        };
        let shared = &self.shared;
        let id = shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::new();
        let header = RpcHeader::request(id, service, method);
        if let Err(e) = encode_frame(&mut frame, &header, body, shared.config.max_frame_bytes) {
            return Err((frame_error(e), Some(completion)));
        }
        let (conn, connected) = match self.current_connection(deadline) {
            Ok(found) => found,
            Err(error) => return Err((error, Some(completion))),
        };
        let mut completion = Some(completion);
        let mut must_wake = false;
        let submitted = conn.writer.submit(&frame, |start_offset| {
            let Some(completion_now) = completion.take() else {
                return Err(RpcError::Shutdown); // unreachable: the hook runs once
            };
            let record = CallRecord {
                conn: conn.clone(),
                start_offset,
                completion: completion_now,
            };
            let mut pending = shared.pending.lock();
            match pending.insert(id, conn.id, tracked_deadline, record) {
                Ok(inserted) => {
                    must_wake = inserted.must_wake_io_thread;
                    Ok(())
                }
                Err(record) => {
                    completion = Some(record.completion);
                    Err(RpcError::Overloaded(format!(
                        "{} calls already pending on the channel to {}",
                        pending.max_calls(),
                        shared.addr
                    )))
                }
            }
        });
        match submitted {
            Ok(_) => {
                if must_wake {
                    shared.wake_io_thread();
                }
                Ok(id)
            }
            Err(SubmitError::Refused(error)) => Err((error, completion)),
            Err(SubmitError::Closed(reason)) if connected => {
                tracing::debug!(addr = %shared.addr, %reason, "call raced a disconnect");
                Err((RpcError::Disconnected { sent: false }, completion))
            }
            Err(SubmitError::Closed(reason)) => Err((RpcError::Unreachable(reason), completion)),
            Err(SubmitError::QueueFull {
                queued_bytes,
                max_bytes,
            }) => Err((
                RpcError::Overloaded(format!(
                    "{queued_bytes} request bytes already queued (max {max_bytes})"
                )),
                completion,
            )),
        }
    }
}

impl Channel {
    /// The connection new calls go on, waiting (until `deadline`) while the address is
    /// being resolved. `bool`: whether it is established.
    fn current_connection(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(Arc<ClientConn>, bool), RpcError> {
        let shared = &self.shared;
        let mut link = shared.link.lock();
        loop {
            match &*link {
                Link::Connecting(conn) => return Ok((conn.clone(), false)),
                Link::Connected(conn) => return Ok((conn.clone(), true)),
                Link::Failed(reason) => return Err(RpcError::Unreachable(reason.clone())),
                Link::Shutdown => return Err(RpcError::Shutdown),
                Link::Resolving => match deadline {
                    Some(deadline) => {
                        if shared
                            .link_changed
                            .wait_until(&mut link, deadline)
                            .timed_out()
                        {
                            return Err(RpcError::Timeout { sent: false });
                        }
                    }
                    None => shared.link_changed.wait(&mut link),
                },
            }
        }
    }
}

fn frame_error(error: FrameError) -> RpcError {
    match error {
        FrameError::TooLarge {
            size_bytes,
            max_bytes,
        } => RpcError::FrameTooLarge {
            size_bytes,
            max_bytes,
        },
        other => RpcError::Decode(other.to_string()),
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
