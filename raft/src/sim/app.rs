//! The application a simulated node runs on top of Raft, and the 6.824 tester's own
//! application, [`CommandLog`].
//!
//! [`SimStateMachine`] is what kvserver's tests implement to run the real key-value state
//! machine inside the simulator. [`CommandLog`] is 6.824's `applier`/`applierSnap`: it
//! records every applied command, and its snapshot encodes all of them so that a restored
//! node can be checked entry by entry against what the cluster committed.

use crate::types::{Entry, EntryKind, LogIndex, Snapshot};
use bytes::{BufMut, Bytes, BytesMut};

/// A deterministic state machine driven by committed entries.
pub trait SimStateMachine {
    /// Applies one committed entry (no-op entries included, in log order).
    fn apply(&mut self, entry: &Entry);

    /// Encodes the state as of the last applied entry.
    fn snapshot(&self) -> Bytes;

    /// Replaces the whole state with a snapshot's.
    ///
    /// # Errors
    /// A description of why the snapshot is unusable (the simulator fails the run).
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), String>;

    /// The data of the entry applied at `index`, if this state machine remembers it. The
    /// checker uses it to verify restored snapshots; the default remembers nothing.
    fn applied_data(&self, _index: LogIndex) -> Option<Bytes> {
        None
    }
}

/// 6.824's tester application: the list of every applied entry's data.
///
/// Snapshot format: `u64 count` then, for each index `1..=count`, a `u32` length and the
/// entry's data (a no-op has length 0), all big-endian, then `padding_bytes` zero bytes
/// (to make snapshots span many chunks when a test wants that).
#[derive(Clone, Debug, Default)]
pub struct CommandLog {
    /// Data of entries `1..=len`, in order.
    applied: Vec<Bytes>,
    padding_bytes: usize,
}

impl CommandLog {
    /// An empty log whose snapshots carry `padding_bytes` extra bytes.
    pub fn new(padding_bytes: usize) -> CommandLog {
        CommandLog {
            applied: Vec::new(),
            padding_bytes,
        }
    }

    /// The last applied index.
    pub fn applied_index(&self) -> LogIndex {
        LogIndex(self.applied.len() as u64)
    }
}

impl SimStateMachine for CommandLog {
    fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.index.0,
            self.applied.len() as u64 + 1,
            "CommandLog: apply out of order"
        );
        let data = match entry.kind {
            EntryKind::Noop => Bytes::new(),
            // The configuration entry's own bytes: replicas must agree on them too.
            EntryKind::Normal | EntryKind::Membership => entry.data.clone(),
        };
        self.applied.push(data);
    }

    fn snapshot(&self) -> Bytes {
        let body: usize = self.applied.iter().map(|d| 4 + d.len()).sum();
        let mut out = BytesMut::with_capacity(8 + body + self.padding_bytes);
        out.put_u64(self.applied.len() as u64);
        for data in &self.applied {
            out.put_u32(data.len() as u32);
            out.put_slice(data);
        }
        out.put_bytes(0, self.padding_bytes);
        out.freeze()
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let applied = decode_command_log(&snapshot.data)?;
        if applied.len() as u64 != snapshot.meta.index.0 {
            return Err(format!(
                "snapshot at {:?} encodes {} entries",
                snapshot.meta.index,
                applied.len()
            ));
        }
        self.applied = applied;
        Ok(())
    }

    fn applied_data(&self, index: LogIndex) -> Option<Bytes> {
        let i = usize::try_from(index.0).ok()?.checked_sub(1)?;
        self.applied.get(i).cloned()
    }
}

fn decode_command_log(data: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<Bytes, String> {
        let end = pos.checked_add(n).filter(|end| *end <= data.len());
        let end = end.ok_or_else(|| format!("snapshot truncated at byte {pos}"))?;
        let out = data.slice(*pos..end);
        *pos = end;
        Ok(out)
    };
    let count = u64::from_be_bytes(to_array(&take(&mut pos, 8)?)?);
    if count > data.len() as u64 {
        return Err(format!(
            "snapshot claims {count} entries in {} bytes",
            data.len()
        ));
    }
    let mut applied = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = u32::from_be_bytes(to_array(&take(&mut pos, 4)?)?) as usize;
        applied.push(take(&mut pos, len)?);
    }
    if data[pos..].iter().any(|b| *b != 0) {
        return Err("snapshot padding is not zero".into());
    }
    Ok(applied)
}

fn to_array<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes.try_into().map_err(|_| format!("expected {N} bytes"))
}

/// Encodes a 6.824-style integer command as 8 big-endian bytes.
pub fn cmd(value: u64) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

/// Decodes an 8-byte command back to its integer, if it is one.
pub fn cmd_value(data: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(data.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{SnapshotMeta, Term};

    fn entry(index: u64, kind: EntryKind, data: Bytes) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind,
            data,
        }
    }

    #[test]
    fn snapshot_round_trips_every_applied_entry() {
        let mut log = CommandLog::new(100);
        log.apply(&entry(1, EntryKind::Noop, Bytes::new()));
        log.apply(&entry(2, EntryKind::Normal, cmd(7)));
        log.apply(&entry(3, EntryKind::Normal, Bytes::from_static(b"hello")));
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(3),
                term: Term(1),
            },
            data: log.snapshot(),
            conf: None,
        };
        let mut restored = CommandLog::new(0);
        restored.restore(&snap).unwrap();
        assert_eq!(restored.applied_index(), LogIndex(3));
        assert_eq!(restored.applied_data(LogIndex(2)), Some(cmd(7)));
        assert_eq!(restored.applied_data(LogIndex(1)), Some(Bytes::new()));
        assert_eq!(restored.applied_data(LogIndex(4)), None);
        assert_eq!(restored.applied_data(LogIndex(0)), None);
    }

    #[test]
    fn restore_rejects_garbage_without_panicking() {
        let mut log = CommandLog::new(0);
        for data in [
            &b""[..],
            b"\x00\x00\x00\x00\x00\x00\x00\x05",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            let snap = Snapshot {
                meta: SnapshotMeta {
                    index: LogIndex(5),
                    term: Term(1),
                },
                data: Bytes::copy_from_slice(data),
                conf: None,
            };
            assert!(log.restore(&snap).is_err());
        }
    }

    #[test]
    fn cmd_round_trips() {
        assert_eq!(cmd_value(&cmd(42)), Some(42));
        assert_eq!(cmd_value(b"abc"), None);
    }
}
