//! One call in flight on a channel: how its result is delivered (a parked caller or a
//! callback), which connection carried it and where its frame starts in that connection's
//! byte stream (to tell whether it was sent).
//!
//! Invariant: a `Completion` is completed at most once; whoever removes the call from the
//! pending map owns that duty.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use crate::socket_writer::SocketWriter;
use crate::RpcError;

/// The result a call ends with.
pub(crate) type CallResult = Result<Bytes, RpcError>;

/// A callback given to `call_async`.
pub(crate) type DoneCallback = Box<dyn FnOnce(CallResult) + Send + 'static>;

/// One TCP connection of a channel (there is at most one live at a time).
#[derive(Debug)]
pub(crate) struct ClientConn {
    /// Unique per channel; also the connection's mio token.
    pub(crate) id: u64,
    pub(crate) writer: SocketWriter,
}

/// Where a blocking caller parks until its result arrives.
#[derive(Debug, Default)]
pub(crate) struct CallWaiter {
    slot: Mutex<Option<CallResult>>,
    ready: Condvar,
}

impl CallWaiter {
    /// Stores the result and wakes the caller.
    pub(crate) fn complete(&self, result: CallResult) {
        *self.slot.lock() = Some(result);
        self.ready.notify_one();
    }

    /// Waits for the result until `deadline` (forever if `None`); `None` on timeout.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> Option<CallResult> {
        let mut slot = self.slot.lock();
        loop {
            if let Some(result) = slot.take() {
                return Some(result);
            }
            match deadline {
                Some(deadline) => {
                    if self.ready.wait_until(&mut slot, deadline).timed_out() {
                        return slot.take();
                    }
                }
                None => self.ready.wait(&mut slot),
            }
        }
    }
}

/// How a call's result is delivered.
pub(crate) enum Completion {
    Waiter(Arc<CallWaiter>),
    Callback(DoneCallback),
}

impl Completion {
    /// Delivers `result`. A panicking callback is contained (and logged) so the I/O thread
    /// survives it.
    pub(crate) fn complete(self, result: CallResult) {
        match self {
            Completion::Waiter(waiter) => waiter.complete(result),
            Completion::Callback(done) => {
                if catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
                    tracing::error!("an rpc completion callback panicked");
                }
            }
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Completion::Waiter(_) => f.write_str("Waiter"),
            Completion::Callback(_) => f.write_str("Callback"),
        }
    }
}

/// A pending call: what the pending map holds per request id.
#[derive(Debug)]
pub(crate) struct CallRecord {
    pub(crate) conn: Arc<ClientConn>,
    /// Offset of the request frame's first byte in the connection's byte stream.
    pub(crate) start_offset: u64,
    pub(crate) completion: Completion,
}

impl CallRecord {
    /// Whether any byte of the request may have reached the kernel (and so the server).
    pub(crate) fn sent(&self) -> bool {
        self.conn.writer.sent_total() > self.start_offset
    }
}
