//! The key-value model raftkv's tests check against: Get, Put, Append, Delete, Cas.
//!
//! Keys and values are bytes (`Vec<u8>`), as on the wire (`proto/kv.proto`); constructors
//! take anything `Into<Vec<u8>>`, so tests can write `KvInput::put("k", "v")`, and `Debug`
//! shows bytes as escaped text.
//!
//! Semantics (one key's state is "absent" or a byte string):
//! - `Get` -> `Value(None)` when absent, `Value(Some(v))` when present.
//! - `Put` -> `Ok`; `Append` -> `Ok` (appending to an absent key creates it).
//! - `Delete` -> `Ok`, or `Swapped(existed)` when the server reports whether the key existed.
//! - `Cas { expected, new_value }` -> `Swapped(b)`: swaps iff the current value equals
//!   `expected`, where an EMPTY `expected` means "the key is absent" (a present empty value
//!   does not match it), as in `proto/kv.proto`.
//! - `Unknown` (timed out, outcome unknown): accepted from any state; a write applies its
//!   effect (a `Cas` swaps iff it would have), a `Get` changes nothing. Record it with return
//!   time `RETURN_UNKNOWN` so it may take effect anywhere after its call, or never.
//!
//! The model partitions by key (P-compositionality / locality), so a state is one key's value.
//! Unknown-outcome `Get`s constrain nothing and are left out of every partition. States are
//! persistent chunk chains with cached hashes (see `kv/state.rs`), so append-heavy histories
//! with long values stay cheap to step, hash and memoize.

mod reach;
mod state;

use std::fmt;

use crate::history::{HistoryRecorder, Operation};
use crate::model::Model;

pub use state::KvState;

/// Values longer than this are shown by `Debug` as a head and a tail (use `{:#?}` for all).
const DEBUG_BYTES_MAX: usize = 96;
/// Bytes shown from each end of a long value.
const DEBUG_BYTES_END: usize = 40;

/// One operation of a KV history, as recorded.
pub type KvOperation = Operation<KvInput, KvOutput>;
/// A recorder for KV histories.
pub type KvRecorder = HistoryRecorder<KvInput, KvOutput>;

/// What a client asked the KV store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read a key.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Set a key's value.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Append to a key's value (creating it if absent).
    Append {
        /// The key.
        key: Vec<u8>,
        /// The bytes to append.
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Compare-and-swap: set `new_value` iff the value equals `expected` (empty = absent).
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value required for the swap; empty means "the key is absent".
        expected: Vec<u8>,
        /// The value written if the swap happens.
        new_value: Vec<u8>,
    },
}

impl KvInput {
    /// `Get(key)`.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Self::Get { key: key.into() }
    }

    /// `Put(key, value)`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Append(key, value)`.
    pub fn append(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self::Append {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `Delete(key)`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Self::Delete { key: key.into() }
    }

    /// `Cas(key, expected, new_value)`; an empty `expected` means "absent".
    pub fn cas(
        key: impl Into<Vec<u8>>,
        expected: impl Into<Vec<u8>>,
        new_value: impl Into<Vec<u8>>,
    ) -> Self {
        Self::Cas {
            key: key.into(),
            expected: expected.into(),
            new_value: new_value.into(),
        }
    }

    /// The key this operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Get { key }
            | Self::Put { key, .. }
            | Self::Append { key, .. }
            | Self::Delete { key }
            | Self::Cas { key, .. } => key,
        }
    }
}

/// What the client observed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// A write (Put, Append, Delete) succeeded.
    Ok,
    /// A Get's result: `None` when the key is absent.
    Value(Option<Vec<u8>>),
    /// A Cas's result (whether it swapped), or a Delete's (whether the key existed).
    Swapped(bool),
    /// The outcome is unknown: the operation may or may not have taken effect.
    Unknown,
}

impl KvOutput {
    /// `Value(Some(value))`: a Get found `value`.
    pub fn found(value: impl Into<Vec<u8>>) -> Self {
        Self::Value(Some(value.into()))
    }

    /// `Value(None)`: a Get found the key absent.
    pub fn not_found() -> Self {
        Self::Value(None)
    }
}

/// The KV model: one key's state per partition, see the module docs for the semantics.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

impl Model for KvModel {
    type Input = KvInput;
    type Output = KvOutput;
    type State = KvState;

    fn init(&self) -> KvState {
        KvState::absent()
    }

