//! One accepted connection: the part shared with responders on any thread (`ConnShared`:
//! the combining writer and the pending-call count) and the part only the event loop
//! touches (`Connection`: the read buffer and frame decoder).
//!
//! Invariants:
//! - the read buffer holds at most one partial frame plus one read chunk: frames are split
//!   off as soon as they are complete, and the decoder rejects over-long prefixes first;
//! - `pending_calls` counts requests handed to a handler and not yet answered, and never
//!   exceeds the configured maximum (over it, the request is answered ResourceExhausted);
//! - queued reply bytes are capped by the writer; a client that does not read its replies
//!   gets disconnected rather than growing our memory;
//! - everything buffered beyond one read chunk of a partial frame, every request body from
//!   dispatch until its reply, and every queued reply byte is charged to the provider's
//!   memory budget (`budget.rs`) through the connection's `Account`; what the budget
//!   refuses is answered ResourceExhausted (a request) or closes the connection (a partial
//!   frame, a reply).

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use prost::Message;

use super::budget::Account;
use crate::frame::{encode_frame, encode_frame_with_message, Frame, FrameDecoder, RpcHeader};
use crate::socket_writer::{SocketWriter, SubmitError};
use crate::Status;

/// Longest error message sent back; longer ones are cut (at a char boundary).
const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Reads per readiness event before other connections get a turn.
const MAX_READS_PER_TURN: usize = 16;
/// A read buffer this large is released once it empties (after a big frame).
const READ_BUFFER_SHRINK_BYTES: usize = 1024 * 1024;
/// Bytes of a partial frame a connection may buffer without charging the budget: small
/// requests split across reads never fail for want of budget, and this much times the
/// connection limit is the most that goes uncharged.
const UNCHARGED_PARTIAL_FRAME_BYTES: usize = 64 * 1024;

/// Why a call could not begin.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BeginCallError {
    /// The connection already has the maximum number of calls in progress.
    TooManyCalls,
    /// The provider's memory budget has no room for the request body.
    OverBudget,
}

/// How many connections of a provider may be promoted to priority (see
/// `Responder::promote_connection`), shared by all of them.
#[derive(Debug)]
pub(crate) struct PrioritySlots {
    used: AtomicUsize,
    max: usize,
}

impl PrioritySlots {
    pub(crate) fn new(max: usize) -> Arc<PrioritySlots> {
        Arc::new(PrioritySlots {
            used: AtomicUsize::new(0),
            max,
        })
    }

    fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The thread-shared half of a connection.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) writer: SocketWriter,
    pub(crate) peer: SocketAddr,
    pending_calls: AtomicUsize,
    max_frame_bytes: usize,
    /// This connection's share of the provider's memory budget (shared with `writer`),
    /// and its class (ordinary or priority).
    pub(crate) account: Arc<Account>,
    priority_slots: Arc<PrioritySlots>,
    /// Serialises promotions of this connection (so it takes at most one slot).
    promotion: Mutex<()>,
}

impl ConnShared {
    pub(crate) fn new(
        writer: SocketWriter,
        peer: SocketAddr,
        max_frame_bytes: usize,
        account: Arc<Account>,
        priority_slots: Arc<PrioritySlots>,
    ) -> Self {
        ConnShared {
            writer,
            peer,
            pending_calls: AtomicUsize::new(0),
            max_frame_bytes,
            account,
            priority_slots,
            promotion: Mutex::new(()),
        }
    }

    /// Whether a handler promoted this connection (see `Responder::promote_connection`).
    pub(crate) fn is_priority(&self) -> bool {
        self.account.is_priority()
    }

    /// Promotes this connection if a priority slot is free (once; later calls are free).
    pub(crate) fn request_promotion(&self) {
        if self.account.is_priority() {
            return;
        }
        let _once = self.promotion.lock();
        if self.account.is_priority() {
            return;
        }
        if self.priority_slots.try_take() {
            self.account.promote();
            tracing::debug!(peer = %self.peer, "connection promoted to priority");
        } else {
            tracing::warn!(peer = %self.peer, max = self.priority_slots.max,
                "connection not promoted: every priority slot is taken");
        }
    }

