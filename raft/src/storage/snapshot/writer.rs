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

/// The data part of a snapshot file being written (after its header). It owns the file
/// so that a snapshot received chunk by chunk can be written across many calls.
pub(super) struct DataWriter {
    file: Box<dyn FsFile>,
    fsync: bool,
    /// What this writer did, for the storage's counters.
    pub(super) stats: StorageStats,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    data_bytes: u64,
    unsynced: u64,
}

/// A finished [`DataWriter`]: the file (to write the trailer into) and what the data was.
pub(super) struct WrittenData {
    pub(super) file: Box<dyn FsFile>,
    pub(super) stats: StorageStats,
    pub(super) data_bytes: u64,
    pub(super) data_crc: u32,
}

impl DataWriter {
    pub(super) fn new(file: Box<dyn FsFile>, fsync: bool) -> DataWriter {
        DataWriter {
            file,
            fsync,
            stats: StorageStats::default(),
            buf: Vec::new(),
            crc: crc32fast::Hasher::new(),
            data_bytes: 0,
            unsynced: 0,
        }
    }

    /// Bytes of data taken so far.
    pub(super) fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Writes what is buffered; returns the file and the data's length and checksum.
    pub(super) fn finish(mut self) -> io::Result<WrittenData> {
        self.write_buffer()?;
        Ok(WrittenData {
            file: self.file,
            stats: self.stats,
            data_bytes: self.data_bytes,
            data_crc: self.crc.finalize(),
        })
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

impl Write for DataWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.crc.update(data);
        self.data_bytes += data.len() as u64;
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(BUFFER_BYTES);
        }
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
