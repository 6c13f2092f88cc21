//! The write-ahead log's record codec. PURE: bytes in, records out; no files, no clock.
//!
//! # Record layout (all integers little-endian)
//!
//! ```text
//!  0        4          8          12     13
//!  +--------+----------+----------+------+---------------------+
//!  | len    | len_crc  | body_crc | kind | payload (len - 1 B) |
//!  | u32    | u32      | u32      | u8   |                     |
//!  +--------+----------+----------+------+---------------------+
//!  len      = bytes of kind + payload (1 ..= max_record_bytes)
//!  len_crc  = crc32(len's 4 bytes)       -- makes the length trustworthy on its own
//!  body_crc = crc32(kind + payload)
//! ```
//!
//! The length carries its own checksum so that a reader can tell "this header is real
//! and the record simply runs past the end of the file" (a torn write) from "these bytes
//! are garbage" without trusting a corrupt length, and so that a search for a later
//! valid record after a bad one costs one 4-byte CRC per byte offset, not one per
//! record-sized window. An all-zero header never passes (crc32 of four zero bytes is not
//! zero), so zero-filled space is never mistaken for a record.
//!
//! Kinds and payloads:
//! - `1` Entry: `index u64 | term u64 | entry kind u8 (0 normal, 1 no-op) | data`.
//!   An Entry at index `i` supersedes every earlier-written entry at `i` or later:
//!   replay truncates the log at `i - 1` before appending (truncation is implicit).
//! - `2` HardState: `term u64 | commit u64 | has_vote u8 | vote u64`.
//! - `3` SnapshotMarker: `index u64 | term u64 | log_kept u8`: a durable snapshot
//!   exists at (index, term); `log_kept` says whether entries after it were kept
//!   (the log held (index, term)) or the whole log was discarded.
//! - `4` SyncedUpTo: `offset u64`: when the write that this record starts was issued,
//!   an fsync had made the first `offset` bytes of this segment durable. The WAL starts
//!   every batch it writes with one (and ends every segment head with one, offset 0);
//!   replay ignores it, and `scan.rs` uses it to tell a torn tail from damage to synced
//!   bytes. Segments written before this kind existed hold none.
//!
//! # Invariants
//! - Decoding never panics and never allocates more than the input slice holds: the
//!   length is checked against `max_record_bytes` and against the bytes available
//!   before anything is read.
//! - Everything [`encode_record`] accepts, [`RecordDecoder`] decodes back unchanged.

use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, SnapshotMeta, Term};
use bytes::Bytes;
use std::fmt;

/// Bytes before the kind byte: `len`, `len_crc`, `body_crc`.
pub const RECORD_HEADER_BYTES: usize = 12;
/// The default cap on `len` (kind + payload) of one record: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: u32 = 64 * 1024 * 1024;
/// Fixed bytes of an Entry record's body before the data: kind + index + term + entry kind.
pub const ENTRY_BODY_OVERHEAD_BYTES: usize = 1 + 8 + 8 + 1;

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT_MARKER: u8 = 3;
const KIND_SYNCED_UP_TO: u8 = 4;
const HARD_STATE_PAYLOAD_BYTES: usize = 8 + 8 + 1 + 8;
const SNAPSHOT_MARKER_PAYLOAD_BYTES: usize = 8 + 8 + 1;
const SYNCED_UP_TO_PAYLOAD_BYTES: usize = 8;
/// Total bytes (header + body) of a SyncedUpTo record.
pub const SYNCED_UP_TO_RECORD_BYTES: usize = RECORD_HEADER_BYTES + 1 + SYNCED_UP_TO_PAYLOAD_BYTES;

/// "A durable snapshot exists at `meta`": written to the WAL after the snapshot file is
/// durable, so replay applies the snapshot's effect on the log at the right point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotMarker {
    /// Where the snapshot sits.
    pub meta: SnapshotMeta,
    /// Whether the log held `meta` and entries after it were kept; if false, the whole
    /// log was discarded (an installed snapshot replaced a divergent log).
    pub log_kept: bool,
}

/// One decoded WAL record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalRecord {
    /// A log entry (supersedes any earlier-written entry at its index or later).
    Entry(Entry),
    /// The hard state as of this point.
    HardState(HardState),
    /// A snapshot became durable at this point.
    SnapshotMarker(SnapshotMarker),
    /// The first `offset` bytes of this segment were durable when this record's write
    /// was issued (not a change of state: replay skips it).
    SyncedUpTo {
        /// Bytes of the segment an fsync had made durable.
        offset: u64,
    },
}

