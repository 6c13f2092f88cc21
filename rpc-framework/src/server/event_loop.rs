//! THREAD: the Provider's mio event loop. Accepts connections, reads and decodes frames,
//! routes each request to an inline handler or the worker pool, and flushes replies when a
//! socket becomes writable again.
//!
//! Invariants:
//! - it never blocks on anything but `Poll::poll` (handler hand-off is `try_send`);
//! - every connection gets at most `MAX_READS_PER_TURN` reads per round, and one that had
//!   more is revisited next round without waiting for a new edge;
//! - connection tokens are never reused, so a late event for a closed socket is ignored;
//! - replies produced while a connection's read batch is being dispatched are corked and
//!   leave in one write at the end of the batch;
//! - a newcomer is always let in while an ordinary connection can make room for it, and
//!   timed-out connections are closed at the next sweep (`admission.rs` decides which).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::admission::{self, ConnectionView, Timeouts};
use super::budget::{Account, BufferBudget};
use super::connection::{
    BeginCallError, CloseReason, ConnShared, Connection, PrioritySlots, ReadProgress,
};
use super::workers::{Job, JobQueue, PushError};
use super::ProviderConfig;
use crate::frame::{Frame, FrameKind};
use crate::service::{Responder, Route, ServiceRegistry};
use crate::socket_writer::SocketWriter;
use crate::Status;

pub(crate) const LISTENER_TOKEN: Token = Token(0);
pub(crate) const WAKER_TOKEN: Token = Token(1);
const FIRST_CONNECTION_TOKEN: usize = 2;
const READ_SCRATCH_BYTES: usize = 64 * 1024;
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The longest time between two sweeps for timed-out connections.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Routes decoded requests. Kept apart from the connection map so both can be borrowed.
struct Dispatcher {
    registry: Arc<ServiceRegistry>,
    jobs: Option<Arc<JobQueue>>,
    max_pending_calls_per_connection: usize,
}

impl Dispatcher {
    fn dispatch(&self, conn: &Arc<ConnShared>, frame: Frame) -> Result<(), CloseReason> {
        let Frame { header, body } = frame;
        let one_way = match header.frame_kind() {
            Some(FrameKind::Request) => false,
            Some(FrameKind::OneWay) => true,
            _ => {
                return Err(CloseReason::warning(format!(
                    "client sent a frame of kind {} (only requests are allowed)",
                    header.kind
                )))
            }
        };
        let request_id = header.request_id;
        let entry = match self.registry.route(&header.service, &header.method) {
            Route::Found(entry) => entry,
            Route::Unimplemented(status) => {
                tracing::debug!(peer = %conn.peer, one_way, "{}", status.message);
                if !one_way {
                    conn.send_error(request_id, &status);
                }
                return Ok(());
            }
        };
        let charge = body.len();
        if let Err(error) = conn.try_begin_call(self.max_pending_calls_per_connection, charge) {
            let status = Status::resource_exhausted(match error {
                BeginCallError::TooManyCalls => format!(
                    "too many pending calls on this connection (max {})",
                    self.max_pending_calls_per_connection
                ),
                BeginCallError::OverBudget => format!(
                    "the server is overloaded: no memory budget for a {charge}-byte request"
                ),
            });
            if one_way {
                tracing::debug!(peer = %conn.peer, "one-way call dropped: {}", status.message);
            } else {
                conn.send_error(request_id, &status);
            }
            return Ok(());
        }
        let responder = if one_way {
            Responder::for_one_way(conn.clone(), charge)
        } else {
            Responder::for_connection(conn.clone(), request_id, charge)
        };
        let job = Job {
            service: entry.service.clone(),
            method: header.method,
            body,
            responder,
        };
        if entry.inline {
            job.run();
            return Ok(());
        }
        match self.jobs.as_ref().map(|jobs| jobs.try_push(job)) {
            Some(Ok(())) => {}
            Some(Err(PushError::Full(job))) => job.responder.respond(Err(
                Status::resource_exhausted("the server's handler queue is full"),
            )),
            Some(Err(PushError::Closed(job))) => job
                .responder
                .respond(Err(Status::unavailable("the server is shutting down"))),
            None => {}
        }
        Ok(())
    }
}

