//! `SocketWriter`: the write half of one TCP connection, shared by every thread that sends
//! on it (callers and responders write directly; the event loop flushes on writability).
//!
//! It is a *combining* writer: a thread that finds nobody writing takes everything queued
//! and writes it with one syscall *outside* the lock; a thread that finds a write in
//! progress only appends its frame, and the active writer picks it up on its next round.
//! Under load many frames go out per syscall, and nobody blocks on the lock for a syscall.
//!
//! Invariants:
//! - bytes reach the socket in the order they were accepted (`submit` order); the
//!   unwritten rest of a partial write goes back to the *front* of the queue;
//! - if the queue is non-empty and nobody is writing, a flush is guaranteed to come: the
//!   socket returned `WouldBlock` (a writable edge follows), or it is not connected yet, or
//!   it is corked (the owner uncorks);
//! - queued bytes never exceed `max_queued_bytes` (the submit fails instead);
//! - with a budget account (server connections), every byte accepted and not yet taken by
//!   the kernel is charged to it: charged at `submit` (which fails if the budget refuses),
//!   refunded as the kernel takes bytes or when `close` drops them;
//! - `sent_total` counts bytes the kernel accepted *plus* bytes in a write syscall right
//!   now (added before the syscall, the unwritten rest taken back after it), so a frame
//!   that starts at stream offset `o` may have reached the peer iff `sent_total > o`. The
//!   error is only ever on the safe side: "maybe sent" while the syscall runs.

use std::io::{self, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use mio::net::TcpStream;
use parking_lot::{Mutex, MutexGuard};

use crate::server::budget::Account;

/// Why a submit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubmitError<E> {
    /// The writer was closed; the string says why.
    Closed(String),
    /// Accepting the frame would exceed the queued-bytes cap.
    QueueFull {
        queued_bytes: usize,
        max_bytes: usize,
    },
    /// The provider's memory budget (see `server/budget.rs`) has no room for the frame.
    OverBudget { frame_bytes: usize },
    /// The `before_enqueue` hook refused.
    Refused(E),
}

#[derive(Debug)]
struct WriteState {
    /// Accepted bytes that no thread has taken for writing yet.
    queue: BytesMut,
    /// Bytes ever accepted; the stream offset where the next frame starts.
    enqueued_total: u64,
    /// A thread is in a write syscall outside the lock.
    writing: bool,
    /// A flush was requested while another thread was writing: retry after `WouldBlock`.
    retry_requested: bool,
    /// The socket finished connecting (server sockets start connected).
    connected: bool,
    /// Writes are held back until `uncork` (batching many replies into one syscall).
    corked: bool,
    /// Set once; nothing is written after it.
    closed: Option<String>,
}

/// The write half of a connection. See the module docs.
#[derive(Debug)]
pub(crate) struct SocketWriter {
    stream: TcpStream,
    state: Mutex<WriteState>,
    sent_total: AtomicU64,
    max_queued_bytes: usize,
    /// Where queued bytes are charged (server connections); `None` charges nothing.
    budget: Option<Arc<Account>>,
}

impl SocketWriter {
    /// Wraps a (registered) stream. `connected` is false for a client socket whose
    /// non-blocking connect is still in progress: submits then only queue.
    pub(crate) fn new(
        stream: TcpStream,
        connected: bool,
        max_queued_bytes: usize,
        budget: Option<Arc<Account>>,
    ) -> Self {
        SocketWriter {
            stream,
            state: Mutex::new(WriteState {
                queue: BytesMut::new(),
                enqueued_total: 0,
                writing: false,
                retry_requested: false,
                connected,
                corked: false,
                closed: None,
            }),
            sent_total: AtomicU64::new(0),
            max_queued_bytes,
            budget,
        }
    }

    fn try_charge(&self, bytes: usize) -> bool {
        self.budget
            .as_ref()
            .is_none_or(|account| account.try_charge(bytes))
    }

    fn refund(&self, bytes: usize) {
        if let Some(account) = &self.budget {
            account.refund(bytes);
        }
    }

    /// The socket, for reading and socket options. Writes must go through `submit`.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Bytes the kernel has accepted so far, plus any being written right now.
    pub(crate) fn sent_total(&self) -> u64 {
        self.sent_total.load(Ordering::Acquire)
    }

