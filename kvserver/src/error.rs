//! kvserver's error types, plus the helpers that turn a failure into the `KvError` /
//! `WriteResponse` protobuf replies that clients see.
//!
//! Rule: anything decoded from disk or the network fails into one of these types, never a
//! panic; replies built here are deterministic (the same input gives the same bytes), since
//! state-machine replies are cached in the replicated client sessions.

use proto::kv::{ErrorCode, KvError, WriteResponse};
use thiserror::Error;

/// A sorted build ([`crate::skiplist::SkipList::from_sorted_iter`]) met a key that was not
/// greater than the key before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("key at position {position} is not greater than the previous key")]
pub struct OutOfOrderKey {
    /// Zero-based position of the offending entry.
    pub position: usize,
}

/// A [`crate::state_machine::Limits`] value that cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("limit {field} {reason}")]
pub struct InvalidLimits {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Why a state-machine snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// The data does not start with the snapshot magic bytes.
    #[error("not a kvserver snapshot (bad magic bytes)")]
    BadMagic,
    /// The snapshot was written by a format version this build does not read.
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// Version found in the header.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The data ends before a field it announces.
    #[error("snapshot truncated: {what} needs {needed} bytes, {remaining} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the input.
        remaining: u64,
    },
    /// A field does not decode (a length prefix that is not a valid varint, a count that
    /// does not fit, a cached reply below its session's watermark).
    #[error("snapshot field {what} is malformed")]
    Malformed {
        /// The field being read.
        what: &'static str,
    },
    /// The header's body length disagrees with the data.
    #[error("snapshot body is {actual} bytes, header says {declared}")]
    BodyLength {
        /// Length in the header.
        declared: u64,
        /// Bytes actually present after the header.
        actual: u64,
    },
    /// The body's CRC-32 does not match the header: the data is corrupt.
    #[error("snapshot checksum mismatch: header {expected:#010x}, body {actual:#010x}")]
    Checksum {
        /// CRC in the header.
        expected: u32,
        /// CRC of the body as read.
        actual: u32,
    },
    /// Keys are not in strictly increasing order.
    #[error("snapshot keys out of order at entry {position}")]
    KeysOutOfOrder {
        /// Zero-based entry position.
        position: u64,
    },
    /// Sessions or their cached replies are not in strictly increasing id order.
    #[error("snapshot sessions out of order: {what} at client {client_id}")]
    SessionsOutOfOrder {
        /// Which list is out of order.
        what: &'static str,
        /// The client whose session is affected.
        client_id: u64,
    },
    /// A cached reply is not a valid `WriteResponse`.
    #[error("snapshot reply of client {client_id} seq {seq} does not decode: {reason}")]
    BadReply {
        /// The client.
        client_id: u64,
        /// The request sequence number.
        seq: u64,
        /// The protobuf decoder's message.
        reason: String,
    },
    /// Bytes are left over after the last section.
    #[error("snapshot has {count} trailing bytes")]
    TrailingBytes {
        /// How many.
        count: u64,
    },
    /// The snapshot could not be read from where it is stored (an I/O error, or the
    /// storage's own checksum failed).
    #[error("cannot read the snapshot: {reason}")]
    Read {
        /// The reader's error.
        reason: String,
    },
}

/// A `KvError` with `code` and `message` (no leader hint).
pub fn kv_error(code: ErrorCode, message: impl Into<String>) -> KvError {
    KvError {
        code: code as i32,
        message: message.into(),
        leader_id: 0,
        leader_addr: String::new(),
    }
}

/// A failed `WriteResponse` carrying `code` and `message`.
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> WriteResponse {
    WriteResponse {
        error: Some(kv_error(code, message)),
        swapped: false,
        client_id: 0,
    }
}

/// A successful `WriteResponse`.
pub fn ok_response(swapped: bool) -> WriteResponse {
    WriteResponse {
        error: None,
        swapped,
        client_id: 0,
    }
}