    /// Counts one more call in progress and charges its `body_bytes` to the budget, unless
    /// `max` are already in progress or the budget has no room.
    pub(crate) fn try_begin_call(
        &self,
        max: usize,
        body_bytes: usize,
    ) -> Result<(), BeginCallError> {
        self.pending_calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| BeginCallError::TooManyCalls)?;
        if !self.account.try_charge(body_bytes) {
            self.pending_calls.fetch_sub(1, Ordering::AcqRel);
            return Err(BeginCallError::OverBudget);
        }
        Ok(())
    }

    /// Calls in progress.
    pub(crate) fn pending_calls(&self) -> usize {
        self.pending_calls.load(Ordering::Acquire)
    }

    /// Completes a call begun with `try_begin_call` (which charged `charge`), sending its
    /// reply.
    pub(crate) fn send_reply_bytes(
        &self,
        request_id: u64,
        charge: usize,
        result: Result<Bytes, Status>,
    ) {
        let frame = match result {
            Ok(body) => {
                let mut frame = BytesMut::new();
                match encode_frame(
                    &mut frame,
                    &RpcHeader::response(request_id),
                    &body,
                    self.max_frame_bytes,
                ) {
                    Ok(()) => frame,
                    Err(e) => self.error_frame(
                        request_id,
                        &Status::resource_exhausted(format!("response not sent: {e}")),
                    ),
                }
            }
            Err(status) => self.error_frame(request_id, &status),
        };
        self.end_call(charge);
        self.send_frame(&frame);
    }

    /// Completes a call begun with `try_begin_call` (which charged `charge`), encoding the
    /// message in place.
    pub(crate) fn send_reply_message<M: Message>(
        &self,
        request_id: u64,
        charge: usize,
        result: Result<M, Status>,
    ) {
        let frame = match result {
            Ok(body) => {
                let mut frame = BytesMut::new();
                let header = RpcHeader::response(request_id);
                match encode_frame_with_message(&mut frame, &header, &body, self.max_frame_bytes) {
                    Ok(()) => frame,
                    Err(e) => self.error_frame(
                        request_id,
                        &Status::resource_exhausted(format!("response not sent: {e}")),
                    ),
                }
            }
            Err(status) => self.error_frame(request_id, &status),
        };
        self.end_call(charge);
        self.send_frame(&frame);
    }

    /// Completes a one-way call begun with `try_begin_call` (which charged `charge`):
    /// nothing is sent; a failure is logged (the caller asked not to hear about it).
    pub(crate) fn finish_one_way(&self, charge: usize, error: Option<Status>) {
        self.end_call(charge);
        if let Some(status) = error {
            tracing::debug!(peer = %self.peer, code = ?status.code, message = %status.message,
                "one-way call failed (no reply is sent)");
        }
    }

    /// Answers a request that never reached a handler (not counted as pending).
    pub(crate) fn send_error(&self, request_id: u64, status: &Status) {
        let frame = self.error_frame(request_id, status);
        self.send_frame(&frame);
    }

    fn end_call(&self, charge: usize) {
        self.account.refund(charge);
        let previous = self.pending_calls.fetch_sub(1, Ordering::AcqRel);
        assert!(
            previous > 0,
            "a reply was sent for a call that was never begun"
        );
    }

    fn error_frame(&self, request_id: u64, status: &Status) -> BytesMut {
        let mut message = status.message.as_str();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut cut = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message = &message[..cut];
        }
        let header = RpcHeader::error(request_id, &Status::new(status.code, message));
        let mut frame = BytesMut::new();
        // A header with a message of at most 4 KiB always fits any sane maximum; if the
        // configured maximum is absurdly small the reply is skipped and the client times out.
        if let Err(e) = encode_frame(&mut frame, &header, &[], self.max_frame_bytes) {
            tracing::warn!(peer = %self.peer, "error reply not sent: {e}");
        }
        frame
    }

    fn send_frame(&self, frame: &[u8]) {
        if frame.is_empty() {
            return;
        }
        match self.writer.submit(frame, |_| Ok::<(), ()>(())) {
            Ok(_) => {}
            Err(SubmitError::Closed(reason)) => {
                tracing::debug!(peer = %self.peer, %reason, "reply dropped: connection closed");
            }
            Err(SubmitError::QueueFull {
                queued_bytes,
                max_bytes,
            }) => {
                let reason = format!(
                    "client is not reading its replies ({queued_bytes} bytes queued, max {max_bytes})"
                );
                tracing::warn!(peer = %self.peer, %reason, "closing connection");
                self.writer.close(&reason);
            }
            Err(SubmitError::OverBudget { frame_bytes }) => {
                let reason = format!(
                    "no memory budget for a {frame_bytes}-byte reply (the server is overloaded)"
                );
                tracing::warn!(peer = %self.peer, %reason, "closing connection");
                self.writer.close(&reason);
            }
            Err(SubmitError::Refused(())) => {}
        }
    }
}

impl Drop for ConnShared {
    fn drop(&mut self) {
        if self.account.is_priority() {
            self.priority_slots.give_back();
        }
    }
}

/// Why a connection is being closed, and how loudly to say so.
#[derive(Debug)]
pub(crate) struct CloseReason {
    pub(crate) message: String,
    /// Protocol violations and limits are warnings; a peer hanging up is routine.
    pub(crate) is_warning: bool,
}

impl CloseReason {
    pub(crate) fn warning(message: impl Into<String>) -> Self {
        CloseReason {
            message: message.into(),
            is_warning: true,
        }
    }

    pub(crate) fn routine(message: impl Into<String>) -> Self {
        CloseReason {
            message: message.into(),
            is_warning: false,
        }
    }
}

