//! THREAD: one per `Channel`. Owns the poller and the read side of the connection:
//! connects (resolving the address at each attempt), reads and decodes replies, completes
//! pending calls, times out async calls, and reconnects with capped exponential backoff.
//!
//! Invariants:
//! - at most one connection is active; its mio token is its connection id, and events for
//!   any other token are ignored;
//! - the link state is changed *before* a dead connection's pending calls are failed, so a
//!   new call never lands on a connection that is being torn down (and one that raced it
//!   is refused by the closed writer);
//! - the link is `Resolving` only inside `start_attempt`, never while callbacks run on this
//!   thread, so a callback's own call never waits for this thread;
//! - the planned wake-up time is published to the pending map before every poll, so a call
//!   with an earlier deadline wakes the thread;
//! - on exit every pending call is completed with `Shutdown`.

use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::call::{CallRecord, ClientConn};
use super::{complete_call, ChannelShared, Link};
use crate::frame::{Frame, FrameDecoder, FrameKind};
use crate::socket_writer::SocketWriter;
use crate::{Code, RpcError, Status};

pub(crate) const WAKER_TOKEN: Token = Token(0);
const READ_SCRATCH_BYTES: usize = 64 * 1024;
const READ_BUFFER_SHRINK_BYTES: usize = 1024 * 1024;

/// Starts the I/O thread; `None` (logged) if the thread cannot be spawned.
pub(crate) fn spawn(shared: Arc<ChannelShared>, poll: Poll) -> Option<JoinHandle<()>> {
    let io = IoThread {
        backoff: shared.config.reconnect_backoff_min,
        shared: shared.clone(),
        poll,
        active: None,
        retry_at: None,
        next_conn_id: 1,
        scratch: vec![0; READ_SCRATCH_BYTES],
    };
    let spawned = std::thread::Builder::new()
        .name(format!("rpc-channel-{}", shared.addr))
        .spawn(move || io.run());
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(addr = %shared.addr, "could not start the channel's I/O thread: {e}");
            None
        }
    }
}

/// The connection being established or in use, as the I/O thread sees it.
struct ActiveConn {
    conn: Arc<ClientConn>,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    connected: bool,
    connect_deadline: Instant,
    replies_received: u64,
}

struct IoThread {
    shared: Arc<ChannelShared>,
    poll: Poll,
    active: Option<ActiveConn>,
    /// The wait before the next attempt after a failure.
    backoff: Duration,
    /// When the next attempt starts (while there is no active connection).
    retry_at: Option<Instant>,
    next_conn_id: usize,
    scratch: Vec<u8>,
}

impl IoThread {
    fn run(mut self) {
        let _ = self.shared.io_thread_id.set(std::thread::current().id());
        let mut events = Events::with_capacity(256);
        self.start_attempt();
        while !self.shared.is_shutting_down() {
            let timeout = self.plan_wake(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(addr = %self.shared.addr, "channel poll failed, stopping: {e}");
                break;
            }
            for event in events.iter() {
                if event.token() != WAKER_TOKEN {
                    self.handle_event(event);
                }
            }
            self.handle_timers(Instant::now());
        }
        self.finish();
    }

