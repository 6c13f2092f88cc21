//! A copy of what a streamed application snapshot writes into its file, for the storage
//! model: the simulator's application streams its snapshots (`RaftNode::snapshot_streamed`,
//! the path the KV server takes), and the model needs their bytes to check what a crash
//! recovers. Simulated snapshots are small, so keeping the copy costs nothing.

use crate::storage::SnapshotSource;
use bytes::Bytes;
use parking_lot::Mutex;
use std::io::{self, Write};
use std::sync::Arc;

/// The bytes a wrapped source wrote, once it has run.
#[derive(Clone, Default)]
pub(crate) struct StreamedCopy {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl StreamedCopy {
    /// `source`, writing a copy of its output here as it goes.
    pub(crate) fn wrap(&self, source: SnapshotSource) -> SnapshotSource {
        let copy = self.bytes.clone();
        SnapshotSource::new(move |out| source.write_to(&mut Tee { out, copy: &copy }))
    }

    /// What the source wrote.
    pub(crate) fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.bytes.lock()))
    }
}

struct Tee<'a> {
    out: &'a mut dyn Write,
    copy: &'a Mutex<Vec<u8>>,
}

impl Write for Tee<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        self.copy.lock().extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