/// Whether a connection may still have unread bytes after its turn.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadProgress {
    /// The socket returned `WouldBlock`: wait for the next readiness event.
    Drained,
    /// The turn ended before `WouldBlock`: read again soon without waiting for an event.
    MoreAvailable,
}

/// The event-loop-owned half of a connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) shared: Arc<ConnShared>,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    /// Bytes of `read_buf` charged to the budget (all beyond the uncharged allowance).
    charged_read_bytes: usize,
    /// When bytes last arrived (or the connection was accepted).
    last_received: Instant,
    /// Since when a frame has been partly received (none while `read_buf` is empty).
    partial_frame_since: Option<Instant>,
}

impl Connection {
    pub(crate) fn new(shared: Arc<ConnShared>, max_frame_bytes: usize, now: Instant) -> Self {
        Connection {
            shared,
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(max_frame_bytes),
            charged_read_bytes: 0,
            last_received: now,
            partial_frame_since: None,
        }
    }

    /// When bytes last arrived (or the connection was accepted).
    pub(crate) fn last_received(&self) -> Instant {
        self.last_received
    }

    /// Since when a frame has been partly received, if one is.
    pub(crate) fn partial_frame_since(&self) -> Option<Instant> {
        self.partial_frame_since
    }

    /// Reads what the socket has (up to a fair share), handing each whole frame to
    /// `on_frame`. With `stop_at_short_read`, a read that does not fill the buffer ends the
    /// turn (the socket is drained, and later data raises a new edge); pass false when the
    /// peer's FIN may already be queued (it raises no new edge).
    ///
    /// # Errors
    /// A `CloseReason` when the connection must be closed: the peer hung up, the stream
    /// does not frame, or `on_frame` rejected a frame.
    pub(crate) fn read_frames(
        &mut self,
        scratch: &mut [u8],
        stop_at_short_read: bool,
        mut on_frame: impl FnMut(&Arc<ConnShared>, Frame) -> Result<(), CloseReason>,
    ) -> Result<ReadProgress, CloseReason> {
        for _ in 0..MAX_READS_PER_TURN {
            let mut stream = self.shared.writer.stream();
            let read = stream.read(scratch);
            match read {
                Ok(0) => return Err(self.eof_reason()),
                Ok(n) => {
                    let now = Instant::now();
                    self.last_received = now;
                    self.read_buf.extend_from_slice(&scratch[..n]);
                    self.decode_available(now, &mut on_frame)?;
                    if stop_at_short_read && n < scratch.len() {
                        // A short read drained the socket; new data raises a new edge.
                        return Ok(ReadProgress::Drained);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadProgress::Drained)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::routine(format!("read failed: {e}"))),
            }
        }
        Ok(ReadProgress::MoreAvailable)
    }

    /// Hands every whole frame in `read_buf` to `on_frame` (each frame's bytes leave the
    /// read charge before its handler charges its body), then charges what stays buffered.
    fn decode_available(
        &mut self,
        now: Instant,
        on_frame: &mut impl FnMut(&Arc<ConnShared>, Frame) -> Result<(), CloseReason>,
    ) -> Result<(), CloseReason> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => {
                    // What follows a whole frame is the start of a new one.
                    self.partial_frame_since = None;
                    self.charge_partial_frame(now)?;
                    on_frame(&self.shared, frame)?;
                }
                Ok(None) => break,
                Err(e) => return Err(CloseReason::warning(e.to_string())),
            }
        }
        if self.read_buf.is_empty() && self.read_buf.capacity() > READ_BUFFER_SHRINK_BYTES {
            self.read_buf = BytesMut::new();
        }
        self.charge_partial_frame(now)
    }

    /// Charges the budget for what `read_buf` holds of a partial frame beyond the uncharged
    /// allowance, and notes since when a frame has been partial.
    fn charge_partial_frame(&mut self, now: Instant) -> Result<(), CloseReason> {
        if self.read_buf.is_empty() {
            self.partial_frame_since = None;
        } else if self.partial_frame_since.is_none() {
            self.partial_frame_since = Some(now);
        }
        let wanted = self
            .read_buf
            .len()
            .saturating_sub(UNCHARGED_PARTIAL_FRAME_BYTES);
        if !self
            .shared
            .account
            .try_resize_partial_frame(self.charged_read_bytes, wanted)
        {
            return Err(CloseReason::warning(format!(
                "no memory budget to buffer a partial frame of {} bytes (the server is \
                 overloaded)",
                self.read_buf.len()
            )));
        }
        self.charged_read_bytes = wanted;
        Ok(())
    }

    fn eof_reason(&self) -> CloseReason {
        if let Some(reason) = self.shared.writer.close_reason() {
            CloseReason::routine(reason)
        } else if self.read_buf.is_empty() {
            CloseReason::routine("peer closed the connection")
        } else {
            CloseReason::warning(format!(
                "peer closed the connection mid-frame ({} bytes of a truncated frame)",
                self.read_buf.len()
            ))
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.account.refund(self.charged_read_bytes);
    }
}