/// Why bytes are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptReason {
    /// The length's checksum does not match: the header is garbage (or zeros).
    BadLengthChecksum,
    /// The (checksum-valid) length is 0: a record has at least a kind byte.
    ZeroLength,
    /// The (checksum-valid) length exceeds the limit.
    TooLong {
        /// The length found.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The body's checksum does not match.
    BadBodyChecksum,
    /// The kind byte is not a known kind.
    UnknownKind(u8),
    /// The payload does not have the layout its kind requires.
    BadPayload(&'static str),
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptReason::BadLengthChecksum => write!(f, "record length checksum mismatch"),
            CorruptReason::ZeroLength => write!(f, "record length is zero"),
            CorruptReason::TooLong { len, max } => {
                write!(f, "record length {len} exceeds the limit of {max} bytes")
            }
            CorruptReason::BadBodyChecksum => write!(f, "record body checksum mismatch"),
            CorruptReason::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            CorruptReason::BadPayload(what) => write!(f, "malformed payload: {what}"),
        }
    }
}

/// A record that cannot be encoded because its body exceeds `max_record_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordTooLarge {
    /// Body bytes the record would need.
    pub len: usize,
    /// The limit.
    pub max: u32,
}

/// What the decoder found at its current position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete, checksum-valid record occupying `size_bytes` bytes at `offset`.
    Record {
        /// Where the record starts.
        offset: u64,
        /// Header + body bytes.
        size_bytes: usize,
        /// The record.
        record: WalRecord,
    },
    /// The input ends inside the record at `offset`: a partial header, or a
    /// checksum-valid header whose body runs past the end. A torn-tail candidate.
    NeedMore {
        /// Where the incomplete record starts.
        offset: u64,
    },
    /// The bytes at `offset` are not a valid record.
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
        /// When the header (length) was valid: where the next record would start.
        next_offset: Option<u64>,
    },
}

/// Appends one encoded record to `out`.
///
/// # Errors
/// [`RecordTooLarge`] when the body would exceed `max_record_bytes`; `out` is unchanged.
pub fn encode_record(
    record: &WalRecord,
    max_record_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<(), RecordTooLarge> {
    match record {
        WalRecord::Entry(entry) => encode_entry(entry, max_record_bytes, out),
        WalRecord::HardState(hs) => encode_body(KIND_HARD_STATE, max_record_bytes, out, |body| {
            body.extend_from_slice(&hs.term.get().to_le_bytes());
            body.extend_from_slice(&hs.commit.get().to_le_bytes());
            body.push(u8::from(hs.vote.is_some()));
            body.extend_from_slice(&hs.vote.map_or(0, NodeId::get).to_le_bytes());
        }),
        WalRecord::SnapshotMarker(marker) => {
            encode_body(KIND_SNAPSHOT_MARKER, max_record_bytes, out, |body| {
                body.extend_from_slice(&marker.meta.index.get().to_le_bytes());
                body.extend_from_slice(&marker.meta.term.get().to_le_bytes());
                body.push(u8::from(marker.log_kept));
            })
        }
        WalRecord::SyncedUpTo { offset } => {
            encode_body(KIND_SYNCED_UP_TO, max_record_bytes, out, |body| {
                body.extend_from_slice(&offset.to_le_bytes());
            })
        }
    }
}

/// Appends one encoded Entry record to `out` (without cloning the entry).
///
/// # Errors
/// [`RecordTooLarge`] when the body would exceed `max_record_bytes`; `out` is unchanged.
pub fn encode_entry(
    entry: &Entry,
    max_record_bytes: u32,
    out: &mut Vec<u8>,
) -> Result<(), RecordTooLarge> {
    let len = ENTRY_BODY_OVERHEAD_BYTES.saturating_add(entry.data.len());
    if len > max_record_bytes as usize {
        return Err(RecordTooLarge {
            len,
            max: max_record_bytes,
        });
    }
    encode_body(KIND_ENTRY, max_record_bytes, out, |body| {
        body.extend_from_slice(&entry.index.get().to_le_bytes());
        body.extend_from_slice(&entry.term.get().to_le_bytes());
        body.push(match entry.kind {
            EntryKind::Normal => 0,
            EntryKind::Noop => 1,
            EntryKind::Membership => 2,
        });
        body.extend_from_slice(&entry.data);
    })
}

/// Writes header placeholder, kind and payload, then fills in the header.
fn encode_body(
    kind: u8,
    max_record_bytes: u32,
    out: &mut Vec<u8>,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), RecordTooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    out.push(kind);
    write_payload(out);
    let body_len = out.len() - start - RECORD_HEADER_BYTES;
    let len = match u32::try_from(body_len) {
        Ok(len) if len <= max_record_bytes => len,
        _ => {
            out.truncate(start);
            return Err(RecordTooLarge {
                len: body_len,
                max: max_record_bytes,
            });
        }
    };
    let header = record_header(len, &out[start + RECORD_HEADER_BYTES..]);
    out[start..start + RECORD_HEADER_BYTES].copy_from_slice(&header);
    Ok(())
}

