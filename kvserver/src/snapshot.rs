//! The snapshot format of the KV state machine: everything a replica needs to resume, the
//! data and the client sessions (so retries stay exactly-once across restarts and installs).
//!
//! ```text
//! version 2 (written; little-endian)
//!   magic "RKVS" | version u32 = 2 | body | body_len u64 | body_crc32 u32
//! version 1 (still read)
//!   magic "RKVS" | version u32 = 1 | body_len u64 | body_crc32 u32 | body
//! body (covered by the CRC)
//!   applied_index u64
//!   key_count u64,     then per key in increasing order:   key_len varint | key | value_len varint | value
//!   session_count u64, then per session in client-id order:
//!     client_id u64 | first_unacked_seq u64 | last_active_index u64 | reply_count u64,
//!     then per reply in seq order: seq u64 | reply_len varint | WriteResponse (protobuf)
//! ```
//!
//! Version 2 puts the body's length and checksum after it so that a snapshot is streamed
//! into its file as it is encoded ([`write_view`] through `RaftNode::snapshot_streamed`):
//! no encoded copy of a data set is ever held in memory.
//!
//! Decoding never panics and never allocates from an unchecked length: every length is
//! checked against the bytes that remain, the checksum is verified before anything is
//! parsed, and order (keys, client ids, seqs) is verified so a decoded state machine keeps
//! its invariants. The skip list is rebuilt in O(n) from the sorted keys.

use std::collections::BTreeMap;

use std::io::{Read, Write};

mod input;
use input::BodyInput;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;
use proto::kv::WriteResponse;
use raft::LogIndex;

use crate::error::SnapshotError;
use crate::sessions::{Session, Sessions};
use crate::skiplist::SortedBuilder;
use crate::state_machine::{Limits, SnapshotView, StateMachine};

/// The first four bytes of every snapshot.
pub const MAGIC: [u8; 4] = *b"RKVS";
/// The format version this build writes (it also reads version 1).
pub const VERSION: u32 = 2;
/// Bytes before the body (version 2).
const HEADER_BYTES: usize = 4 + 4;
/// Bytes after the body (version 2).
const TRAILER_BYTES: usize = 8 + 4;
/// Encoded bytes gathered before one write to the output.
const WRITE_CHUNK_BYTES: usize = 256 << 10;
/// Most bytes a length varint takes for a length below 2^35.
const MAX_LEN_VARINT_BYTES: usize = 5;

/// Encodes the whole state machine (data, sessions, applied index).
pub fn encode(state: &StateMachine) -> Bytes {
    let bound = body_len_bound(state.len(), state.data_bytes(), state.sessions());
    let mut out = Vec::with_capacity(HEADER_BYTES + bound + TRAILER_BYTES);
    let data = Data {
        len: state.len(),
        entries: state.iter(),
    };
    if let Err(error) = write_parts(state.applied_index(), data, state.sessions(), &mut out) {
        unreachable!("a Vec grows on demand: {error}");
    }
    Bytes::from(out)
}

/// Encodes a view taken by [`StateMachine::capture`] into memory; the same bytes as
/// [`encode`] of the state machine at the view's index.
pub fn encode_view(view: &SnapshotView) -> Bytes {
    let bound = body_len_bound(view.data.len(), view.data_bytes, &view.sessions);
    let mut out = Vec::with_capacity(HEADER_BYTES + bound + TRAILER_BYTES);
    if let Err(error) = write_view(view, &mut out) {
        unreachable!("a Vec grows on demand: {error}");
    }
    Bytes::from(out)
}

/// Streams the encoding of a view taken by [`StateMachine::capture`] into `out`, in
/// pieces of `WRITE_CHUNK_BYTES` (meant for a thread other than the applier, and for an
/// `out` that is the snapshot file). Returns the bytes written.
///
/// # Errors
/// What `out` returned.
pub fn write_view(view: &SnapshotView, out: &mut dyn Write) -> std::io::Result<u64> {
    let data = Data {
        len: view.data.len(),
        entries: view.data.iter(),
    };
    write_parts(view.applied_index, data, &view.sessions, out)
}

/// The key-value part of a snapshot: entries in key order, and their count.
struct Data<I> {
    len: usize,
    entries: I,
}

