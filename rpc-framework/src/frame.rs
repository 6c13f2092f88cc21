//! The frame codec: a PURE encoder/decoder between `RpcHeader` + body and bytes.
//!
//! Layout (see the crate docs for the diagram): a 4-byte big-endian length of the rest of
//! the frame, a 4-byte big-endian header length, the protobuf `RpcHeader`, then the
//! protobuf body.
//!
//! Invariants kept here:
//! - no I/O, no clock, no threads: bytes in, frames out;
//! - the declared frame length is checked against `max_frame_bytes` *before* any buffer is
//!   grown for it, so a hostile length prefix cannot make us allocate more than the maximum;
//! - malformed input yields a `FrameError`, never a panic, and decoding consumes exactly
//!   one whole frame or nothing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// The default largest frame accepted or produced: 64 MiB (counted as the length prefix
/// counts: everything after the first four bytes).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Bytes before the header: the frame length and the header length, 4 bytes each.
pub const FRAME_PREFIX_BYTES: usize = 8;

/// The header of every frame; hand-derived from `proto/rpc.proto` (keep them in sync).
#[derive(Clone, PartialEq, Message)]
pub struct RpcHeader {
    /// Chosen by the client; a reply carries the id of its request.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    /// Fully-qualified service name (requests only).
    #[prost(string, tag = "2")]
    pub service: String,
    /// Method name as written in the `.proto` file (requests only).
    #[prost(string, tag = "3")]
    pub method: String,
    /// A [`FrameKind`] as `i32` (protobuf enums are open).
    #[prost(enumeration = "FrameKind", tag = "4")]
    pub kind: i32,
    /// A [`crate::Code`] as `u32` when `kind` is `Error`.
    #[prost(uint32, tag = "5")]
    pub error_code: u32,
    /// Human-readable error text when `kind` is `Error`.
    #[prost(string, tag = "6")]
    pub error_message: String,
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum FrameKind {
    /// A call from a client.
    Request = 0,
    /// A successful reply; the body is the response message.
    Response = 1,
    /// A failed reply; the status is in the header, the body is empty.
    Error = 2,
    /// A call from a client that wants no reply: the server runs the handler and sends
    /// nothing back, not even an error (it logs it). `request_id` is not used (0).
    OneWay = 3,
}

impl RpcHeader {
    /// A request header.
    pub fn request(request_id: u64, service: &str, method: &str) -> RpcHeader {
        RpcHeader {
            request_id,
            service: service.to_owned(),
            method: method.to_owned(),
            kind: FrameKind::Request as i32,
            error_code: 0,
            error_message: String::new(),
        }
    }

    /// A one-way request header (no reply will come).
    pub fn one_way(service: &str, method: &str) -> RpcHeader {
        RpcHeader {
            kind: FrameKind::OneWay as i32,
            ..RpcHeader::request(0, service, method)
        }
    }

    /// A successful response header.
    pub fn response(request_id: u64) -> RpcHeader {
        RpcHeader {
            request_id,
            kind: FrameKind::Response as i32,
            ..RpcHeader::default()
        }
    }

    /// An error response header carrying `status`.
    pub fn error(request_id: u64, status: &crate::Status) -> RpcHeader {
        RpcHeader {
            request_id,
            kind: FrameKind::Error as i32,
            error_code: status.code.as_u32(),
            error_message: status.message.clone(),
            ..RpcHeader::default()
        }
    }

    /// The frame kind, or `None` for a value this version does not know.
    pub fn frame_kind(&self) -> Option<FrameKind> {
        FrameKind::try_from(self.kind).ok()
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// The decoded header.
    pub header: RpcHeader,
    /// The body, still protobuf-encoded (zero-copy slice of the read buffer).
    pub body: Bytes,
}

/// Why bytes could not be framed or unframed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or the frame being encoded) exceeds the configured maximum.
    #[error("frame of {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    TooLarge {
        /// The declared or computed frame length.
        size_bytes: usize,
        /// The configured maximum.
        max_bytes: usize,
    },
    /// The two length fields are inconsistent.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The header bytes are not a valid `RpcHeader`.
    #[error("frame header does not decode: {0}")]
    BadHeader(String),
}

