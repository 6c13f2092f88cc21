//! Reads an etcd member's Prometheus counters (`GET /metrics` on its client port) to
//! report fsyncs per committed entry: WAL fsyncs, backend (bbolt) commits, and the
//! committed index. Plain HTTP/1.0 over std's TcpStream, bounded in time and size.

use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
/// etcd's metrics page is a few hundred KiB; refuse anything absurd.
const MAX_BODY_BYTES: u64 = 16 << 20;

/// The counters we use, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PersistCounters {
    /// `etcd_disk_wal_fsync_duration_seconds_count`: WAL fsyncs.
    pub wal_fsyncs: f64,
    /// `etcd_disk_backend_commit_duration_seconds_count`: bbolt commits (each fsyncs).
    pub backend_commits: f64,
    /// `etcd_server_proposals_committed_total`: the committed index.
    pub committed: f64,
}

impl PersistCounters {
    /// Fetches the counters of the member at `endpoint` (`http://host:port`).
    pub fn fetch(endpoint: &str) -> Result<PersistCounters, String> {
        let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("{hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hostport}: no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        stream
            .take(MAX_BODY_BYTES)
            .read_to_string(&mut body)
            .map_err(|e| e.to_string())?;
        Ok(PersistCounters::parse(&body))
    }

    /// Picks the counters out of a Prometheus text page (missing ones stay 0).
    pub fn parse(page: &str) -> PersistCounters {
        let mut c = PersistCounters::default();
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            match name {
                "etcd_disk_wal_fsync_duration_seconds_count" => c.wal_fsyncs = value,
                "etcd_disk_backend_commit_duration_seconds_count" => c.backend_commits = value,
                "etcd_server_proposals_committed_total" => c.committed = value,
                _ => {}
            }
        }
        c
    }

    /// The growth from `before` to `self`, as the JSON the comparison script reads.
    pub fn delta_json(&self, before: &PersistCounters, leader: &str) -> serde_json::Value {
        let entries = (self.committed - before.committed).max(0.0);
        let wal = self.wal_fsyncs - before.wal_fsyncs;
        let backend = self.backend_commits - before.backend_commits;
        json!({
            "leader": leader, "fsyncs": wal, "backend_commits": backend,
            "committed_entries": entries,
            "fsyncs_per_committed_entry": wal / entries.max(1.0),
            "backend_commits_per_committed_entry": backend / entries.max(1.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_picks_the_three_counters() {
        let page = "# HELP x\n\
            etcd_disk_wal_fsync_duration_seconds_count 120\n\
            etcd_disk_wal_fsync_duration_seconds_sum 0.5\n\
            etcd_disk_backend_commit_duration_seconds_count 7\n\
            etcd_server_proposals_committed_total 1.5e+03\n";
        let c = PersistCounters::parse(page);
        assert_eq!(c.wal_fsyncs, 120.0);
        assert_eq!(c.backend_commits, 7.0);
        assert_eq!(c.committed, 1500.0);
    }
}
