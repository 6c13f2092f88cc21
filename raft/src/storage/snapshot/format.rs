//! The bytes of a snapshot file. PURE.
//!
//! Version 3 (written since issue 13), little-endian:
//! ```text
//!  0        8        12       20       28           32          end-20-c   end-20     end-16     end-8      end-4
//!  | magic  | version| index  | term   | header_crc | data ...  | conf     | conf_len | data_len | data_crc | trailer_crc |
//!  "RKVSNAP\0"  u32=3   u64      u64      u32                     c bytes    u32        u64        u32        u32
//! ```
//! `conf` is the configuration at the snapshot's index (protobuf `raftkv.raft.ConfState`;
//! empty when none was recorded). `header_crc` covers bytes 0..28 and `trailer_crc` the
//! conf and the 16 bytes before it. The data's length and checksum come after it, so a
//! snapshot can be streamed into its file as the application encodes it.
//!
//! Still read: version 2 (as version 3 without `conf` and `conf_len`: a 16-byte
//! trailer `data_len | data_crc | trailer_crc`) and version 1 (a 44-byte header
//! `magic | version u32 = 1 | index | term | data_len u64 | data_crc u32 | header_crc u32`
//! (over 0..40), then the data). Neither records a configuration.
//!
//! A file is valid only if its checksums match, its length is exactly what its header or
//! trailer says, its configuration is one, and its (index, term) match the file name.