/// Appends one frame holding `header` and the already-encoded `body` to `dst`.
///
/// # Errors
/// `FrameError::TooLarge` if the frame would exceed `max_frame_bytes`; `dst` is untouched.
pub fn encode_frame(
    dst: &mut BytesMut,
    header: &RpcHeader,
    body: &[u8],
    max_frame_bytes: usize,
) -> Result<(), FrameError> {
    encode_frame_with(dst, header, body.len(), max_frame_bytes, |buf| {
        buf.put_slice(body)
    })
}

/// Appends one frame holding `header` and `body` encoded straight into `dst` (no
/// intermediate buffer).
///
/// # Errors
/// `FrameError::TooLarge` if the frame would exceed `max_frame_bytes`; `dst` is untouched.
pub fn encode_frame_with_message<M: Message>(
    dst: &mut BytesMut,
    header: &RpcHeader,
    body: &M,
    max_frame_bytes: usize,
) -> Result<(), FrameError> {
    encode_frame_with(dst, header, body.encoded_len(), max_frame_bytes, |buf| {
        body.encode_raw(buf)
    })
}

fn encode_frame_with(
    dst: &mut BytesMut,
    header: &RpcHeader,
    body_len: usize,
    max_frame_bytes: usize,
    write_body: impl FnOnce(&mut BytesMut),
) -> Result<(), FrameError> {
    let header_len = header.encoded_len();
    let frame_len = 4 + header_len + body_len;
    let too_large = FrameError::TooLarge {
        size_bytes: frame_len,
        max_bytes: max_frame_bytes,
    };
    if frame_len > max_frame_bytes {
        return Err(too_large);
    }
    let (Ok(frame_len_u32), Ok(header_len_u32)) =
        (u32::try_from(frame_len), u32::try_from(header_len))
    else {
        return Err(too_large);
    };
    dst.reserve(4 + frame_len);
    let start_len = dst.len();
    dst.put_u32(frame_len_u32);
    dst.put_u32(header_len_u32);
    header.encode_raw(dst);
    write_body(dst);
    assert_eq!(
        dst.len() - start_len,
        4 + frame_len,
        "encoded frame length disagrees with the computed one"
    );
    Ok(())
}

/// Splits a byte stream into frames.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> FrameDecoder {
        FrameDecoder { max_frame_bytes }
    }

    /// The configured maximum frame length.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Removes and returns the first whole frame in `src`, or `Ok(None)` if `src` does not
    /// hold one yet (it then reserves room for the rest of the announced frame).
    ///
    /// # Errors
    /// `TooLarge`, `Malformed` or `BadHeader`; the stream cannot be resynchronised after an
    /// error, so the caller should drop the connection.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(frame_len) = read_be_u32(src, 0) else {
            return Ok(None);
        };
        if frame_len > self.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size_bytes: frame_len,
                max_bytes: self.max_frame_bytes,
            });
        }
        if frame_len < 4 {
            return Err(FrameError::Malformed(format!(
                "frame length {frame_len} is shorter than its 4-byte header length field"
            )));
        }
        let total_len = 4 + frame_len;
        if src.len() < total_len {
            src.reserve(total_len - src.len());
            return Ok(None);
        }
        let header_len = read_be_u32(src, 4).unwrap_or(0);
        if header_len > frame_len - 4 {
            return Err(FrameError::Malformed(format!(
                "header length {header_len} exceeds the frame length {frame_len}"
            )));
        }
        let mut frame = src.split_to(total_len);
        frame.advance(FRAME_PREFIX_BYTES);
        let header_bytes = frame.split_to(header_len);
        let header = RpcHeader::decode(header_bytes.freeze())
            .map_err(|e| FrameError::BadHeader(e.to_string()))?;
        Ok(Some(Frame {
            header,
            body: frame.freeze(),
        }))
    }
}

