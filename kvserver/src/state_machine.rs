//! The replicated key-value state machine: the data ([`SkipList`] of `Bytes` keys and values)
//! plus the client sessions, advanced by the commands of the Raft log.
//!
//! PURE and deterministic: the same entries applied in the same order give the same state and
//! the same replies on every replica. That is why a corrupt entry is skipped the same way
//! everywhere, why limits checked at apply time (an `Append` growing a value past the limit)
//! give the same `INVALID_ARGUMENT` reply everywhere, and why every replica must run with the
//! same [`Limits`] (they come from the cluster configuration).
//!
//! Invariants: `applied_index` only grows; `data_bytes` is the sum of key and value lengths.

use bytes::{Bytes, BytesMut};
use proto::kv::{write_request::Op, ErrorCode, KvError, WriteRequest, WriteResponse};
use proto::kvlog::{log_command, session_write::Op as LogOp, CompareAndSwap, LogCommand};
use raft::LogIndex;

use crate::command::{self, CommandError};
use crate::error::{error_response, kv_error, ok_response, InvalidLimits};
use crate::sessions::{RequestId, Sessions, DEFAULT_MAX_REPLIES_PER_SESSION, DEFAULT_MAX_SESSIONS};
use crate::skiplist::SkipList;
use layered::{FrozenData, LayeredMap};

mod layered;

/// Default largest key, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 4 * 1024;
/// Default largest value, in bytes.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys and values must stay below 4 GiB (the snapshot's length prefixes assume it).
const MAX_ITEM_BYTES: usize = u32::MAX as usize;
/// Rough per-entry memory beyond the key and value bytes (node, two `Bytes`, allocator).
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// Size and count limits of the state machine. Part of its definition: every replica of a
/// cluster must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest key accepted (default 4 KiB). Keys must also be non-empty.
    pub max_key_bytes: usize,
    /// Largest value accepted, also after an `Append` (default 1 MiB).
    pub max_value_bytes: usize,
    /// Most client sessions kept (default 100 000); the least recently active is evicted.
    pub max_sessions: usize,
    /// Most unacknowledged replies cached per client (default 1024).
    pub max_replies_per_session: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_replies_per_session: DEFAULT_MAX_REPLIES_PER_SESSION,
        }
    }
}

impl Limits {
    /// Checks that every limit is usable: all at least 1, sizes below 4 GiB.
    ///
    /// # Errors
    /// [`InvalidLimits`] naming the first limit that is zero.
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        let fields = [
            ("max_key_bytes", self.max_key_bytes),
            ("max_value_bytes", self.max_value_bytes),
            ("max_sessions", self.max_sessions),
            ("max_replies_per_session", self.max_replies_per_session),
        ];
        if let Some((field, _)) = fields.iter().find(|(_, value)| *value == 0) {
            return Err(InvalidLimits {
                field,
                reason: "must be at least 1",
            });
        }
        let sizes = &fields[..2];
        match sizes.iter().find(|(_, value)| *value > MAX_ITEM_BYTES) {
            Some((field, _)) => Err(InvalidLimits {
                field,
                reason: "must be below 4 GiB",
            }),
            None => Ok(()),
        }
    }

    /// Checks a write before it is proposed: an operation is present, the key is non-empty
    /// and within `max_key_bytes`, values are within `max_value_bytes`, `seq >= 1` and
    /// `first_unacked_seq <= seq`.
    ///
    /// # Errors
    /// An `INVALID_ARGUMENT` [`KvError`] saying what is wrong.
    pub fn validate_write(&self, request: &WriteRequest) -> Result<(), KvError> {
        if let Some(Op::Register(_)) = request.op {
            return Ok(()); // no session yet: the session fields are ignored
        }
        if request.seq == 0 {
            return Err(invalid("seq must be at least 1"));
        }
        if request.first_unacked_seq > request.seq {
            return Err(invalid("first_unacked_seq must not be above seq"));
        }
        self.validate_op(request.op.as_ref())
    }

    /// The operation part of [`Limits::validate_write`].
    fn validate_op(&self, op: Option<&Op>) -> Result<(), KvError> {
        let (key, values): (&Bytes, &[&Bytes]) = match op {
            None => return Err(invalid("write has no operation")),
            Some(Op::Register(_)) => return Ok(()),
            Some(Op::Put(put)) => (&put.key, &[&put.value]),
            Some(Op::Append(append)) => (&append.key, &[&append.value]),
            Some(Op::Delete(delete)) => (&delete.key, &[]),
            Some(Op::Cas(cas)) => (&cas.key, &[&cas.expected, &cas.new_value]),
        };
        self.validate_item(key, values)
    }

    /// The same checks on a log command's operation, at apply time.
    fn validate_log_op(&self, op: Option<&LogOp>) -> Result<(), KvError> {
        let (key, values): (&Bytes, &[&Bytes]) = match op {
            None => return Err(invalid("write has no operation")),
            Some(LogOp::Put(put)) => (&put.key, &[&put.value]),
            Some(LogOp::Append(append)) => (&append.key, &[&append.suffix]),
            Some(LogOp::Delete(delete)) => (&delete.key, &[]),
            Some(LogOp::CompareAndSwap(cas)) => (&cas.key, &[&cas.expected, &cas.new_value]),
        };
        self.validate_item(key, values)
    }

    fn validate_item(&self, key: &Bytes, values: &[&Bytes]) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(invalid("key must not be empty"));
        }
        if key.len() > self.max_key_bytes {
            return Err(invalid(format!(
                "key is {} bytes, limit {}",
                key.len(),
                self.max_key_bytes
            )));
        }
        match values.iter().find(|v| v.len() > self.max_value_bytes) {
            Some(value) => Err(invalid(format!(
                "value is {} bytes, limit {}",
                value.len(),
                self.max_value_bytes
            ))),
            None => Ok(()),
        }
    }
}