use crate::core::membership::{decode_conf, encode_conf};
use crate::types::{ConfState, LogIndex, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;

pub(super) const MAGIC: &[u8; 8] = b"RKVSNAP\0";
/// The version this build writes.
pub(super) const VERSION: u32 = 3;
/// Bytes before the data, versions 2 and 3.
const HEADER_BYTES: usize = 32;
/// Bytes after the data, version 2.
const V2_TRAILER_BYTES: usize = 16;
/// The fixed end of a version-3 file (after the conf).
const V3_TAIL_BYTES: usize = 20;
/// Bytes before the data, version 1.
const V1_HEADER_BYTES: usize = 44;
/// Enough of the start of a file to know its version.
const PREFIX_BYTES: usize = 12;
/// Bytes of the start of a file [`layout`] needs (or the whole file, if shorter).
pub(super) const HEAD_BYTES: usize = V1_HEADER_BYTES;
/// Bytes of the end of a file [`tail_len`] needs (or the whole file, if shorter).
pub(super) const END_PROBE_BYTES: usize = V3_TAIL_BYTES;
/// The largest recorded configuration a file may claim (a corrupt length must not make
/// the reader allocate).
const MAX_CONF_BYTES: u32 = 1 << 20;

/// The header for a snapshot at `meta`.
pub(super) fn header(meta: SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&meta.index.get().to_le_bytes());
    out.extend_from_slice(&meta.term.get().to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What follows `data_len` bytes of data with checksum `data_crc`: the configuration and
/// the fixed tail.
pub(super) fn trailer(data_len: u64, data_crc: u32, conf: Option<&ConfState>) -> Vec<u8> {
    let mut out = conf.map(encode_conf).unwrap_or_default();
    let conf_len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&conf_len.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&data_crc.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The version of a file that begins with `head`.
fn version(head: &[u8]) -> Result<u32, String> {
    let prefix = head.get(..PREFIX_BYTES).unwrap_or(head);
    if prefix.len() < PREFIX_BYTES || &prefix[..8] != MAGIC {
        return Err("not a raftkv snapshot".into());
    }
    match le_u32(prefix, 8) {
        v @ 1..=3 => Ok(v),
        other => Err(format!("snapshot format version {other} is not supported")),
    }
}

/// How many bytes at the end of a file of `file_len` bytes [`layout`] needs, from the
/// file's first bytes (`head`) and its last `END_PROBE_BYTES` (`end`).
pub(super) fn tail_len(head: &[u8], end: &[u8], file_len: u64) -> Result<u64, String> {
    match version(head)? {
        1 => Ok(0),
        2 => Ok(V2_TRAILER_BYTES as u64),
        _ => {
            if end.len() < V3_TAIL_BYTES || file_len < (HEADER_BYTES + V3_TAIL_BYTES) as u64 {
                return Err(format!(
                    "{file_len} bytes is shorter than the header and trailer"
                ));
            }
            let conf_len = le_u32(end, 0);
            if conf_len > MAX_CONF_BYTES {
                return Err(format!("a configuration of {conf_len} bytes"));
            }
            Ok(V3_TAIL_BYTES as u64 + u64::from(conf_len))
        }
    }
}

/// Where a file's data lies, its checksum, and the configuration it records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DataLayout {
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) crc: u32,
    pub(super) conf: Option<ConfState>,
}

/// The layout of a file of `file_len` bytes named for `expected`, from its first
/// `HEAD_BYTES` bytes (`head`) and its last [`tail_len`] bytes (`tail`): the header and
/// trailer are checked here, the data's checksum as it is read.
pub(super) fn layout(
    head: &[u8],
    tail: &[u8],
    file_len: u64,
    expected: SnapshotMeta,
) -> Result<DataLayout, String> {
    let (meta, layout) = match version(head)? {
        1 => {
            let header = head
                .get(..V1_HEADER_BYTES)
                .ok_or_else(|| format!("{file_len} bytes is shorter than the header"))?;
            if crc32fast::hash(&header[..40]) != le_u32(header, 40) {
                return Err("header checksum mismatch".into());
            }
            let start = V1_HEADER_BYTES as u64;
            let len = le_u64(header, 28);
            if file_len.checked_sub(start) != Some(len) {
                return Err(format!(
                    "the file has {file_len} bytes; its header says {len} of data"
                ));
            }
            let crc = le_u32(header, 36);
            (
                meta_at(header),
                DataLayout {
                    start,
                    len,
                    crc,
                    conf: None,
                },
            )
        }
        version => {
            let header = head
                .get(..HEADER_BYTES)
                .ok_or_else(|| format!("{file_len} bytes is shorter than the header"))?;
            if crc32fast::hash(&header[..28]) != le_u32(header, 28) {
                return Err("header checksum mismatch".into());
            }
            let fixed = if version == 2 {
                V2_TRAILER_BYTES
            } else {
                V3_TAIL_BYTES
            };
            if tail.len() < fixed || (file_len as u128) < (HEADER_BYTES + tail.len()) as u128 {
                return Err(format!(
                    "{file_len} bytes is shorter than the header and trailer"
                ));
            }
            let (conf_bytes, fixed_part) = tail.split_at(tail.len() - fixed);
            let checked = &tail[..tail.len() - 4];
            if crc32fast::hash(checked) != le_u32(tail, tail.len() - 4) {
                return Err("trailer checksum mismatch (an unfinished file?)".into());
            }
            let (conf, rest) = if version == 2 {
                (None, fixed_part)
            } else {
                if le_u32(fixed_part, 0) as usize != conf_bytes.len() {
                    return Err("the configuration's length does not match".into());
                }
                let conf = if conf_bytes.is_empty() {
                    None
                } else {
                    Some(
                        decode_conf(conf_bytes)
                            .map_err(|e| format!("recorded configuration: {e}"))?,
                    )
                };
                (conf, &fixed_part[4..])
            };
            let start = HEADER_BYTES as u64;
            let len = le_u64(rest, 0);
            if file_len - start - tail.len() as u64 != len {
                return Err(format!(
                    "the file has {file_len} bytes; its trailer says {len} of data"
                ));
            }
            let crc = le_u32(rest, 8);
            (
                meta_at(header),
                DataLayout {
                    start,
                    len,
                    crc,
                    conf,
                },
            )
        }
    };
    if meta != expected {
        return Err(format!(
            "header says {meta:?} but the file name says {expected:?}"
        ));
    }
    Ok(layout)
}

/// Validates a whole snapshot file named for `expected`.
pub(super) fn decode(bytes: Vec<u8>, expected: SnapshotMeta) -> Result<Snapshot, String> {
    let file_len = bytes.len() as u64;
    let head = &bytes[..bytes.len().min(HEAD_BYTES)];
    let end = &bytes[bytes.len().saturating_sub(END_PROBE_BYTES)..];
    let tail_len = usize::try_from(tail_len(head, end, file_len)?).unwrap_or(usize::MAX);
    let tail_start = bytes
        .len()
        .checked_sub(tail_len)
        .ok_or_else(|| format!("{file_len} bytes is shorter than its trailer"))?;
    let layout = layout(head, &bytes[tail_start..], file_len, expected)?;
    let (start, end) = (layout.start as usize, (layout.start + layout.len) as usize);
    if crc32fast::hash(&bytes[start..end]) != layout.crc {
        return Err("data checksum mismatch".into());
    }
    Ok(Snapshot {
        meta: expected,
        data: Bytes::from(bytes).slice(start..end),
        conf: layout.conf,
    })
}

fn meta_at(header: &[u8]) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(le_u64(header, 12)),
        term: Term(le_u64(header, 20)),
    }
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Membership;
    use crate::types::NodeId;

    fn snapshot(index: u64, term: u64, data: &'static [u8]) -> Snapshot {
        Snapshot::new(
            SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
            },
            Bytes::from_static(data),
        )
    }

    fn with_conf(mut s: Snapshot) -> Snapshot {
        s.conf = Some(ConfState {
            membership: Membership::from_voters([NodeId(1), NodeId(4), NodeId(5)]),
            index: LogIndex(6),
        });
        s
    }

    /// A version-3 file of `snapshot`.
    fn file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut bytes = header(snapshot.meta);
        bytes.extend_from_slice(&snapshot.data);
        bytes.extend(trailer(
            snapshot.data.len() as u64,
            crc32fast::hash(&snapshot.data),
            snapshot.conf.as_ref(),
        ));
        bytes
    }

    /// A version-2 file, as builds of issue 11 wrote them.
    fn v2_file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut out = header(snapshot.meta);
        out[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&snapshot.data);
        let mut trailer = Vec::new();
        trailer.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
        let crc = crc32fast::hash(&trailer);
        trailer.extend_from_slice(&crc.to_le_bytes());
        out.extend(trailer);
        out
    }

    /// A version-1 file, as builds before issue 11 wrote them.
    fn v1_file_bytes(snapshot: &Snapshot) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&snapshot.meta.index.get().to_le_bytes());
        out.extend_from_slice(&snapshot.meta.term.get().to_le_bytes());
        out.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&snapshot.data);
        out
    }

    fn layout_of(bytes: &[u8], expected: SnapshotMeta) -> Result<DataLayout, String> {
        let head = &bytes[..bytes.len().min(HEAD_BYTES)];
        let end = &bytes[bytes.len().saturating_sub(END_PROBE_BYTES)..];
        let n = tail_len(head, end, bytes.len() as u64)? as usize;
        let tail = &bytes[bytes.len().checked_sub(n).ok_or("short")?..];
        layout(head, tail, bytes.len() as u64, expected)
    }

    #[test]
    fn the_layout_names_the_data_its_checksum_and_the_configuration() {
        let plain = snapshot(7, 2, b"some data");
        let conf = with_conf(plain.clone());
        for (bytes, want_conf) in [
            (file_bytes(&conf), conf.conf.clone()),
            (file_bytes(&plain), None),
            (v2_file_bytes(&plain), None),
            (v1_file_bytes(&plain), None),
        ] {
            let l = layout_of(&bytes, plain.meta).unwrap();
            let (start, end) = (l.start as usize, (l.start + l.len) as usize);
            assert_eq!(&bytes[start..end], b"some data");
            assert_eq!(l.crc, crc32fast::hash(b"some data"));
            assert_eq!(l.conf, want_conf);
            assert!(
                layout_of(&bytes, snapshot(8, 2, b"").meta).is_err(),
                "other name"
            );
            assert!(
                layout_of(&bytes[..bytes.len() - 1], plain.meta).is_err(),
                "cut"
            );
        }
    }

    #[test]
    fn every_version_round_trips() {
        let snap = snapshot(12, 3, b"state");
        let conf = with_conf(snap.clone());
        assert_eq!(decode(file_bytes(&conf), snap.meta), Ok(conf.clone()));
        for file in [
            file_bytes(&snap),
            v2_file_bytes(&snap),
            v1_file_bytes(&snap),
        ] {
            assert_eq!(decode(file, snap.meta), Ok(snap.clone()));
        }
        let empty = snapshot(1, 1, b"");
        assert_eq!(decode(file_bytes(&empty), empty.meta), Ok(empty));
    }

    #[test]
    fn every_flipped_byte_and_truncation_is_rejected() {
        let snap = snapshot(12, 3, b"some state bytes");
        let conf = with_conf(snap.clone());
        for good in [
            file_bytes(&conf),
            file_bytes(&snap),
            v2_file_bytes(&snap),
            v1_file_bytes(&snap),
        ] {
            for at in 0..good.len() {
                let mut bad = good.clone();
                bad[at] ^= 0x20;
                assert!(decode(bad, snap.meta).is_err(), "flip at {at} accepted");
                assert!(
                    decode(good[..at].to_vec(), snap.meta).is_err(),
                    "cut at {at} accepted"
                );
            }
        }
    }

    #[test]
    fn header_must_match_the_name() {
        let snap = snapshot(12, 3, b"x");
        let other = snapshot(13, 3, b"x");
        assert!(decode(file_bytes(&snap), other.meta).is_err());
    }
}