fn write_parts<'a>(
    applied_index: LogIndex,
    data: Data<impl Iterator<Item = (&'a Bytes, &'a Bytes)>>,
    sessions: &Sessions,
    out: &mut dyn Write,
) -> std::io::Result<u64> {
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    let mut body = BodyWriter::new(out);
    body.buf.put_u64_le(applied_index.get());
    body.buf.put_u64_le(data.len as u64);
    for (key, value) in data.entries {
        encode_varint(key.len() as u64, &mut body.buf);
        body.buf.put_slice(key);
        encode_varint(value.len() as u64, &mut body.buf);
        body.buf.put_slice(value);
        body.write_if_full()?;
    }
    body.buf.put_u64_le(sessions.len() as u64);
    for (client_id, session) in sessions.iter() {
        encode_session(client_id, session, &mut body.buf);
        body.write_if_full()?;
    }
    let (body_len, crc) = body.finish()?;
    out.write_all(&body_len.to_le_bytes())?;
    out.write_all(&crc.to_le_bytes())?;
    Ok((HEADER_BYTES + TRAILER_BYTES) as u64 + body_len)
}

/// The body on its way out: encoded into a small buffer, checksummed and counted as the
/// buffer is written.
struct BodyWriter<'o> {
    out: &'o mut dyn Write,
    buf: BytesMut,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<'o> BodyWriter<'o> {
    fn new(out: &'o mut dyn Write) -> Self {
        BodyWriter {
            out,
            buf: BytesMut::with_capacity(2 * WRITE_CHUNK_BYTES),
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    fn write_if_full(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            self.write_buffer()?;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> std::io::Result<()> {
        self.crc.update(&self.buf);
        self.len += self.buf.len() as u64;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Writes the rest; returns the body's length and checksum.
    fn finish(mut self) -> std::io::Result<(u64, u32)> {
        self.write_buffer()?;
        Ok((self.len, self.crc.finalize()))
    }
}

fn encode_session(client_id: u64, session: &Session, out: &mut BytesMut) {
    out.put_u64_le(client_id);
    out.put_u64_le(session.first_unacked_seq());
    out.put_u64_le(session.last_active_index().get());
    out.put_u64_le(session.replies().len() as u64);
    for (seq, reply) in session.replies() {
        out.put_u64_le(*seq);
        if let Err(error) = reply.encode_length_delimited(out) {
            unreachable!("a BytesMut grows on demand: {error}");
        }
    }
}

/// The body size, from above (at most 10 bytes per key over), so encoding allocates once
/// without a second walk over the data: the state machine tracks the sum of key and value
/// lengths, and a length varint takes at most 5 bytes for lengths below 32 GiB (larger
/// ones, which `Limits::validate` forbids anyway, only cost a reallocation).
fn body_len_bound(len: usize, data_bytes: usize, sessions: &Sessions) -> usize {
    let data = data_bytes + len * 2 * MAX_LEN_VARINT_BYTES;
    let sessions: usize = sessions
        .iter()
        .map(|(_, session)| {
            32 + session
                .replies()
                .values()
                .map(|r| 8 + encoded_len_varint(r.encoded_len() as u64) + r.encoded_len())
                .sum::<usize>()
        })
        .sum();
    8 + 8 + data + 8 + sessions
}

/// Decodes a snapshot with the default [`Limits`].
///
/// # Errors
/// A [`SnapshotError`] when the data is not a valid snapshot of this version.
pub fn decode(data: &[u8]) -> Result<StateMachine, SnapshotError> {
    decode_with_limits(data, Limits::default())
}

/// Decodes a snapshot held in memory into a state machine that runs with `limits`.
///
/// # Errors
/// As [`decode_from`].
pub fn decode_with_limits(data: &[u8], limits: Limits) -> Result<StateMachine, SnapshotError> {
    decode_from(data, data.len() as u64, limits)
}

/// Decodes a snapshot of `len` bytes read from `input` as a stream (the storage's
/// snapshot file: no copy of the encoded data set is held in memory) into a state
/// machine that runs with `limits`. The checksum covers the whole body, so it is checked
/// at the end; until then every field is checked against the bytes the body still holds,
/// and nothing is returned unless all of it is valid.
///
/// # Errors
/// A [`SnapshotError`] when the data is not a valid snapshot of this version: bad magic,
/// other version, wrong length, checksum mismatch, truncated or malformed fields, keys or
/// sessions out of order, trailing bytes; or `Read` when `input` fails.
pub fn decode_from(
    mut input: impl Read,
    len: u64,
    limits: Limits,
) -> Result<StateMachine, SnapshotError> {
    let mut header = Header {
        input: &mut input,
        remaining: len,
    };
    if header.bytes::<4>("magic")? != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u32::from_le_bytes(header.bytes::<4>("version")?);
    let (body_len, v1_crc) = match version {
        1 => {
            let declared = u64::from_le_bytes(header.bytes::<8>("body length")?);
            let crc = u32::from_le_bytes(header.bytes::<4>("checksum")?);
            if declared != header.remaining {
                return Err(SnapshotError::BodyLength {
                    declared,
                    actual: header.remaining,
                });
            }
            (declared, Some(crc))
        }
        2 => {
            let trailer = TRAILER_BYTES as u64;
            let body_len =
                header
                    .remaining
                    .checked_sub(trailer)
                    .ok_or(SnapshotError::Truncated {
                        what: "trailer",
                        needed: trailer,
                        remaining: header.remaining,
                    })?;
            (body_len, None)
        }
        found => {
            return Err(SnapshotError::UnsupportedVersion {
                found,
                supported: VERSION,
            })
        }
    };
    let mut body = BodyInput::new(&mut input, body_len);
    let applied_index = LogIndex(body.u64("applied index")?);
    let list = decode_data(&mut body)?;
    let sessions = decode_sessions(&mut body, &limits)?;
    if body.remaining() != 0 {
        return Err(SnapshotError::TrailingBytes {
            count: body.remaining(),
        });
    }
    let (actual_crc, input) = body.finish();
    let expected_crc = match v1_crc {
        Some(crc) => crc,
        None => {
            let mut trailer = Header {
                input,
                remaining: TRAILER_BYTES as u64,
            };
            let declared = u64::from_le_bytes(trailer.bytes::<8>("body length")?);
            if declared != body_len {
                return Err(SnapshotError::BodyLength {
                    declared,
                    actual: body_len,
                });
            }
            u32::from_le_bytes(trailer.bytes::<4>("checksum")?)
        }
    };
    if actual_crc != expected_crc {
        return Err(SnapshotError::Checksum {
            expected: expected_crc,
            actual: actual_crc,
        });
    }
    Ok(StateMachine::from_parts(
        list,
        sessions,
        applied_index,
        limits,
    ))
}

/// The fixed fields around the body, read straight from the input.
struct Header<R> {
    input: R,
    /// Bytes of the snapshot not read yet.
    remaining: u64,
}

impl<R: Read> Header<R> {
    fn bytes<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        if (N as u64) > self.remaining {
            return Err(SnapshotError::Truncated {
                what,
                needed: N as u64,
                remaining: self.remaining,
            });
        }
        let mut out = [0u8; N];
        self.input
            .read_exact(&mut out)
            .map_err(|e| SnapshotError::Read {
                reason: e.to_string(),
            })?;
        self.remaining -= N as u64;
        Ok(out)
    }
}

fn decode_data<R: Read>(
    body: &mut BodyInput<R>,
) -> Result<crate::skiplist::SkipList<Bytes, Bytes>, SnapshotError> {
    let count = body.u64("key count")?;
    // Each entry takes at least two bytes (two length prefixes): never reserve more than the
    // input could hold.
    let capacity = count.min(body.remaining() / 2);
    let mut builder = SortedBuilder::with_capacity(usize::try_from(capacity).unwrap_or(0));
    for position in 0..count {
        let key = body.prefixed("key")?;
        let value = body.prefixed("value")?;
        builder
            .push(key, value)
            .map_err(|_| SnapshotError::KeysOutOfOrder { position })?;
    }
    Ok(builder.finish())
}

fn decode_sessions<R: Read>(
    reader: &mut BodyInput<R>,
    limits: &Limits,
) -> Result<Sessions, SnapshotError> {
    let mut sessions = Sessions::new(limits.max_sessions, limits.max_replies_per_session);
    let count = reader.u64("session count")?;
    let mut previous_client = None;
    for _ in 0..count {
        let client_id = reader.u64("client id")?;
        if previous_client.is_some_and(|previous| previous >= client_id) {
            return Err(SnapshotError::SessionsOutOfOrder {
                what: "client ids",
                client_id,
            });
        }
        previous_client = Some(client_id);
        let session = decode_session(reader, client_id)?;
        sessions.insert_restored(client_id, session);
    }
    Ok(sessions)
}

fn decode_session<R: Read>(
    reader: &mut BodyInput<R>,
    client_id: u64,
) -> Result<Session, SnapshotError> {
    let first_unacked_seq = reader.u64("first unacked seq")?;
    let last_active_index = LogIndex(reader.u64("last active index")?);
    let reply_count = reader.u64("reply count")?;
    let mut replies = BTreeMap::new();
    let mut previous_seq = None;
    for _ in 0..reply_count {
        let seq = reader.u64("reply seq")?;
        if seq < first_unacked_seq {
            return Err(SnapshotError::Malformed {
                what: "reply seq below the session watermark",
            });
        }
        if previous_seq.is_some_and(|previous| previous >= seq) {
            return Err(SnapshotError::SessionsOutOfOrder {
                what: "reply seqs",
                client_id,
            });
        }
        previous_seq = Some(seq);
        let bytes = reader.prefixed("reply")?;
        let reply = WriteResponse::decode(bytes).map_err(|error| SnapshotError::BadReply {
            client_id,
            seq,
            reason: error.to_string(),
        })?;
        replies.insert(seq, reply);
    }
    Ok(Session::from_parts(
        replies,
        first_unacked_seq,
        last_active_index,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_machine::register_request;
    use proptest::prelude::*;
    use proto::kv::{write_request::Op, Put, WriteRequest};

    /// A state machine with data, several sessions with cached replies (one an error), and a
    /// non-trivial applied index.
    fn sample() -> StateMachine {
        let mut sm = StateMachine::new(Limits::default());
        for index in 1..=3 {
            sm.apply(LogIndex(index), &register_request()); // client ids 1, 2, 3
        }
        let mut index = 10;
        for client_id in [3u64, 1, 2] {
            for seq in 1..=3 {
                let key = format!("key-{client_id}-{seq}");
                let op = Op::Put(Put {
                    key: key.into(),
                    value: vec![seq as u8; 40].into(),
                });
                let first_unacked_seq = if seq == 3 { 2 } else { 1 };
                let request = WriteRequest {
                    client_id,
                    seq,
                    first_unacked_seq,
                    op: Some(op),
                };
                index += 1;
                sm.apply(LogIndex(index), &request);
            }
        }
        let bad = WriteRequest {
            client_id: 9,
            seq: 1,
            first_unacked_seq: 1,
            op: None,
        };
        sm.apply(LogIndex(index + 5), &bad);
        sm
    }

    /// Frames `body` as the current version does, with a valid length and checksum.
    fn with_header(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out
    }

    /// Frames `body` as version 1 did (length and checksum before it).
    fn with_v1_header(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// The body of an encoded snapshot (current version).
    fn body_of(encoded: &[u8]) -> &[u8] {
        &encoded[HEADER_BYTES..encoded.len() - TRAILER_BYTES]
    }

    #[test]
    fn version_1_snapshots_still_decode() {
        let sm = sample();
        let encoded = encode(&sm);
        assert_eq!(decode(&with_v1_header(body_of(&encoded))).unwrap(), sm);
    }

    #[test]
    fn streaming_writes_the_same_bytes_in_pieces() {
        /// Records the size of every write.
        struct Pieces(Vec<u8>, Vec<usize>);
        impl Write for Pieces {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.extend_from_slice(data);
                self.1.push(data.len());
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sm = StateMachine::new(Limits::default());
        let value = Bytes::from(vec![7u8; 1000]);
        for i in 0..2000u64 {
            let request = proto::kv::WriteRequest {
                client_id: 0,
                seq: 0,
                first_unacked_seq: 0,
                op: Some(Op::Register(proto::kv::Register {})),
            };
            sm.apply(LogIndex(2 * i + 1), &request);
            let put = WriteRequest {
                client_id: 2 * i + 1,
                seq: 1,
                first_unacked_seq: 1,
                op: Some(Op::Put(Put {
                    key: format!("key-{i:05}").into(),
                    value: value.clone(),
                })),
            };
            sm.apply(LogIndex(2 * i + 2), &put);
        }
        let expected = encode(&sm);
        let view = sm.capture().unwrap();
        let mut out = Pieces(Vec::new(), Vec::new());
        let written = write_view(&view, &mut out).unwrap();
        assert_eq!(written, expected.len() as u64);
        assert_eq!(out.0, expected.to_vec());
        assert!(
            out.1.iter().all(|n| *n <= 2 * WRITE_CHUNK_BYTES),
            "written in bounded pieces, not whole"
        );
        assert!(out.1.len() > 4, "2 MB of data in several pieces");
    }

    #[test]
    fn a_captured_view_encodes_the_state_at_capture_whatever_follows() {
        let mut sm = sample();
        let at_capture = sm.clone();
        let view = sm.capture().expect("no other view");
        let mut index = sm.applied_index().get();
        for (client_id, key) in [(1u64, "key-1-1"), (2, "brand-new"), (3, "key-3-2")] {
            index += 1;
            let request = WriteRequest {
                client_id,
                seq: 4,
                first_unacked_seq: 4,
                op: Some(Op::Put(Put {
                    key: key.into(),
                    value: "later".into(),
                })),
            };
            sm.apply(LogIndex(index), &request);
        }
        assert_ne!(sm, at_capture);
        assert_eq!(encode_view(&view), encode(&at_capture));
        assert_eq!(decode(&encode_view(&view)).unwrap(), at_capture);
        drop(view);
        let after = sm.clone();
        assert!(sm.settle(usize::MAX));
        assert_eq!(sm, after, "folding the writes back changes nothing visible");
        assert_eq!(encode(&sm), encode(&after));
    }

    #[test]
    fn round_trip_keeps_data_sessions_and_applied_index() {
        let sm = sample();
        assert_eq!(sm.sessions().len(), 3);
        let decoded = decode(&encode(&sm)).unwrap();
        assert_eq!(decoded, sm);
        assert_eq!(decoded.applied_index(), LogIndex(24));
        assert_eq!(decoded.sessions().get(1).unwrap().first_unacked_seq(), 2);
        assert_eq!(decoded.sessions().get(1).unwrap().replies().len(), 2);
    }

    #[test]
    fn round_trip_of_empty_state_machine() {
        let sm = StateMachine::new(Limits::default());
        assert_eq!(decode(&encode(&sm)).unwrap(), sm);
    }

    #[test]
    fn decoded_sessions_still_deduplicate() {
        let sm = sample();
        let mut decoded = decode(&encode(&sm)).unwrap();
        let retry = WriteRequest {
            client_id: 1,
            seq: 3,
            first_unacked_seq: 2,
            op: Some(Op::Put(Put {
                key: "key-1-3".into(),
                value: "changed".into(),
            })),
        };
        let reply = decoded.apply(LogIndex(100), &retry);
        assert!(reply.error.is_none());
        assert_eq!(decoded.get(b"key-1-3").unwrap(), vec![3u8; 40]);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let encoded = encode(&sample());
        for position in 0..encoded.len() {
            let mut corrupt = encoded.to_vec();
            corrupt[position] ^= 0x20;
            assert!(
                decode(&corrupt).is_err(),
                "flip at byte {position} not detected"
            );
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let encoded = encode(&sample());
        for len in 0..encoded.len() {
            assert!(
                decode(&encoded[..len]).is_err(),
                "truncation to {len} bytes not detected"
            );
        }
    }

    #[test]
    fn wrong_version_and_magic_are_reported() {
        let mut encoded = encode(&sample()).to_vec();
        encoded[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            decode(&encoded),
            Err(SnapshotError::UnsupportedVersion {
                found: 3,
                supported: VERSION
            })
        );
        encoded[0] = b'X';
        assert_eq!(decode(&encoded), Err(SnapshotError::BadMagic));
    }

    #[test]
    fn checksum_mismatch_is_reported() {
        let mut encoded = encode(&sample()).to_vec();
        let last = encoded.len() - 1;
        encoded[last] ^= 1;
        assert!(matches!(
            decode(&encoded),
            Err(SnapshotError::Checksum { .. })
        ));
    }

    #[test]
    fn huge_counts_with_valid_checksum_fail_without_allocating() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes()); // applied index
        body.extend_from_slice(&u64::MAX.to_le_bytes()); // key count
        body.push(0x7f); // key length 127, but no bytes follow
        assert!(matches!(
            decode(&with_header(&body)),
            Err(SnapshotError::Truncated { .. })
        ));
    }

    #[test]
    fn keys_out_of_order_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(&[1, b'b', 0, 1, b'a', 0]);
        body.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            decode(&with_header(&body)),
            Err(SnapshotError::KeysOutOfOrder { position: 1 })
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.push(0);
        assert_eq!(
            decode(&with_header(&body)),
            Err(SnapshotError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn sessions_out_of_order_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes()); // no keys
        body.extend_from_slice(&2u64.to_le_bytes()); // two sessions
        for client_id in [5u64, 4] {
            for field in [client_id, 1, 1, 0] {
                body.extend_from_slice(&field.to_le_bytes());
            }
        }
        assert!(matches!(
            decode(&with_header(&body)),
            Err(SnapshotError::SessionsOutOfOrder { client_id: 4, .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data);
        }

        #[test]
        fn arbitrary_bodies_with_valid_checksum_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = decode(&with_header(&body));
        }

        #[test]
        fn single_mutations_of_a_valid_body_never_panic(position in any::<usize>(), byte in any::<u8>()) {
            // Re-checksummed, so the body parser itself sees the damage.
            let encoded = encode(&sample());
            let mut body = body_of(&encoded).to_vec();
            let at = position % body.len();
            body[at] = byte;
            let _ = decode(&with_header(&body));
        }
    }
}