/// A Register command: opens a session whose id is the index it is applied at.
pub fn register_request() -> WriteRequest {
    WriteRequest {
        client_id: 0,
        seq: 0,
        first_unacked_seq: 0,
        op: Some(Op::Register(proto::kv::Register {})),
    }
}

fn invalid(message: impl Into<String>) -> KvError {
    kv_error(ErrorCode::InvalidArgument, message)
}

/// The key-value data and its byte count.
#[derive(Debug, Clone, PartialEq)]
struct Store {
    data: LayeredMap,
    /// Sum of the lengths of all keys and values.
    data_bytes: usize,
}

impl Store {
    fn new(data: SkipList<Bytes, Bytes>) -> Self {
        let data_bytes = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        Store {
            data: LayeredMap::new(data),
            data_bytes,
        }
    }

    /// Executes one (already deduplicated) operation.
    fn execute(&mut self, limits: &Limits, op: Option<&LogOp>) -> WriteResponse {
        if let Err(error) = limits.validate_log_op(op) {
            return WriteResponse {
                error: Some(error),
                swapped: false,
                client_id: 0,
            };
        }
        match op {
            Some(LogOp::Put(put)) => {
                self.put(&put.key, put.value.clone());
                ok_response(false)
            }
            Some(LogOp::Append(append)) => self.append(limits, &append.key, &append.suffix),
            Some(LogOp::Delete(delete)) => ok_response(self.delete(&delete.key)),
            Some(LogOp::CompareAndSwap(cas)) => ok_response(self.compare_and_swap(cas)),
            None => error_response(ErrorCode::InvalidArgument, "write has no operation"),
        }
    }

    fn put(&mut self, key: &Bytes, value: Bytes) {
        self.data_bytes += value.len();
        match self.data.insert(key.clone(), value) {
            Some(previous) => self.data_bytes -= previous.len(),
            None => self.data_bytes += key.len(),
        }
    }

    fn append(&mut self, limits: &Limits, key: &Bytes, suffix: &Bytes) -> WriteResponse {
        let current = self.data.get(&key[..]);
        let current_len = current.map_or(0, Bytes::len);
        let new_len = current_len + suffix.len();
        if new_len > limits.max_value_bytes {
            return error_response(
                ErrorCode::InvalidArgument,
                format!(
                    "append would make the value {new_len} bytes, limit {}",
                    limits.max_value_bytes
                ),
            );
        }
        let value = match current {
            None => suffix.clone(),
            Some(current) => {
                let mut joined = BytesMut::with_capacity(new_len);
                joined.extend_from_slice(current);
                joined.extend_from_slice(suffix);
                joined.freeze()
            }
        };
        self.put(key, value);
        ok_response(false)
    }

    /// Removes `key`; whether it existed.
    fn delete(&mut self, key: &[u8]) -> bool {
        match self.data.remove(key) {
            Some(value) => {
                self.data_bytes -= key.len() + value.len();
                true
            }
            None => false,
        }
    }

    /// Sets `new_value` if the current value equals `expected` (empty `expected`: the key is
    /// absent); whether it swapped.
    fn compare_and_swap(&mut self, cas: &CompareAndSwap) -> bool {
        let matches = match self.data.get(&cas.key[..]) {
            None => cas.expected.is_empty(),
            Some(current) => !cas.expected.is_empty() && *current == cas.expected,
        };
        if matches {
            self.put(&cas.key, cas.new_value.clone());
        }
        matches
    }
}

/// The key-value state machine: data, client sessions and the last applied log index.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    store: Store,
    sessions: Sessions,
    applied_index: LogIndex,
    limits: Limits,
}

impl StateMachine {
    /// An empty state machine (applied index 0).
    pub fn new(limits: Limits) -> Self {
        Self::from_parts(
            SkipList::new(),
            Sessions::new(limits.max_sessions, limits.max_replies_per_session),
            LogIndex::ZERO,
            limits,
        )
    }

    /// A state machine made of restored parts (snapshot decoding).
    pub(crate) fn from_parts(
        data: SkipList<Bytes, Bytes>,
        sessions: Sessions,
        applied_index: LogIndex,
        limits: Limits,
    ) -> Self {
        StateMachine {
            store: Store::new(data),
            sessions,
            applied_index,
            limits,
        }
    }