/// The header of a record whose body (kind + payload) is `body`, `len` bytes long.
fn record_header(len: u32, body: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
    let len_bytes = len.to_le_bytes();
    let mut header = [0u8; RECORD_HEADER_BYTES];
    header[..4].copy_from_slice(&len_bytes);
    header[4..8].copy_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    header[8..].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    header
}

/// The SyncedUpTo record for `offset`, encoded: what [`encode_record`] writes for it, as
/// a fixed-size array (the WAL reserves its slot before it knows the offset).
pub fn encode_synced_up_to(offset: u64) -> [u8; SYNCED_UP_TO_RECORD_BYTES] {
    let mut body = [0u8; 1 + SYNCED_UP_TO_PAYLOAD_BYTES];
    body[0] = KIND_SYNCED_UP_TO;
    body[1..].copy_from_slice(&offset.to_le_bytes());
    let mut out = [0u8; SYNCED_UP_TO_RECORD_BYTES];
    out[..RECORD_HEADER_BYTES].copy_from_slice(&record_header(body.len() as u32, &body));
    out[RECORD_HEADER_BYTES..].copy_from_slice(&body);
    out
}

/// Total bytes (header + body) the record for `entry` occupies.
pub fn encoded_entry_bytes(entry: &Entry) -> usize {
    RECORD_HEADER_BYTES + ENTRY_BODY_OVERHEAD_BYTES + entry.data.len()
}

/// Decodes records one after another from a byte slice (a whole segment file), from its
/// start or from a given offset.
///
/// Yields `Record`s until the end of the input (then `None`), or one final `NeedMore` or
/// `Corrupt` after which it yields `None`. Offsets are positions in the whole slice.
#[derive(Debug)]
pub struct RecordDecoder<'a> {
    buf: &'a [u8],
    offset: usize,
    max_record_bytes: u32,
    done: bool,
}