/// The big-endian u32 at `offset`, widened to usize, if `src` holds it.
fn read_be_u32(src: &[u8], offset: usize) -> Option<usize> {
    let bytes: [u8; 4] = src.get(offset..offset + 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(bytes)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, Status};
    use proptest::prelude::*;

    fn sample_frames() -> Vec<(RpcHeader, Bytes)> {
        vec![
            (
                RpcHeader::request(1, "pkg.Svc", "Echo"),
                Bytes::from_static(b"hello"),
            ),
            (RpcHeader::response(1), Bytes::new()),
            (
                RpcHeader::error(7, &Status::new(Code::NotFound, "nope")),
                Bytes::new(),
            ),
            (
                RpcHeader::request(u64::MAX, "", ""),
                Bytes::from(vec![0xAB; 3000]),
            ),
        ]
    }

    fn encode_all(frames: &[(RpcHeader, Bytes)]) -> BytesMut {
        let mut buf = BytesMut::new();
        for (header, body) in frames {
            encode_frame(&mut buf, header, body, DEFAULT_MAX_FRAME_BYTES).unwrap();
        }
        buf
    }

    /// Feeds `chunks` one by one, decoding everything available after each.
    fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<Frame>, FrameError> {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf)? {
                frames.push(frame);
            }
        }
        Ok(frames)
    }

    #[test]
    fn every_split_point_of_a_multi_frame_stream_decodes_the_same() {
        let frames = sample_frames();
        let bytes = encode_all(&frames);
        let expected: Vec<Frame> = frames
            .iter()
            .map(|(header, body)| Frame {
                header: header.clone(),
                body: body.clone(),
            })
            .collect();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(
                decode_chunks(&[a, b]).unwrap(),
                expected,
                "split at {split}"
            );
        }
        // And byte by byte.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_chunks(&singles).unwrap(), expected);
    }

    #[test]
    fn oversized_length_prefix_is_rejected_before_allocating() {
        let mut decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xFF][..]);
        let err = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                size_bytes: 0xFFFF_FFFF,
                max_bytes: 1024
            }
        );
        assert!(
            buf.capacity() < 1024,
            "decoder grew the buffer for a rejected frame"
        );
    }

    #[test]
    fn encoding_over_the_maximum_fails_and_leaves_dst_alone() {
        let mut buf = BytesMut::new();
        let err = encode_frame(&mut buf, &RpcHeader::response(1), &[0; 100], 50).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max_bytes: 50, .. }));
        assert!(buf.is_empty());
    }

    #[test]
    fn inconsistent_lengths_are_malformed() {
        let mut decoder = FrameDecoder::new(1024);
        // frame_len 2 (< 4).
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 0, 0][..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
        // header_len 10 > frame_len - 4 = 4.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0, 0, 0, 10, 1, 2, 3, 4][..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn undecodable_header_is_reported() {
        let mut decoder = FrameDecoder::new(1024);
        // header_len 2 with bytes 0xFF 0xFF: an invalid varint key.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 6, 0, 0, 0, 2, 0xFF, 0xFF][..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::BadHeader(_))
        ));
    }

    #[test]
    fn message_bodies_encode_in_place() {
        let mut buf = BytesMut::new();
        let body = RpcHeader::request(9, "inner", "m");
        let header = RpcHeader::response(3);
        encode_frame_with_message(&mut buf, &header, &body, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let frame = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(frame.header, header);
        assert_eq!(RpcHeader::decode(frame.body).unwrap(), body);
    }

    fn arb_header() -> impl Strategy<Value = RpcHeader> {
        (
            any::<u64>(),
            ".{0,20}",
            ".{0,20}",
            0i32..3,
            any::<u32>(),
            ".{0,40}",
        )
            .prop_map(
                |(request_id, service, method, kind, error_code, error_message)| RpcHeader {
                    request_id,
                    service,
                    method,
                    kind,
                    error_code,
                    error_message,
                },
            )
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(
            frames in prop::collection::vec(
                (arb_header(), prop::collection::vec(any::<u8>(), 0..512)), 1..8),
            split_seed in any::<usize>(),
        ) {
            let frames: Vec<(RpcHeader, Bytes)> =
                frames.into_iter().map(|(h, b)| (h, Bytes::from(b))).collect();
            let bytes = encode_all(&frames);
            let split = split_seed % (bytes.len() + 1);
            let (a, b) = bytes.split_at(split);
            let decoded = decode_chunks(&[a, b]).unwrap();
            prop_assert_eq!(decoded.len(), frames.len());
            for (frame, (header, body)) in decoded.iter().zip(&frames) {
                prop_assert_eq!(&frame.header, header);
                prop_assert_eq!(&frame.body, body);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            bytes in prop::collection::vec(any::<u8>(), 0..2048),
            max in 0usize..4096,
        ) {
            let mut decoder = FrameDecoder::new(max);
            let mut buf = BytesMut::from(&bytes[..]);
            // Decode until it stops making progress or errors; each step must consume a
            // whole frame or nothing.
            loop {
                let before = buf.len();
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert!(buf.len() < before);
                        prop_assert!(frame.body.len() <= max);
                    }
                    Ok(None) => { prop_assert_eq!(buf.len(), before); break; }
                    Err(_) => break,
                }
            }
        }
    }
}