    /// Why the writer is closed, if it is.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.state.lock().closed.clone()
    }

    /// Accepts `frame` for sending and, if no other thread is writing, writes it now.
    ///
    /// `before_enqueue(start_offset)` runs under the writer lock just before the frame is
    /// accepted, with the stream offset the frame will start at; if it fails, nothing is
    /// accepted. Returns the start offset.
    ///
    /// # Errors
    /// `Closed`, `QueueFull`, `OverBudget` or the hook's error; in every case nothing was accepted.
    /// A socket error *during* the write closes the writer but still returns `Ok`: the
    /// frame was accepted, and the owner learns of the failure from the socket.
    pub(crate) fn submit<E>(
        &self,
        frame: &[u8],
        before_enqueue: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<u64, SubmitError<E>> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(SubmitError::Closed(reason.clone()));
        }
        if state.queue.len() + frame.len() > self.max_queued_bytes && !state.queue.is_empty() {
            return Err(SubmitError::QueueFull {
                queued_bytes: state.queue.len(),
                max_bytes: self.max_queued_bytes,
            });
        }
        if !self.try_charge(frame.len()) {
            return Err(SubmitError::OverBudget {
                frame_bytes: frame.len(),
            });
        }
        let start_offset = state.enqueued_total;
        if let Err(e) = before_enqueue(start_offset) {
            self.refund(frame.len());
            return Err(SubmitError::Refused(e));
        }
        state.queue.extend_from_slice(frame);
        state.enqueued_total += frame.len() as u64;
        if !state.writing {
            self.write_queued(state);
        }
        Ok(start_offset)
    }

    /// Writes whatever is queued, unless another thread is writing (it is then asked to
    /// retry once more if it hits `WouldBlock`). Called on writable events.
    pub(crate) fn flush(&self) {
        let mut state = self.state.lock();
        if state.writing {
            state.retry_requested = true;
            return;
        }
        self.write_queued(state);
    }

    /// Marks a client socket connected and writes what queued up meanwhile.
    pub(crate) fn set_connected(&self) {
        let mut state = self.state.lock();
        state.connected = true;
        if !state.writing {
            self.write_queued(state);
        }
    }

    /// Holds writes back until `uncork`.
    pub(crate) fn cork(&self) {
        self.state.lock().corked = true;
    }

    /// Releases corked writes, writing them now in as few syscalls as possible.
    pub(crate) fn uncork(&self) {
        let mut state = self.state.lock();
        state.corked = false;
        if !state.writing {
            self.write_queued(state);
        }
    }

    /// Closes the writer (first reason wins), drops queued bytes and shuts the socket down
    /// so the peer and our own event loop both notice.
    pub(crate) fn close(&self, reason: &str) {
        {
            let mut state = self.state.lock();
            if state.closed.is_none() {
                state.closed = Some(reason.to_owned());
            }
            let dropped = std::mem::take(&mut state.queue);
            self.refund(dropped.len());
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The write loop. Takes everything queued, writes it outside the lock, and repeats
    /// until the queue is empty, the socket would block, or the writer is closed.
    fn write_queued<'a>(&'a self, mut state: MutexGuard<'a, WriteState>) {
        loop {
            if state.closed.is_some() || !state.connected || state.corked || state.queue.is_empty()
            {
                state.writing = false;
                return;
            }
            let batch = state.queue.split();
            state.writing = true;
            state.retry_requested = false;
            // Counted before the syscall: a reply can arrive before this thread runs again.
            self.sent_total
                .fetch_add(batch.len() as u64, Ordering::AcqRel);
            drop(state);

            let (written, outcome) = write_nonblocking(&self.stream, &batch);
            self.sent_total
                .fetch_sub((batch.len() - written) as u64, Ordering::AcqRel);

            self.refund(written);
            state = self.state.lock();
            if written < batch.len() && state.closed.is_some() {
                self.refund(batch.len() - written); // dropped, like the queue at `close`
            } else if written < batch.len() {
                let mut rest = BytesMut::with_capacity(batch.len() - written + state.queue.len());
                rest.extend_from_slice(&batch[written..]);
                rest.extend_from_slice(&state.queue);
                state.queue = rest;
            }
            match outcome {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !state.retry_requested {
                        state.writing = false;
                        return;
                    }
                }
                Err(e) => {
                    state.writing = false;
                    drop(state);
                    self.close(&format!("write failed: {e}"));
                    return;
                }
            }
        }
    }
}

/// Writes as much of `buf` as the socket takes: (bytes written, how it stopped).
fn write_nonblocking(mut stream: &TcpStream, buf: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < buf.len() {
        match stream.write(&buf[written..]) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}