impl<'a> RecordDecoder<'a> {
    /// A decoder over `buf`, starting at offset 0.
    pub fn new(buf: &'a [u8], max_record_bytes: u32) -> RecordDecoder<'a> {
        RecordDecoder::starting_at(buf, 0, max_record_bytes)
    }

    /// A decoder over `buf`, starting at `offset` (yields nothing if that is past the end).
    pub fn starting_at(buf: &'a [u8], offset: usize, max_record_bytes: u32) -> RecordDecoder<'a> {
        RecordDecoder {
            buf,
            offset,
            max_record_bytes,
            done: false,
        }
    }

    /// Where the next record would start.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl Iterator for RecordDecoder<'_> {
    type Item = Decoded;

    fn next(&mut self) -> Option<Decoded> {
        if self.done || self.offset >= self.buf.len() {
            return None;
        }
        let rest = self.buf.get(self.offset..).unwrap_or_default();
        let decoded = decode_at(rest, self.offset as u64, self.max_record_bytes);
        match &decoded {
            Decoded::Record { size_bytes, .. } => self.offset += size_bytes,
            Decoded::NeedMore { .. } | Decoded::Corrupt { .. } => self.done = true,
        }
        Some(decoded)
    }
}

/// Whether a checksum-valid record starts exactly at the beginning of `buf`.
pub fn is_valid_record_at(buf: &[u8], max_record_bytes: u32) -> bool {
    matches!(decode_at(buf, 0, max_record_bytes), Decoded::Record { .. })
}

/// Decodes the record at the start of `rest`; `offset` is only reported back.
fn decode_at(rest: &[u8], offset: u64, max_record_bytes: u32) -> Decoded {
    let Some(header) = rest.get(..RECORD_HEADER_BYTES) else {
        return Decoded::NeedMore { offset };
    };
    let len_bytes = [header[0], header[1], header[2], header[3]];
    let len_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let body_crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let corrupt = |reason, next_offset| Decoded::Corrupt {
        offset,
        reason,
        next_offset,
    };
    if crc32fast::hash(&len_bytes) != len_crc {
        return corrupt(CorruptReason::BadLengthChecksum, None);
    }
    let len = u32::from_le_bytes(len_bytes);
    if len == 0 {
        return corrupt(
            CorruptReason::ZeroLength,
            Some(offset + RECORD_HEADER_BYTES as u64),
        );
    }
    if len > max_record_bytes {
        return corrupt(
            CorruptReason::TooLong {
                len,
                max: max_record_bytes,
            },
            None,
        );
    }
    let size_bytes = RECORD_HEADER_BYTES + len as usize;
    let next_offset = Some(offset + size_bytes as u64);
    let Some(body) = rest.get(RECORD_HEADER_BYTES..size_bytes) else {
        return Decoded::NeedMore { offset };
    };
    if crc32fast::hash(body) != body_crc {
        return corrupt(CorruptReason::BadBodyChecksum, next_offset);
    }
    match decode_body(body) {
        Ok(record) => Decoded::Record {
            offset,
            size_bytes,
            record,
        },
        Err(reason) => corrupt(reason, next_offset),
    }
}

/// Decodes a checksum-valid body (kind + payload).
fn decode_body(body: &[u8]) -> Result<WalRecord, CorruptReason> {
    let (&kind, payload) = body.split_first().ok_or(CorruptReason::ZeroLength)?;
    let mut reader = PayloadReader { rest: payload };
    match kind {
        KIND_ENTRY => {
            let index = LogIndex(reader.u64("entry index")?);
            let term = Term(reader.u64("entry term")?);
            let kind = match reader.u8("entry kind")? {
                0 => EntryKind::Normal,
                1 => EntryKind::Noop,
                2 => EntryKind::Membership,
                _ => return Err(CorruptReason::BadPayload("unknown entry kind")),
            };
            let data = Bytes::copy_from_slice(reader.rest);
            Ok(WalRecord::Entry(Entry {
                index,
                term,
                kind,
                data,
            }))
        }
        KIND_HARD_STATE => {
            reader.expect_len(HARD_STATE_PAYLOAD_BYTES, "hard state size")?;
            let term = Term(reader.u64("hard state term")?);
            let commit = LogIndex(reader.u64("hard state commit")?);
            let has_vote = reader.u8("hard state vote flag")?;
            let vote = NodeId(reader.u64("hard state vote")?);
            let vote = match has_vote {
                0 => None,
                1 => Some(vote),
                _ => return Err(CorruptReason::BadPayload("bad vote flag")),
            };
            Ok(WalRecord::HardState(HardState { term, vote, commit }))
        }
        KIND_SNAPSHOT_MARKER => {
            reader.expect_len(SNAPSHOT_MARKER_PAYLOAD_BYTES, "snapshot marker size")?;
            let index = LogIndex(reader.u64("marker index")?);
            let term = Term(reader.u64("marker term")?);
            let log_kept = match reader.u8("marker flag")? {
                0 => false,
                1 => true,
                _ => return Err(CorruptReason::BadPayload("bad marker flag")),
            };
            let meta = SnapshotMeta { index, term };
            Ok(WalRecord::SnapshotMarker(SnapshotMarker { meta, log_kept }))
        }
        KIND_SYNCED_UP_TO => {
            reader.expect_len(SYNCED_UP_TO_PAYLOAD_BYTES, "synced-up-to size")?;
            let offset = reader.u64("synced-up-to offset")?;
            Ok(WalRecord::SyncedUpTo { offset })
        }
        other => Err(CorruptReason::UnknownKind(other)),
    }
}

/// Bounds-checked little-endian reads from a payload.
struct PayloadReader<'a> {
    rest: &'a [u8],
}

impl PayloadReader<'_> {
    fn expect_len(&self, len: usize, what: &'static str) -> Result<(), CorruptReason> {
        if self.rest.len() == len {
            Ok(())
        } else {
            Err(CorruptReason::BadPayload(what))
        }
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CorruptReason> {
        let (head, tail) = self
            .rest
            .split_at_checked(8)
            .ok_or(CorruptReason::BadPayload(what))?;
        self.rest = tail;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(head);
        Ok(u64::from_le_bytes(bytes))
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CorruptReason> {
        let (&byte, tail) = self
            .rest
            .split_first()
            .ok_or(CorruptReason::BadPayload(what))?;
        self.rest = tail;
        Ok(byte)
    }
}

#[cfg(test)]
mod tests;
