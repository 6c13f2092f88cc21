//! Writes the data of a snapshot file as it is produced: buffered, checksummed on the
//! way, and made durable in pieces.
//!
//! Why pieces: a large snapshot written whole and fsynced once leaves the disk with
//! hundreds of megabytes of dirty pages to flush at once, and every WAL fdatasync on the
//! same disk (this node's, and on a shared machine its peers') waits behind them for
//! seconds. Syncing every `SYNC_EVERY_BYTES` keeps that backlog small.

use super::super::fs::FsFile;
use super::super::StorageStats;
use std::io::{self, Write};

/// The data is fdatasynced after every this many bytes.
pub(super) const SYNC_EVERY_BYTES: u64 = 4 << 20;
/// Bytes gathered before one write to the file.
const BUFFER_BYTES: usize = 1 << 20;

/// The data part of a snapshot file being written (after its header).
pub(super) struct DataWriter<'a> {
    file: &'a mut dyn FsFile,
    fsync: bool,
    stats: &'a mut StorageStats,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    data_bytes: u64,
    unsynced: u64,
}

impl<'a> DataWriter<'a> {
    pub(super) fn new(
        file: &'a mut dyn FsFile,
        fsync: bool,
        stats: &'a mut StorageStats,
    ) -> DataWriter<'a> {
        DataWriter {
            file,
            fsync,
            stats,
            buf: Vec::with_capacity(BUFFER_BYTES),
            crc: crc32fast::Hasher::new(),
            data_bytes: 0,
            unsynced: 0,
        }
    }

    /// Writes what is buffered; returns the data's length and checksum.
    pub(super) fn finish(mut self) -> io::Result<(u64, u32)> {
        self.write_buffer()?;
        Ok((self.data_bytes, self.crc.finalize()))
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.stats.bytes_written += self.buf.len() as u64;
        self.unsynced += self.buf.len() as u64;
        self.buf.clear();
        if self.fsync && self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.stats.syncs += 1;
            self.unsynced = 0;
        }
        Ok(())
    }
}

impl Write for DataWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.crc.update(data);
        self.data_bytes += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BUFFER_BYTES {
            self.write_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_buffer()
    }
}
