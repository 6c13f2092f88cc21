//! The Raft log's command format (`proto/kv_log.proto`): what the KV service proposes and
//! the state machine applies. It is separate from the client's `WriteRequest` so that the
//! wire API can change (new fields, other front ends) while every entry already in a log
//! or a peer's WAL stays readable.
//!
//! An entry is one byte of format version, then a `LogCommand`. A version byte below 8
//! can never be the first byte of a protobuf message (that would be field number 0, which
//! protobuf forbids), so an entry written before the format had a version (a bare
//! `WriteRequest`, builds up to issue 11) is recognised and still applied as it was.
//!
//! Decoding never panics. An entry that does not decode is [`CommandError::Undecodable`]:
//! the state machine skips it, the same way on every replica. An entry of a format version
//! this build does not know is [`CommandError::UnknownVersion`], which stops the state
//! machine instead: skipping it would make this replica diverge from the ones that
//! understand it (the fix is to upgrade this node).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use proto::kv::{write_request::Op as WireOp, WriteRequest};
use proto::kvlog::{self, log_command, session_write::Op};

/// The format version this build writes.
pub const FORMAT_VERSION: u8 = 1;
/// First bytes that are versions (present or future) rather than a legacy protobuf entry.
const VERSION_BYTES: std::ops::RangeInclusive<u8> = 1..=7;

/// Why a log entry cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Written by a newer build: this node must be upgraded before it can apply it.
    #[error("log entry of command format version {0}; this build reads version {FORMAT_VERSION}: upgrade this node")]
    UnknownVersion(u8),
    /// Not a command at all (corrupt or foreign); skipped on every replica alike.
    #[error("undecodable log entry: {0}")]
    Undecodable(#[from] prost::DecodeError),
}

/// The log command for a client's write (cheap: keys and values are shared, not copied).
pub fn from_request(request: &WriteRequest) -> kvlog::LogCommand {
    let op = match &request.op {
        Some(WireOp::Register(_)) => {
            return kvlog::LogCommand {
                command: Some(log_command::Command::OpenSession(kvlog::OpenSession {})),
            }
        }
        Some(WireOp::Put(put)) => Some(Op::Put(kvlog::Put {
            key: put.key.clone(),
            value: put.value.clone(),
        })),
        Some(WireOp::Append(append)) => Some(Op::Append(kvlog::Append {
            key: append.key.clone(),
            suffix: append.value.clone(),
        })),
        Some(WireOp::Delete(delete)) => Some(Op::Delete(kvlog::Delete {
            key: delete.key.clone(),
        })),
        Some(WireOp::Cas(cas)) => Some(Op::CompareAndSwap(kvlog::CompareAndSwap {
            key: cas.key.clone(),
            expected: cas.expected.clone(),
            new_value: cas.new_value.clone(),
        })),
        None => None,
    };
    kvlog::LogCommand {
        command: Some(log_command::Command::Write(kvlog::SessionWrite {
            client_id: request.client_id,
            seq: request.seq,
            first_unacked_seq: request.first_unacked_seq,
            op,
        })),
    }
}

/// The bytes of a log entry holding `command`.
pub fn encode(command: &kvlog::LogCommand) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + command.encoded_len());
    out.put_u8(FORMAT_VERSION);
    if let Err(error) = command.encode(&mut out) {
        unreachable!("a BytesMut grows on demand: {error}");
    }
    out.freeze()
}

/// The command in a log entry.
///
/// # Errors
/// [`CommandError`]: see the module docs for what each means.
pub fn decode(entry: &[u8]) -> Result<kvlog::LogCommand, CommandError> {
    match entry.split_first() {
        Some((&FORMAT_VERSION, body)) => Ok(kvlog::LogCommand::decode(body)?),
        Some((version, _)) if VERSION_BYTES.contains(version) => {
            Err(CommandError::UnknownVersion(*version))
        }
        _ => Ok(from_request(&WriteRequest::decode(entry)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::kv::{Append, Cas, Delete, Put, Register};

    fn request(op: WireOp) -> WriteRequest {
        WriteRequest {
            client_id: 7,
            seq: 3,
            first_unacked_seq: 2,
            op: Some(op),
        }
    }

    fn every_op() -> Vec<WriteRequest> {
        vec![
            request(WireOp::Put(Put {
                key: "k".into(),
                value: "v".into(),
            })),
            request(WireOp::Append(Append {
                key: "k".into(),
                value: "more".into(),
            })),
            request(WireOp::Delete(Delete { key: "k".into() })),
            request(WireOp::Cas(Cas {
                key: "k".into(),
                expected: "v".into(),
                new_value: "w".into(),
            })),
            request(WireOp::Register(Register {})),
            WriteRequest {
                op: None,
                ..request(WireOp::Register(Register {}))
            },
        ]
    }

    #[test]
    fn commands_round_trip_with_their_version_byte() {
        for wire in every_op() {
            let command = from_request(&wire);
            let entry = encode(&command);
            assert_eq!(entry[0], FORMAT_VERSION);
            assert_eq!(decode(&entry).unwrap(), command);
        }
    }

    #[test]
    fn entries_written_before_the_format_had_a_version_still_apply() {
        for wire in every_op() {
            let legacy = wire.encode_to_vec();
            assert_eq!(decode(&legacy).unwrap(), from_request(&wire));
        }
    }

    #[test]
    fn a_newer_version_stops_and_garbage_is_undecodable() {
        let mut entry = encode(&from_request(&every_op()[0])).to_vec();
        entry[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode(&entry),
            Err(CommandError::UnknownVersion(2))
        ));
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(CommandError::Undecodable(_))
        ));
        assert!(matches!(
            decode(&[FORMAT_VERSION, 0xff]),
            Err(CommandError::Undecodable(_))
        ));
    }
}
