//! The data directory's identity file, `<dir>/IDENTITY`: which cluster and node the data
//! belongs to. Written durably on first open; every later open must match it, so a
//! node can never start on another node's (or another cluster's) log.
//!
//! Format (text, so an operator can read it):
//! ```text
//! raftkv-identity 1
//! cluster_id=<cluster id>
//! node_id=<node id>
//! crc=<crc32 of the lines above, 8 hex digits>
//! ```

use super::fs::Fs;
use crate::error::StorageError;
use std::path::Path;

/// The file name inside the data directory.
pub(crate) const IDENTITY_FILE: &str = "IDENTITY";
const HEADER_LINE: &str = "raftkv-identity 1";
const MAX_IDENTITY_FILE_BYTES: u64 = 4096;

/// Which cluster and node a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub cluster_id: String,
    pub node_id: u64,
}

impl Identity {
    fn describe(&self) -> String {
        format!("cluster {:?} node {}", self.cluster_id, self.node_id)
    }

    fn encode(&self) -> String {
        let body = format!(
            "{HEADER_LINE}\ncluster_id={}\nnode_id={}\n",
            self.cluster_id, self.node_id
        );
        format!("{body}crc={:08x}\n", crc32fast::hash(body.as_bytes()))
    }

    fn decode(text: &str) -> Result<Identity, String> {
        let (body, crc_line) = text
            .trim_end_matches('\n')
            .rsplit_once('\n')
            .ok_or("missing checksum line")?;
        let body = format!("{body}\n");
        let crc = crc_line
            .strip_prefix("crc=")
            .ok_or("missing checksum line")?;
        if u32::from_str_radix(crc, 16).ok() != Some(crc32fast::hash(body.as_bytes())) {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(HEADER_LINE) {
            return Err("unknown identity file version".into());
        }
        let cluster_id = lines
            .next()
            .and_then(|l| l.strip_prefix("cluster_id="))
            .ok_or("missing cluster_id")?;
        let node_id = lines
            .next()
            .and_then(|l| l.strip_prefix("node_id="))
            .and_then(|n| n.parse().ok())
            .ok_or("missing or bad node_id")?;
        Ok(Identity {
            cluster_id: cluster_id.to_owned(),
            node_id,
        })
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks `dir`'s identity file against `expected`. Returns whether there is one (a new
/// directory has none; the caller writes it with [`write`] once the WAL holds a durable
/// segment, so that an identity file always means the node's Raft state existed).
///
/// # Errors
/// `WrongIdentity` on a mismatch, `CorruptFile` if the file is unreadable, `Contract` for
/// an unusable cluster id, `Io`.
pub(crate) fn check(fs: &dyn Fs, dir: &Path, expected: &Identity) -> Result<bool, StorageError> {
    if expected.cluster_id.is_empty() || expected.cluster_id.contains(['\n', '\r']) {
        return Err(StorageError::Contract(format!(
            "cluster id {:?} must be non-empty and on one line",
            expected.cluster_id
        )));
    }
    let path = dir.join(IDENTITY_FILE);
    if !fs.exists(&path).map_err(io_error(&path))? {
        return Ok(false);
    }
    let corrupt = |reason: String| StorageError::CorruptFile {
        path: path.clone(),
        reason,
    };
    let len = fs.file_len(&path).map_err(io_error(&path))?;
    if len > MAX_IDENTITY_FILE_BYTES {
        return Err(corrupt(format!(
            "{len} bytes is too large for an identity file"
        )));
    }
    let bytes = fs.read(&path).map_err(io_error(&path))?;
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8".into()))?;
    let found = Identity::decode(&text).map_err(corrupt)?;
    if &found != expected {
        return Err(StorageError::WrongIdentity {
            path: dir.to_path_buf(),
            found: found.describe(),
            expected: expected.describe(),
        });
    }
    Ok(true)
}

/// Writes the identity file: temp file, fsync, rename, directory fsync.
pub(crate) fn write(fs: &dyn Fs, dir: &Path, identity: &Identity) -> Result<(), StorageError> {
    let path = dir.join(IDENTITY_FILE);
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    if fs.exists(&tmp).map_err(io_error(&tmp))? {
        fs.remove_file(&tmp).map_err(io_error(&tmp))?;
    }
    let mut file = fs.create_new(&tmp).map_err(io_error(&tmp))?;
    file.write_all(identity.encode().as_bytes())
        .map_err(io_error(&tmp))?;
    file.sync_data().map_err(io_error(&tmp))?;
    drop(file);
    fs.rename(&tmp, &path).map_err(io_error(&path))?;
    fs.sync_dir(dir).map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips() {
        let id = Identity {
            cluster_id: "local-dev".into(),
            node_id: 3,
        };
        assert_eq!(Identity::decode(&id.encode()), Ok(id));
    }

    #[test]
    fn edited_identity_is_rejected() {
        let id = Identity {
            cluster_id: "local-dev".into(),
            node_id: 3,
        };
        let edited = id.encode().replace("node_id=3", "node_id=4");
        assert_eq!(Identity::decode(&edited), Err("checksum mismatch".into()));
        assert!(Identity::decode("").is_err());
        assert!(Identity::decode("garbage\n").is_err());
    }
}
