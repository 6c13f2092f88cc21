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
//!   gets disconnected rather than growing our memory.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::frame::{encode_frame, encode_frame_with_message, Frame, FrameDecoder, RpcHeader};
use crate::socket_writer::{SocketWriter, SubmitError};
use crate::Status;

/// Longest error message sent back; longer ones are cut (at a char boundary).
const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Reads per readiness event before other connections get a turn.
const MAX_READS_PER_TURN: usize = 16;
/// A read buffer this large is released once it empties (after a big frame).
const READ_BUFFER_SHRINK_BYTES: usize = 1024 * 1024;

/// The thread-shared half of a connection.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) writer: SocketWriter,
    pub(crate) peer: SocketAddr,
    pending_calls: AtomicUsize,
    max_frame_bytes: usize,
}

impl ConnShared {
    pub(crate) fn new(writer: SocketWriter, peer: SocketAddr, max_frame_bytes: usize) -> Self {
        ConnShared {
            writer,
            peer,
            pending_calls: AtomicUsize::new(0),
            max_frame_bytes,
        }
    }

    /// Counts one more call in progress, unless `max` are already in progress.
    pub(crate) fn try_begin_call(&self, max: usize) -> bool {
        self.pending_calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Completes a call begun with `try_begin_call`, sending its reply.
    pub(crate) fn send_reply_bytes(&self, request_id: u64, result: Result<Bytes, Status>) {
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
        self.end_call();
        self.send_frame(&frame);
    }

    /// Completes a call begun with `try_begin_call`, encoding the message in place.
    pub(crate) fn send_reply_message<M: Message>(
        &self,
        request_id: u64,
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
        self.end_call();
        self.send_frame(&frame);
    }

    /// Completes a one-way call begun with `try_begin_call`: nothing is sent; a failure
    /// is logged (the caller asked not to hear about it).
    pub(crate) fn finish_one_way(&self, error: Option<Status>) {
        self.end_call();
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

    fn end_call(&self) {
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
            Err(SubmitError::Refused(())) => {}
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
}

impl Connection {
    pub(crate) fn new(shared: Arc<ConnShared>, max_frame_bytes: usize) -> Self {
        Connection {
            shared,
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(max_frame_bytes),
        }
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
                    self.read_buf.extend_from_slice(&scratch[..n]);
                    self.decode_available(&mut on_frame)?;
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

    fn decode_available(
        &mut self,
        on_frame: &mut impl FnMut(&Arc<ConnShared>, Frame) -> Result<(), CloseReason>,
    ) -> Result<(), CloseReason> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(frame)) => on_frame(&self.shared, frame)?,
                Ok(None) => break,
                Err(e) => return Err(CloseReason::warning(e.to_string())),
            }
        }
        if self.read_buf.is_empty() && self.read_buf.capacity() > READ_BUFFER_SHRINK_BYTES {
            self.read_buf = BytesMut::new();
        }
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