    /// A point-in-time view of the whole state for a snapshot, taken in O(1) plus a copy
    /// of the sessions; `None` while the previous view is alive or its writes are still
    /// being folded back (see [`StateMachine::settle`]). Writes go on meanwhile.
    pub fn capture(&mut self) -> Option<SnapshotView> {
        let data = self.store.data.freeze()?;
        Some(SnapshotView {
            applied_index: self.applied_index,
            data,
            data_bytes: self.store.data_bytes,
            sessions: self.sessions.clone(),
        })
    }

    /// Folds up to `budget` entries written during the last capture back into the main
    /// structure, once its view is dropped; whether all are folded. Call it between apply
    /// rounds: its cost is bounded by `budget`.
    pub fn settle(&mut self, budget: usize) -> bool {
        self.store.data.settle(budget)
    }

    /// Applies the client write `request` as if it were committed at `index`: what the
    /// leader proposes for it ([`crate::command::from_request`]), applied by
    /// [`StateMachine::apply_command`].
    ///
    /// # Panics
    /// As [`StateMachine::apply_command`].
    pub fn apply(&mut self, index: LogIndex, request: &WriteRequest) -> WriteResponse {
        self.apply_command(index, &command::from_request(request))
    }

    /// Applies the command committed at `index`: a write exactly once per (client, seq),
    /// returning its reply (a cached one for a retry). Errors are replies, never panics.
    ///
    /// # Panics
    /// If `index` is not above [`StateMachine::applied_index`]: entries are applied in log
    /// order, once ([`StateMachine::apply_entry`] skips old indexes instead).
    pub fn apply_command(&mut self, index: LogIndex, command: &LogCommand) -> WriteResponse {
        assert!(
            index > self.applied_index,
            "apply out of order: index {index} after applied index {}",
            self.applied_index
        );
        self.applied_index = index;
        let write = match &command.command {
            Some(log_command::Command::OpenSession(_)) => {
                return WriteResponse {
                    client_id: self.sessions.register(index),
                    ..ok_response(false)
                };
            }
            Some(log_command::Command::Write(write)) => write,
            None => return error_response(ErrorCode::InvalidArgument, "empty log command"),
        };
        let id = RequestId {
            client_id: write.client_id,
            seq: write.seq,
            first_unacked_seq: write.first_unacked_seq,
        };
        let StateMachine {
            store,
            sessions,
            limits,
            ..
        } = self;
        sessions.apply(index, id, || store.execute(limits, write.op.as_ref()))
    }

    /// Decodes and applies the log entry at `index` ([`crate::command`]); returns the reply
    /// for the waiting client.
    ///
    /// `Ok(None)` when `index` was already applied (replay after a snapshot; nothing
    /// changes) or when the entry does not decode (logged; the index counts as applied, on
    /// every replica alike).
    ///
    /// # Errors
    /// [`CommandError::UnknownVersion`]: the entry was written by a newer build; nothing
    /// is applied and the caller must stop applying (skipping it would diverge).
    pub fn apply_entry(
        &mut self,
        index: LogIndex,
        data: &[u8],
    ) -> Result<Option<WriteResponse>, CommandError> {
        if index <= self.applied_index {
            tracing::debug!(%index, applied = %self.applied_index, "skipping already applied entry");
            return Ok(None);
        }
        match command::decode(data) {
            Ok(command) => Ok(Some(self.apply_command(index, &command))),
            Err(CommandError::Undecodable(error)) => {
                tracing::warn!(%index, %error, bytes = data.len(), "skipping undecodable log entry");
                self.applied_index = index;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Records that `index` (a no-op or other non-command entry) was applied. Old indexes are
    /// ignored.
    pub fn apply_noop(&mut self, index: LogIndex) {
        self.applied_index = self.applied_index.max(index);
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.store.data.get(key).cloned()
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.store.data.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.store.data.len() == 0
    }

    /// Sum of the lengths of all keys and values, in bytes.
    pub fn data_bytes(&self) -> usize {
        self.store.data_bytes
    }

    /// Approximate memory held by data and sessions, in bytes (for snapshot decisions).
    pub fn approx_bytes(&self) -> usize {
        self.store.data_bytes
            + self.store.data.len() * ENTRY_OVERHEAD_BYTES
            + self.sessions.approx_bytes()
    }

    /// The live entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> + '_ {
        self.store.data.iter()
    }

    /// The client sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks a write before it is proposed; see [`Limits::validate_write`].
    ///
    /// # Errors
    /// An `INVALID_ARGUMENT` [`KvError`].
    pub fn validate_write(&self, request: &WriteRequest) -> Result<(), KvError> {
        self.limits.validate_write(request)
    }
}

/// The state machine as of one applied index, for encoding into a snapshot on another
/// thread while applies go on ([`StateMachine::capture`]).
#[derive(Debug)]
pub struct SnapshotView {
    pub(crate) applied_index: LogIndex,
    pub(crate) data: FrozenData,
    pub(crate) data_bytes: usize,
    pub(crate) sessions: Sessions,
}

impl SnapshotView {
    /// The index the view is at.
    pub fn applied_index(&self) -> LogIndex {
        self.applied_index
    }
}

#[cfg(test)]
mod tests;