    fn step(&self, state: &KvState, input: &KvInput, output: &KvOutput) -> Option<KvState> {
        match (input, output) {
            (KvInput::Get { .. }, KvOutput::Unknown) => Some(state.clone()),
            (KvInput::Get { .. }, KvOutput::Value(read)) => {
                state.holds(read.as_deref()).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, KvOutput::Ok | KvOutput::Unknown) => {
                Some(KvState::present(value))
            }
            (KvInput::Append { value, .. }, KvOutput::Ok | KvOutput::Unknown) => {
                Some(state.appended(value))
            }
            (KvInput::Delete { .. }, KvOutput::Ok | KvOutput::Unknown) => Some(KvState::absent()),
            (KvInput::Delete { .. }, KvOutput::Swapped(existed)) => {
                (state.is_present() == *existed).then(KvState::absent)
            }
            (
                KvInput::Cas {
                    expected,
                    new_value,
                    ..
                },
                KvOutput::Swapped(_) | KvOutput::Unknown,
            ) => {
                let swaps = state.matches_expected(expected);
                match output {
                    KvOutput::Swapped(observed) if *observed != swaps => None,
                    _ if swaps => Some(KvState::present(new_value)),
                    _ => Some(state.clone()),
                }
            }
            _ => None,
        }
    }

    /// Reads, failed Cas and Deletes of an absent key never change the state.
    fn is_read_only(&self, input: &KvInput, output: &KvOutput) -> bool {
        matches!(
            (input, output),
            (KvInput::Get { .. }, KvOutput::Value(_) | KvOutput::Unknown)
                | (KvInput::Cas { .. }, KvOutput::Swapped(false))
                | (KvInput::Delete { .. }, KvOutput::Swapped(false))
        )
    }

    fn may_become_acceptable(
        &self,
        state: &KvState,
        input: &KvInput,
        output: &KvOutput,
        pending: &mut dyn Iterator<Item = (&KvInput, &KvOutput)>,
    ) -> bool {
        reach::may_become_acceptable(state, input, output, pending)
    }

    /// One partition per key, in key order; unknown-outcome Gets are left out.
    fn partition(&self, history: &[KvOperation]) -> Vec<Vec<usize>> {
        let mut by_key: std::collections::BTreeMap<&[u8], Vec<usize>> = Default::default();
        for (index, op) in history.iter().enumerate() {
            let unknown_read = matches!(
                (&op.input, &op.output),
                (KvInput::Get { .. }, KvOutput::Unknown)
            );
            if !unknown_read {
                by_key.entry(op.input.key()).or_default().push(index);
            }
        }
        by_key.into_values().collect()
    }
}

/// Shows bytes as escaped text, shortened in the middle when long (unless `{:#?}`).
struct ShownBytes<'a>(&'a [u8]);

impl fmt::Debug for ShownBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        if f.alternate() || bytes.len() <= DEBUG_BYTES_MAX {
            return write!(f, "\"{}\"", bytes.escape_ascii());
        }
        let head = &bytes[..DEBUG_BYTES_END];
        let tail = &bytes[bytes.len() - DEBUG_BYTES_END..];
        write!(
            f,
            "\"{}\"..({} bytes)..\"{}\"",
            head.escape_ascii(),
            bytes.len(),
            tail.escape_ascii()
        )
    }
}

fn shown(bytes: &[u8]) -> ShownBytes<'_> {
    ShownBytes(bytes)
}

impl fmt::Debug for KvInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Get { key } => f.debug_tuple("Get").field(&shown(key)).finish(),
            Self::Put { key, value } => f
                .debug_tuple("Put")
                .field(&shown(key))
                .field(&shown(value))
                .finish(),
            Self::Append { key, value } => f
                .debug_tuple("Append")
                .field(&shown(key))
                .field(&shown(value))
                .finish(),
            Self::Delete { key } => f.debug_tuple("Delete").field(&shown(key)).finish(),
            Self::Cas {
                key,
                expected,
                new_value,
            } => f
                .debug_tuple("Cas")
                .field(&shown(key))
                .field(&shown(expected))
                .field(&shown(new_value))
                .finish(),
        }
    }
}

impl fmt::Debug for KvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("Ok"),
            Self::Value(value) => f
                .debug_tuple("Value")
                .field(&value.as_deref().map(shown))
                .finish(),
            Self::Swapped(swapped) => f.debug_tuple("Swapped").field(swapped).finish(),
            Self::Unknown => f.write_str("Unknown"),
        }
    }
}

#[cfg(test)]
mod tests;
