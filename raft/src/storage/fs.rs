//! The file-system seam of durable storage: every byte the WAL, the snapshot store and
//! the identity file put on disk goes through [`Fs`] / [`FsFile`].
//!
//! Two implementations: [`RealFs`] (std::fs, used in production) and
//! `SimFs` (`sim_fs.rs`, tests and the simulator), an in-memory disk that tracks what was
//! written versus what was made durable and can "lose power". The seam is deliberately
//! narrow: append-only files, whole-file reads, rename, remove, and the two durability
//! calls (`FsFile::sync_data`, `Fs::sync_dir`). Anything not made durable by one of
//! those two calls may be lost in a crash, and the storage code is written to that rule.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An open file, written by appending.
pub trait FsFile: Send + fmt::Debug {
    /// Appends all of `buf` (one `write()` as far as the OS allows).
    ///
    /// # Errors
    /// The OS error.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Makes the file's data (and its size) durable: `fdatasync`.
    ///
    /// # Errors
    /// The OS error. After a failed sync the file's durable contents are unknown.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Truncates the file to `len` bytes; later writes append at `len`.
    ///
    /// # Errors
    /// The OS error.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Reserves disk space for the first `len` bytes (`fallocate`), so that writes within
    /// it do not change the file's size. The blocks stay "unwritten" until written, and
    /// an fdatasync that writes one must still persist its conversion, so this helps
    /// sub-block appends only; zero-filled spares (`zero_fill`) are what make fdatasync
    /// a pure data write. Where `write_all` appends does not move; the reserved bytes
    /// read as zeros, which recovery recognises as the clean end of a segment. Best
    /// effort: the default does nothing.
    ///
    /// # Errors
    /// The OS error.
    fn preallocate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }

    /// Writes zeros from where `write_all` would append up to `len` bytes and makes them
    /// durable, without moving that position: later writes overwrite the zeros, and an
    /// fdatasync after them flushes data alone (see `wal/spare.rs`). The default only
    /// preallocates.
    ///
    /// # Errors
    /// The OS error.
    fn zero_fill(&mut self, len: u64) -> io::Result<()> {
        self.preallocate(len)
    }
}

/// The directory and file operations durable storage needs.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Creates a directory and its missing parents.
    ///
    /// # Errors
    /// The OS error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// The names of the regular files in `dir`.
    ///
    /// # Errors
    /// The OS error (e.g. `dir` does not exist).
    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Whether `path` exists.
    ///
    /// # Errors
    /// The OS error.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// The size of the file at `path`.
    ///
    /// # Errors
    /// The OS error.
    fn file_len(&self, path: &Path) -> io::Result<u64>;

    /// Reads the whole file. Callers check `file_len` against their limits first.
    ///
    /// # Errors
    /// The OS error.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Reads exactly `len` bytes at `offset` (a snapshot chunk to send).
    ///
    /// # Errors
    /// The OS error; `UnexpectedEof` when the file is shorter.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let all = self.read(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        all.get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    /// Opens a file to read it from its start, as a stream (an application installing a
    /// snapshot). The default reads the whole file into memory first.
    ///
    /// # Errors
    /// The OS error.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }

    /// Creates a new, empty file; fails if it exists. Its name is durable only after
    /// [`Fs::sync_dir`] on its directory.
    ///
    /// # Errors
    /// The OS error.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;

    /// Opens an existing file for appending at its end.
    ///
    /// # Errors
    /// The OS error.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;

    /// Opens an existing file for writing at `offset` (at most its length): writes go
    /// there and on, over what follows, which must be zeros (preallocated or zero-filled
    /// space, as at the valid end of a WAL segment). An implementation may instead cut
    /// the file at `offset`. Nothing is durable until `sync_data`.
    ///
    /// # Errors
    /// The OS error.
    fn open_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FsFile>>;

    /// Renames `from` to `to`, replacing `to`. Durable only after `sync_dir`.
    ///
    /// # Errors
    /// The OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file. Durable only after `sync_dir`.
    ///
    /// # Errors
    /// The OS error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The OS error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on `path` (created if missing), held until the returned
    /// guard is dropped, so that two processes never use one data directory. Fails with
    /// `ErrorKind::WouldBlock` when another holder has it. The default (the simulator's
    /// disk, which one process owns) locks nothing.
    ///
    /// # Errors
    /// The OS error, or `WouldBlock` when the lock is held elsewhere.
    fn lock_exclusive(&self, _path: &Path) -> io::Result<Box<dyn fmt::Debug + Send>> {
        Ok(Box::new(()))
    }

    /// Whether the WAL may prepare zero-filled spare segments on a background thread
    /// (`wal/spare.rs`). False by default: the simulator's file system must see every
    /// operation on the thread that drives it.
    fn supports_spare_segments(&self) -> bool {
        false
    }
}

/// The real file system (std::fs).
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A real open file. Writes are positional (`pwrite` at `end`) rather than `O_APPEND`,
/// so that they can land inside preallocated space.
#[derive(Debug)]
struct RealFile {
    file: File,
    /// Where the next write goes: the end of the data written so far.
    end: u64,
}

impl FsFile for RealFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.end)?;
        self.end += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.end = len;
        Ok(())
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        if len <= self.end {
            return Ok(());
        }
        rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(io::Error::from)
    }

    /// Paced: 1 MiB at a time, each made durable before the next, at most
    /// `ZERO_FILL_BYTES_PER_SEC`. Written whole and synced once, 64 MiB of zeros (on every
    /// node of a machine at about the same moment) reached the disk as one burst, and the
    /// WAL fdatasyncs queued behind it for 50-300 ms, every segment (the largest source of
    /// put latency beyond p99; BENCHMARKS.md, "Large data sets").
    fn zero_fill(&mut self, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let per_chunk = std::time::Duration::from_secs_f64(CHUNK as f64 / ZERO_FILL_BYTES_PER_SEC);
        let zeros = vec![0u8; CHUNK as usize];
        let mut at = self.end;
        while at < len {
            let started = std::time::Instant::now();
            let n = CHUNK.min(len - at);
            self.file.write_all_at(&zeros[..n as usize], at)?;
            self.file.sync_data()?;
            at += n;
            if let Some(rest) = per_chunk.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        self.file.sync_data()
    }
}

/// The pace of a spare segment's zero-fill (see `RealFile::zero_fill`): 64 MiB in about
/// a second, well inside the time the active segment takes to fill its second half.
const ZERO_FILL_BYTES_PER_SEC: f64 = 64.0 * 1024.0 * 1024.0;

impl Fs for RealFs {
    fn supports_spare_segments(&self) -> bool {
        true
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn fmt::Debug + Send>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // flock: released when the file is closed, including when the process dies.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(io::Error::from)?;
        Ok(Box::new(file))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_files(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            if item.file_type()?.is_file() {
                if let Some(name) = item.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::BufReader::with_capacity(
            1 << 20,
            File::open(path)?,
        )))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(RealFile { file, end: 0 }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        let end = file.metadata()?.len();
        Ok(Box::new(RealFile { file, end }))
    }

    /// Keeps the zeros after `offset`: writes overwrite them (positional writes), so a
    /// zero-filled spare stays a pure overwrite for fdatasync.
    fn open_at(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FsFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(RealFile { file, end: offset }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
