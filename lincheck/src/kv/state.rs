//! One key's value in the KV model, built to stay cheap when appends make values long.
//!
//! A present value is a persistent chain of chunks: `Append` adds one node pointing at the
//! previous value instead of copying it, so a step costs O(appended bytes) and the memo's many
//! states share their common prefixes. Every node caches the total length and the FNV-1a hash
//! of the whole value, extended incrementally (FNV-1a is a streaming hash:
//! `fnv(a ++ b) == fnv_extend(fnv(a), b)`), so hashing a state is O(1) and most comparisons
//! are decided by length or hash alone.
//!
//! Invariants: `len` and `hash` of a node describe the whole value up to and including that
//! node; equal values have equal hashes however they were built (one Put, or many Appends).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::shown;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// The hash of an absent key (any constant works: equality, not the hash, is authoritative).
const ABSENT_HASH: u64 = 0;

/// FNV-1a continued from `hash` over `bytes`.
fn fnv_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The last chunk of a value, linked to the chunks before it.
struct Chunk {
    bytes: Box<[u8]>,
    prev: Option<Arc<Chunk>>,
    /// Length of the whole value up to and including this chunk.
    len: usize,
    /// FNV-1a of the whole value up to and including this chunk.
    hash: u64,
}

impl Drop for Chunk {
    /// Drops a long chain iteratively; the default recursive drop could overflow the stack.
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(node) = prev {
            match Arc::try_unwrap(node) {
                Ok(mut node) => prev = node.prev.take(),
                Err(_) => break,
            }
        }
    }
}

impl Chunk {
    /// Whether the value ending at this chunk equals `bytes`.
    fn equals_slice(&self, bytes: &[u8]) -> bool {
        if self.len != bytes.len() {
            return false;
        }
        let mut end = bytes.len();
        let mut node = Some(self);
        while let Some(chunk) = node {
            let start = end - chunk.bytes.len();
            if bytes[start..end] != *chunk.bytes {
                return false;
            }
            end = start;
            node = chunk.prev.as_deref();
        }
        true
    }

    /// Whether two values are equal, comparing from the end and stopping early where the
    /// chains share a node.
    fn equals_chain(&self, other: &Chunk) -> bool {
        if self.len != other.len || self.hash != other.hash {
            return false;
        }
        let (mut a, mut a_end) = (self, self.bytes.len());
        let (mut b, mut b_end) = (other, other.bytes.len());
        loop {
            if a_end == a.bytes.len() && b_end == b.bytes.len() && std::ptr::eq(a, b) {
                return true;
            }
            if a_end == 0 {
                match a.prev.as_deref() {
                    Some(prev) => (a, a_end) = (prev, prev.bytes.len()),
                    None => return true, // equal total lengths: `b` is exhausted too
                }
                continue;
            }
            if b_end == 0 {
                match b.prev.as_deref() {
                    Some(prev) => (b, b_end) = (prev, prev.bytes.len()),
                    None => return true,
                }
                continue;
            }
            let n = a_end.min(b_end);
            if a.bytes[a_end - n..a_end] != b.bytes[b_end - n..b_end] {
                return false;
            }
            (a_end, b_end) = (a_end - n, b_end - n);
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.len];
        let mut end = self.len;
        let mut node = Some(self);
        while let Some(chunk) = node {
            let start = end - chunk.bytes.len();
            bytes[start..end].copy_from_slice(&chunk.bytes);
            end = start;
            node = chunk.prev.as_deref();
        }
        bytes
    }
}

/// One key's value in the model: absent, or a byte string (see the module docs).
#[derive(Clone)]
pub struct KvState {
    value: Option<Arc<Chunk>>,
}

impl KvState {
    pub(super) fn absent() -> Self {
        Self { value: None }
    }

    pub(super) fn present(bytes: &[u8]) -> Self {
        let chunk = Chunk {
            bytes: bytes.into(),
            prev: None,
            len: bytes.len(),
            hash: fnv_extend(FNV_OFFSET, bytes),
        };
        Self {
            value: Some(Arc::new(chunk)),
        }
    }

    pub(super) fn appended(&self, suffix: &[u8]) -> Self {
        let Some(last) = &self.value else {
            return Self::present(suffix);
        };
        let chunk = Chunk {
            bytes: suffix.into(),
            prev: Some(Arc::clone(last)),
            len: last.len + suffix.len(),
            hash: fnv_extend(last.hash, suffix),
        };
        Self {
            value: Some(Arc::new(chunk)),
        }
    }

    /// Whether the key is present.
    pub fn is_present(&self) -> bool {
        self.value.is_some()
    }

    /// The value's length (0 when absent).
    pub(super) fn len(&self) -> usize {
        self.value.as_ref().map_or(0, |chunk| chunk.len)
    }

    /// Whether the value (empty when absent) is a prefix of `bytes`.
    pub(super) fn is_prefix_of(&self, bytes: &[u8]) -> bool {
        match &self.value {
            None => true,
            Some(chunk) => chunk.len <= bytes.len() && chunk.equals_slice(&bytes[..chunk.len]),
        }
    }

    /// A copy of the value, or `None` when the key is absent.
    pub fn value(&self) -> Option<Vec<u8>> {
        self.value.as_deref().map(Chunk::to_vec)
    }

    /// Whether a Get returning `read` (`None` = absent) is consistent with this state.
    pub(super) fn holds(&self, read: Option<&[u8]>) -> bool {
        match (&self.value, read) {
            (None, None) => true,
            (Some(chunk), Some(read)) => chunk.equals_slice(read),
            _ => false,
        }
    }

    /// Whether a Cas with `expected` (empty = absent) would swap.
    pub(super) fn matches_expected(&self, expected: &[u8]) -> bool {
        match &self.value {
            None => expected.is_empty(),
            Some(chunk) => !expected.is_empty() && chunk.equals_slice(expected),
        }
    }

    fn hash_code(&self) -> u64 {
        self.value.as_ref().map_or(ABSENT_HASH, |chunk| chunk.hash)
    }
}

impl PartialEq for KvState {
    fn eq(&self, other: &Self) -> bool {
        match (&self.value, &other.value) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.equals_chain(b),
            _ => false,
        }
    }
}

impl Eq for KvState {}

impl Hash for KvState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_code());
    }
}

impl fmt::Debug for KvState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            None => f.write_str("None"),
            Some(value) => f.debug_tuple("Some").field(&shown(&value)).finish(),
        }
    }
}