    /// The poll timeout: the earliest of the async deadlines, the connect deadline and the
    /// next retry. Publishes it so that callers with earlier deadlines wake us.
    fn plan_wake(&self, now: Instant) -> Option<Duration> {
        let connect_deadline = self
            .active
            .as_ref()
            .filter(|active| !active.connected)
            .map(|active| active.connect_deadline);
        let mut pending = self.shared.pending.lock();
        let wake = [connect_deadline, self.retry_at, pending.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        pending.set_planned_wake(wake);
        wake.map(|wake| wake.saturating_duration_since(now))
    }

    fn handle_timers(&mut self, now: Instant) {
        let expired = self.shared.pending.lock().remove_expired(now);
        for record in expired {
            let sent = record.sent();
            complete_call(record, Err(RpcError::Timeout { sent }));
        }
        let connect_timed_out = self
            .active
            .as_ref()
            .is_some_and(|active| !active.connected && now >= active.connect_deadline);
        if connect_timed_out {
            let timeout = self.shared.config.connect_timeout;
            self.attempt_failed(&format!("connect timed out after {timeout:?}"));
        }
        if self.active.is_none() && self.retry_at.is_some_and(|at| now >= at) {
            self.start_attempt();
        }
    }

    fn start_attempt(&mut self) {
        self.retry_at = None;
        self.shared.set_link(Link::Resolving);
        let addr = match resolve(&self.shared.addr) {
            Ok(addr) => addr,
            Err(reason) => return self.attempt_failed(&reason),
        };
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return self.attempt_failed(&format!("connect to {addr} failed: {e}")),
        };
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id), interest)
        {
            return self.attempt_failed(&format!("could not register the socket: {e}"));
        }
        let config = &self.shared.config;
        let conn = Arc::new(ClientConn {
            id: id as u64,
            writer: SocketWriter::new(stream, false, config.max_queued_request_bytes, None),
        });
        self.active = Some(ActiveConn {
            conn: conn.clone(),
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(config.max_frame_bytes),
            connected: false,
            connect_deadline: later_by(config.connect_timeout),
            replies_received: 0,
        });
        self.shared.set_link(Link::Connecting(conn));
    }

    /// A connect attempt (or resolution) failed: fail its calls and back off.
    fn attempt_failed(&mut self, reason: &str) {
        let addr = &self.shared.addr;
        let message = format!("cannot connect to {addr}: {reason}");
        tracing::debug!(%addr, backoff = ?self.backoff, "{message}");
        self.shared.set_link(Link::Failed(message.clone()));
        if let Some(active) = self.active.take() {
            self.fail_connection_calls(&active.conn, &message, |_| {
                RpcError::Unreachable(message.clone())
            });
        }
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        self.retry_at = Some(later_by(self.backoff));
        self.backoff = self
            .backoff
            .saturating_mul(2)
            .min(self.shared.config.reconnect_backoff_max);
    }

    /// Closes `conn` and completes every call that was on it with `error(record)`.
    fn fail_connection_calls(
        &self,
        conn: &ClientConn,
        reason: &str,
        error: impl Fn(&CallRecord) -> RpcError,
    ) {
        conn.writer.close(reason);
        let failed = self.shared.pending.lock().remove_connection(conn.id);
        for record in failed {
            let error = error(&record);
            complete_call(record, Err(error));
        }
    }

    fn handle_event(&mut self, event: &Event) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        if event.token() != Token(active.conn.id as usize) {
            return; // a late event for a connection already gone
        }
        if !active.connected {
            self.check_connect();
            if !self.active.as_ref().is_some_and(|active| active.connected) {
                return;
            }
        }
        if event.is_writable() {
            if let Some(active) = &self.active {
                active.conn.writer.flush();
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let fin_may_be_queued = event.is_read_closed() || event.is_error();
            if let Err(reason) = self.read_replies(!fin_may_be_queued) {
                self.connection_lost(&reason);
            }
        }
    }

    /// Finishes a non-blocking connect if the socket says it is done.
    fn check_connect(&mut self) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let stream = active.conn.writer.stream();
        let failure = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // in progress
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failure {
            return self.attempt_failed(&e.to_string());
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(addr = %self.shared.addr, "could not set TCP_NODELAY: {e}");
        }
        let conn = active.conn.clone();
        if let Some(active) = self.active.as_mut() {
            active.connected = true;
        }
        tracing::debug!(addr = %self.shared.addr, "connected");
        self.shared.set_link(Link::Connected(conn.clone()));
        conn.writer.set_connected();
    }

    /// Reads and delivers every reply available. `Err(reason)` when the connection is lost.
    /// With `stop_at_short_read`, a read that does not fill the buffer ends the turn (see
    /// the server's `Connection::read_frames`).
    fn read_replies(&mut self, stop_at_short_read: bool) -> Result<(), String> {
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        loop {
            let mut stream = active.conn.writer.stream();
            let read = stream.read(&mut self.scratch);
            let n = match read {
                Ok(0) => return Err("the server closed the connection".to_owned()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            };
            active.read_buf.extend_from_slice(&self.scratch[..n]);
            let mut frames = Vec::new();
            loop {
                match active.decoder.decode(&mut active.read_buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return Err(format!("bad frame from the server: {e}")),
                }
            }
            if active.read_buf.is_empty() && active.read_buf.capacity() > READ_BUFFER_SHRINK_BYTES {
                active.read_buf = BytesMut::new();
            }
            if active.replies_received == 0 && !frames.is_empty() {
                // The connection works: the next disconnect reconnects at once.
                self.backoff = self.shared.config.reconnect_backoff_min;
            }
            active.replies_received += frames.len() as u64;
            // Calls issued while a batch of replies is delivered (from callbacks, or by the
            // callers it wakes) leave together in one write when the batch is done. A lone
            // reply is not corked: its caller would only contend for the writer lock.
            let cork = frames.len() > 1;
            if cork {
                active.conn.writer.cork();
            }
            deliver_replies(&self.shared, frames);
            if cork {
                active.conn.writer.uncork();
            }
            if stop_at_short_read && n < self.scratch.len() {
                // A short read drained the socket; new data raises a new edge.
                return Ok(());
            }
        }
    }

    /// The established connection broke: fail its calls, then reconnect (at once if it had
    /// been healthy, after the backoff otherwise).
    fn connection_lost(&mut self, reason: &str) {
        let Some(active) = self.active.take() else {
            return;
        };
        let addr = &self.shared.addr;
        tracing::warn!(%addr, %reason, "connection lost");
        let healthy = active.replies_received > 0;
        let message = format!("connection to {addr} lost: {reason}");
        // Not `Resolving`: the failed calls' callbacks run next, on this thread, and a call
        // they make must fail fast rather than wait for this thread to resolve.
        self.shared.set_link(Link::Failed(message.clone()));
        self.fail_connection_calls(&active.conn, &message, |record| RpcError::Disconnected {
            sent: record.sent(),
        });
        if healthy {
            self.start_attempt();
        } else {
            self.schedule_retry();
        }
    }

    fn finish(&mut self) {
        // Unless shutting down (then the link already says so), calls must not wait for a
        // thread that is gone.
        self.shared.set_link(Link::Failed(format!(
            "the channel to {} stopped",
            self.shared.addr
        )));
        if let Some(active) = self.active.take() {
            active.conn.writer.close("channel shut down");
        }
        let pending = self.shared.pending.lock().remove_all();
        for record in pending {
            complete_call(record, Err(RpcError::Shutdown));
        }
        tracing::debug!(addr = %self.shared.addr, "channel I/O thread stopped");
    }
}

/// Completes the calls `frames` answer (one lock for the whole batch).
fn deliver_replies(shared: &ChannelShared, frames: Vec<Frame>) {
    let mut answered = Vec::with_capacity(frames.len());
    {
        let mut pending = shared.pending.lock();
        for frame in frames {
            match pending.remove(frame.header.request_id) {
                Some(record) => answered.push((record, frame)),
                None => tracing::debug!(
                    request_id = frame.header.request_id,
                    "reply for a call no longer pending (timed out?)"
                ),
            }
        }
    }
    for (record, frame) in answered {
        let header = frame.header;
        let result = match header.frame_kind() {
            Some(FrameKind::Response) => Ok(frame.body),
            Some(FrameKind::Error) => Err(RpcError::Remote(Status::new(
                Code::from_u32(header.error_code),
                header.error_message,
            ))),
            _ => Err(RpcError::Decode(format!(
                "the server answered with a frame of kind {}",
                header.kind
            ))),
        };
        complete_call(record, result);
    }
}

/// Now plus `delay`, saturating at a year so absurd configured values cannot overflow.
fn later_by(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    let mut addrs = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{addr:?} resolved to no address"))
}
