//! Sending one call: encode the request frame, pick the connection (waiting while the
//! address resolves), register the call in the pending map *under the writer lock* (so
//! its stream offset is exact and a reply can never beat its registration), then write.
//!
//! Invariant: on failure nothing was sent and the call is not pending; the completion is
//! handed back so the caller can deliver the error exactly once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::call::{CallRecord, ClientConn, Completion};
use super::{Channel, Link};
use crate::frame::{encode_frame, FrameError, RpcHeader};
use crate::socket_writer::SubmitError;
use crate::RpcError;

/// How long a one-way call waits for the channel to resolve its address (at a connection
/// attempt) before it gives up with `Timeout`: one-way senders must not stall.
pub(crate) const ONE_WAY_MAX_RESOLVE_WAIT: std::time::Duration =
    std::time::Duration::from_millis(10);

impl Channel {
    /// Encodes, registers and writes one call; returns its request id. On failure, returns
    /// the error and the completion (if it was not consumed) so the caller can deliver it.
    /// The I/O thread enforces the deadline of async calls; blocking callers their own.
    pub(super) fn submit(
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
            must_wake =
                self.register_call(id, &conn, start_offset, tracked_deadline, &mut completion)?;
            Ok(())
        });
        match submitted {
            Ok(_) => {
                if must_wake {
                    shared.wake_io_thread();
                }
                Ok(id)
            }
            Err(e) => Err((self.submit_error(e, connected), completion)),
        }
    }

    /// Encodes and writes one one-way call (nothing is registered: no reply will come).
    /// Waits at most [`ONE_WAY_MAX_RESOLVE_WAIT`] for an address being resolved.
    pub(super) fn submit_one_way(
        &self,
        service: &str,
        method: &str,
        body: &[u8],
    ) -> Result<(), RpcError> {
        let mut frame = BytesMut::new();
        let header = RpcHeader::one_way(service, method);
        encode_frame(
            &mut frame,
            &header,
            body,
            self.shared.config.max_frame_bytes,
        )
        .map_err(frame_error)?;
        let wait_until = Instant::now() + ONE_WAY_MAX_RESOLVE_WAIT;
        let (conn, connected) = self.current_connection(Some(wait_until))?;
        conn.writer
            .submit(&frame, |_| Ok(()))
            .map(|_| ())
            .map_err(|e| self.submit_error(e, connected))
    }

    /// Puts the call into the pending map; true if the I/O thread must be woken for its
    /// deadline. On failure the completion stays in `completion`.
    fn register_call(
        &self,
        id: u64,
        conn: &Arc<ClientConn>,
        start_offset: u64,
        tracked_deadline: Option<Instant>,
        completion: &mut Option<Completion>,
    ) -> Result<bool, RpcError> {
        let Some(completion_now) = completion.take() else {
            return Err(RpcError::Shutdown); // unreachable: the hook runs once
        };
        let record = CallRecord {
            conn: conn.clone(),
            start_offset,
            completion: completion_now,
        };
        let mut pending = self.shared.pending.lock();
        match pending.insert(id, conn.id, tracked_deadline, record) {
            Ok(inserted) => Ok(inserted.must_wake_io_thread),
            Err(record) => {
                *completion = Some(record.completion);
                Err(RpcError::Overloaded(format!(
                    "{} calls already pending on the channel to {}",
                    pending.max_calls(),
                    self.shared.addr
                )))
            }
        }
    }

    fn submit_error(&self, error: SubmitError<RpcError>, connected: bool) -> RpcError {
        match error {
            SubmitError::Refused(error) => error,
            SubmitError::Closed(reason) if connected => {
                tracing::debug!(addr = %self.shared.addr, %reason, "call raced a disconnect");
                RpcError::Disconnected { sent: false }
            }
            SubmitError::Closed(reason) => RpcError::Unreachable(reason),
            SubmitError::QueueFull {
                queued_bytes,
                max_bytes,
            } => RpcError::Overloaded(format!(
                "{queued_bytes} request bytes already queued (max {max_bytes})"
            )),
            SubmitError::OverBudget { frame_bytes } => {
                RpcError::Overloaded(format!("no memory budget for a {frame_bytes}-byte request"))
            }
        }
    }

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