/// The event loop's state; `run` consumes it on its own thread.
pub(crate) struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    connections: HashMap<usize, Connection>,
    next_token: usize,
    /// Connections whose last turn ended before `WouldBlock`.
    unfinished_reads: Vec<usize>,
    /// `accept` failed (e.g. out of file descriptors): the listener's edge is spent, so
    /// try again after a pause instead of waiting for the next connection to arrive.
    accept_retry_due: bool,
    dispatcher: Dispatcher,
    config: ProviderConfig,
    budget: Arc<BufferBudget>,
    priority_slots: Arc<PrioritySlots>,
    timeouts: Timeouts,
    sweep_interval: Duration,
    next_sweep: Instant,
    shutdown: Arc<AtomicBool>,
    scratch: Vec<u8>,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        listener: TcpListener,
        registry: Arc<ServiceRegistry>,
        jobs: Option<Arc<JobQueue>>,
        config: ProviderConfig,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        let timeouts = Timeouts {
            idle: config.idle_timeout,
            partial_frame: config.partial_frame_timeout,
        };
        let sweep_interval = [timeouts.idle, timeouts.partial_frame]
            .into_iter()
            .flatten()
            .map(|timeout| timeout / 4)
            .fold(MAX_SWEEP_INTERVAL, Duration::min)
            .max(Duration::from_millis(1));
        EventLoop {
            poll,
            listener,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION_TOKEN,
            unfinished_reads: Vec::new(),
            accept_retry_due: false,
            dispatcher: Dispatcher {
                registry,
                jobs,
                max_pending_calls_per_connection: config.max_pending_calls_per_connection,
            },
            budget: BufferBudget::new(config.max_buffered_bytes, config.reserved_priority_bytes),
            priority_slots: PrioritySlots::new(config.max_priority_connections),
            timeouts,
            sweep_interval,
            next_sweep: Instant::now() + sweep_interval,
            config,
            shutdown,
            scratch: vec![0; READ_SCRATCH_BYTES],
        }
    }

    /// The provider's memory budget (for `ProviderHandle::buffered_bytes`).
    pub(crate) fn budget(&self) -> Arc<BufferBudget> {
        self.budget.clone()
    }

    /// Runs until the shutdown flag is set (and the waker fired), then closes everything.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.shutdown.load(Ordering::Acquire) {
            let timeout = if !self.unfinished_reads.is_empty() {
                Some(Duration::ZERO)
            } else if self.accept_retry_due {
                Some(ACCEPT_RETRY_PAUSE)
            } else if !self.connections.is_empty() {
                Some(self.next_sweep.saturating_duration_since(Instant::now()))
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("rpc server poll failed, stopping: {e}");
                break;
            }
            if std::mem::take(&mut self.accept_retry_due) {
                self.accept_all();
            }
            for token in std::mem::take(&mut self.unfinished_reads) {
                self.read_connection(token, false);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER_TOKEN => self.accept_all(),
                    WAKER_TOKEN => {}
                    Token(token) => self.handle_connection_event(token, event),
                }
            }
            let now = Instant::now();
            if now >= self.next_sweep {
                self.close_expired(now);
                self.next_sweep = now + self.sweep_interval;
            }
        }
        for (_, connection) in self.connections.drain() {
            connection.shared.writer.close("server shutting down");
        }
        tracing::debug!("rpc server event loop stopped");
    }

    fn accept_all(&mut self) {
        // At most one eviction per call for want of descriptors: a victim whose socket is
        // still held by a running handler frees no descriptor, and evicting on would empty
        // the table.
        let mut evicted_for_descriptors = false;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.add_connection(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if is_out_of_descriptors(&e)
                        && !evicted_for_descriptors
                        && self.evict_one("out of file descriptors") =>
                {
                    evicted_for_descriptors = true;
                    tracing::warn!("accept failed ({e}): closed a connection to make room");
                }
                Err(e) => {
                    tracing::warn!("accept failed, retrying in {ACCEPT_RETRY_PAUSE:?}: {e}");
                    self.accept_retry_due = true;
                    return;
                }
            }
        }
    }

    fn add_connection(&mut self, mut stream: TcpStream, peer: std::net::SocketAddr) {
        let ordinary = self
            .connections
            .values()
            .filter(|c| !c.shared.is_priority())
            .count();
        if ordinary >= self.config.max_connections
            && !self.evict_one(&format!(
                "connection limit ({}) reached: made room for a newcomer",
                self.config.max_connections
            ))
        {
            tracing::warn!(%peer, max_connections = self.config.max_connections,
                "refusing connection: connection limit reached and nothing to evict");
            return; // dropping the stream closes it
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
        }
        let token = self.next_token;
        self.next_token += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(token), interest)
        {
            tracing::warn!(%peer, "could not register connection: {e}");
            return;
        }
        let account = Account::new(self.budget.clone());
        let writer = SocketWriter::new(
            stream,
            true,
            self.config.max_queued_reply_bytes_per_connection,
            Some(account.clone()),
        );
        let shared = Arc::new(ConnShared::new(
            writer,
            peer,
            self.config.max_frame_bytes,
            account,
            self.priority_slots.clone(),
        ));
        tracing::debug!(%peer, token, "connection accepted");
        let connection = Connection::new(shared, self.config.max_frame_bytes, Instant::now());
        self.connections.insert(token, connection);
    }

    fn views(&self) -> impl Iterator<Item = ConnectionView> + '_ {
        self.connections
            .iter()
            .map(|(&token, connection)| ConnectionView {
                token,
                priority: connection.shared.is_priority(),
                pending_calls: connection.shared.pending_calls(),
                last_received: connection.last_received(),
                partial_frame_since: connection.partial_frame_since(),
            })
    }

    /// Closes the ordinary connection `admission` picks to make room. False if there is
    /// none (every connection is a priority one).
    fn evict_one(&mut self, why: &str) -> bool {
        let Some(victim) = admission::eviction_victim(self.views()) else {
            return false;
        };
        self.close_connection(victim, &CloseReason::warning(format!("evicted: {why}")));
        true
    }

    fn close_expired(&mut self, now: Instant) {
        let expired: Vec<(usize, String)> = self
            .views()
            .filter_map(|view| Some((view.token, admission::expiry(&view, now, self.timeouts)?)))
            .collect();
        for (token, why) in expired {
            self.close_connection(token, &CloseReason::warning(why));
        }
    }

    fn handle_connection_event(&mut self, token: usize, event: &Event) {
        let Some(connection) = self.connections.get(&token) else {
            return; // a late event for a closed connection
        };
        if event.is_writable() {
            connection.shared.writer.flush();
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let fin_may_be_queued = event.is_read_closed() || event.is_error();
            self.read_connection(token, !fin_may_be_queued);
        }
    }

    fn read_connection(&mut self, token: usize, stop_at_short_read: bool) {
        let Some(connection) = self.connections.get_mut(&token) else {
            return;
        };
        let dispatcher = &self.dispatcher;
        let writer = &connection.shared.writer;
        writer.cork();
        let result =
            connection.read_frames(&mut self.scratch, stop_at_short_read, |conn, frame| {
                dispatcher.dispatch(conn, frame)
            });
        connection.shared.writer.uncork();
        match result {
            Ok(ReadProgress::Drained) => {}
            Ok(ReadProgress::MoreAvailable) => self.unfinished_reads.push(token),
            Err(reason) => self.close_connection(token, &reason),
        }
    }

    fn close_connection(&mut self, token: usize, reason: &CloseReason) {
        let Some(connection) = self.connections.remove(&token) else {
            return;
        };
        let peer = connection.shared.peer;
        if reason.is_warning {
            tracing::warn!(%peer, reason = %reason.message, "closing connection");
        } else {
            tracing::debug!(%peer, reason = %reason.message, "closing connection");
        }
        connection.shared.writer.close(&reason.message);
    }
}

/// Whether `accept` failed for want of file descriptors (per process or system-wide).
fn is_out_of_descriptors(error: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}
