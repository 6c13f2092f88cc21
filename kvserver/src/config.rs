//! The cluster configuration file (TOML), shared by every node and by `kvctl --config`.
//!
//! ```toml
//! cluster_id = "local-dev"        # peers from another cluster are rejected
//! [[nodes]]
//! id = 1
//! addr = "127.0.0.1:7001"         # one port for both the Raft and the KV service
//! # ... one [[nodes]] table per node
//! # optional: data_dir, [raft], [snapshot], [limits], [storage]
//! ```
//!
//! Validation turns every mistake into a one-line [`ConfigFileError`] naming the setting,
//! so `kvserver` can print it and exit non-zero.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used, with a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigFileError {
    /// The file.
    pub path: String,
    /// What is wrong, on one line.
    pub reason: String,
}

/// The whole cluster's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Names the cluster; nodes of another cluster are rejected.
    pub cluster_id: String,
    /// Every node of the cluster.
    pub nodes: Vec<NodeEntry>,
    /// Parent directory of the nodes' data directories (`<data_dir>/node-<id>`), used when
    /// `kvserver --data-dir` is not given. Relative paths are relative to the working directory.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Raft timing and batching.
    #[serde(default)]
    pub raft: RaftSection,
    /// When to snapshot.
    #[serde(default)]
    pub snapshot: SnapshotSection,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// Durable storage.
    #[serde(default)]
    pub storage: StorageSection,
    /// Connection limits and timeouts of the node's port.
    #[serde(default)]
    pub connections: ConnectionsSection,
}

/// One node.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Its id (non-zero, unique).
    pub id: u64,
    /// `host:port` serving both the Raft and the KV service.
    pub addr: String,
}

/// `[raft]`: timing and batching.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// Length of one Raft tick.
    pub tick_ms: u64,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Base election timeout, in ticks (randomized up to twice this).
    pub election_ticks: u32,
    /// Run PreVote before elections.
    pub pre_vote: bool,
    /// Leaders step down without a live majority; followers keep a leader lease.
    pub check_quorum: bool,
    /// Serve `READ_MODE_LEASE` reads from the leader lease (needs `check_quorum`). A
    /// restarted node then refuses votes for one election timeout.
    pub lease_reads: bool,
    /// AppendEntries batches: most entries.
    pub max_entries_per_append: usize,
    /// AppendEntries batches: most bytes.
    pub max_bytes_per_append: usize,
    /// AppendEntries in flight per peer.
    pub max_inflight_appends: usize,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            tick_ms: 10,
            heartbeat_ticks: 5,
            election_ticks: 50,
            pre_vote: true,
            check_quorum: true,
            lease_reads: true,
            max_entries_per_append: 1024,
            max_bytes_per_append: 1 << 20,
            max_inflight_appends: 64,
        }
    }
}

/// `[snapshot]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotSection {
    /// Snapshot once the Raft log since the last snapshot exceeds this many bytes...
    pub threshold_bytes: u64,
    /// ...and this percentage of the last snapshot's size (bounds the bytes written per
    /// byte of log on large data sets to `1 + 100/log_percent`; 0 = the threshold alone).
    /// See `kvserver::snapshot_policy`.
    pub log_percent: u32,
}

impl Default for SnapshotSection {
    fn default() -> Self {
        SnapshotSection {
            threshold_bytes: 64 << 20,
            log_percent: 100,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest key.
    pub max_key_bytes: usize,
    /// Largest value (also after an append).
    pub max_value_bytes: usize,
    /// Client sessions kept for exactly-once writes.
    pub max_sessions: usize,
    /// Writes waiting for commit on one node.
    pub max_pending_writes: usize,
    /// Reads in flight on one node.
    pub max_pending_reads: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_key_bytes: 4 << 10,
            max_value_bytes: 1 << 20,
            max_sessions: 100_000,
            max_pending_writes: 64 << 10,
            max_pending_reads: 64 << 10,
        }
    }
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// fsync before acknowledging. Turning this off loses acknowledged writes on power
    /// loss; it exists for experiments only.
    pub fsync: bool,
    /// Size at which a WAL segment is rotated.
    pub segment_bytes: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            fsync: true,
            segment_bytes: 64 << 20,
        }
    }
}

/// `[connections]`: what the node's port holds for its clients (peers, once they prove
/// they are members, do not count toward these and have a reserved budget).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsSection {
    /// Open client connections; a newcomer beyond it closes the one heard from least
    /// recently.
    pub max_clients: usize,
    /// Bytes buffered for clients altogether (partial requests, requests in progress,
    /// unread replies).
    pub max_buffered_bytes: usize,
    /// Bytes above `max_buffered_bytes` reserved for the peers.
    pub reserved_peer_bytes: usize,
    /// A client connection idle this long with nothing in progress is closed; 0 = never.
    pub idle_timeout_ms: u64,
    /// A connection holding a partly received request this long is closed; 0 = never.
    pub partial_frame_timeout_ms: u64,
}

impl Default for ConnectionsSection {
    fn default() -> Self {
        let provider = rpc_framework::ProviderConfig::default();
        let millis = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_millis() as u64);
        ConnectionsSection {
            max_clients: provider.max_connections,
            max_buffered_bytes: provider.max_buffered_bytes,
            reserved_peer_bytes: provider.reserved_priority_bytes,
            idle_timeout_ms: millis(provider.idle_timeout),
            partial_frame_timeout_ms: millis(provider.partial_frame_timeout),
        }
    }
}

/// The smallest `[connections]` budgets: a request or reply of the largest size allowed
/// (a maximum value, or an 8 MiB Raft batch) must fit.
const MIN_CONNECTION_BUDGET_BYTES: usize = 16 << 20;

impl ClusterConfig {
    /// The settings every member must share, in a canonical line: the member ids, the Raft
    /// timing and lease settings (a follower's promise to a leader is counted with them)
    /// and the request limits (validated again when a write is applied, so replicas must
    /// agree on them). Per-node settings (addresses, data directory, batching, queue
    /// sizes, snapshot threshold, fsync) are not in it.
    pub fn shared_settings(&self) -> String {
        let mut ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        let r = &self.raft;
        let l = &self.limits;
        format!(
            "v1 nodes={ids:?} tick_ms={} heartbeat_ticks={} election_ticks={} pre_vote={} \
             check_quorum={} lease_reads={} max_key_bytes={} max_value_bytes={} max_sessions={}",
            r.tick_ms,
            r.heartbeat_ticks,
            r.election_ticks,
            r.pre_vote,
            r.check_quorum,
            r.lease_reads,
            l.max_key_bytes,
            l.max_value_bytes,
            l.max_sessions
        )
    }

    /// A 64-bit digest of [`ClusterConfig::shared_settings`] (FNV-1a; never 0), carried in
    /// every Raft batch so that peers configured differently reject each other.
    pub fn settings_digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.shared_settings().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash.max(1)
    }

    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// [`ConfigFileError`] with a one-line reason.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigFileError> {
        let err = |reason: String| ConfigFileError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(err)
    }

    /// Parses and validates configuration text.
    ///
    /// # Errors
    /// A one-line reason.
    pub fn parse(text: &str) -> Result<ClusterConfig, String> {
        let config: ClusterConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// A one-line reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_id.trim().is_empty() {
            return Err("cluster_id must not be empty".into());
        }
        if self.nodes.is_empty() {
            return Err("at least one [[nodes]] entry is required".into());
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for node in &self.nodes {
            if node.id == 0 {
                return Err("node id 0 is not allowed".into());
            }
            if !ids.insert(node.id) {
                return Err(format!("node id {} appears twice", node.id));
            }
            if !addrs.insert(node.addr.as_str()) {
                return Err(format!("address {} appears twice", node.addr));
            }
            validate_addr(&node.addr).map_err(|e| format!("node {}: {e}", node.id))?;
        }
        let r = &self.raft;
        if r.tick_ms == 0 || r.heartbeat_ticks == 0 {
            return Err("raft.tick_ms and raft.heartbeat_ticks must be at least 1".into());
        }
        if r.lease_reads && !r.check_quorum {
            return Err("raft.lease_reads requires raft.check_quorum".into());
        }
        if r.election_ticks <= r.heartbeat_ticks {
            return Err(format!(
                "raft.election_ticks ({}) must exceed raft.heartbeat_ticks ({})",
                r.election_ticks, r.heartbeat_ticks
            ));
        }
        if r.lease_reads {
            let lease_ticks = raft::Config {
                election_timeout_ticks: r.election_ticks,
                ..raft::Config::new(raft::NodeId(1), vec![raft::NodeId(1)])
            }
            .lease_ticks();
            if lease_ticks <= r.heartbeat_ticks {
                return Err(format!(
                    "raft.lease_reads needs a lease ({lease_ticks} ticks, about 4/5 of \
                     raft.election_ticks) longer than raft.heartbeat_ticks ({}); raise \
                     election_ticks or turn lease_reads off",
                    r.heartbeat_ticks
                ));
            }
        }
        if r.max_entries_per_append == 0
            || r.max_bytes_per_append == 0
            || r.max_inflight_appends == 0
        {
            return Err("raft batching limits must be at least 1".into());
        }
        if self.snapshot.threshold_bytes < 4096 {
            return Err("snapshot.threshold_bytes must be at least 4096".into());
        }
        if self.snapshot.log_percent > 10_000 {
            return Err("snapshot.log_percent must be at most 10000".into());
        }
        let l = &self.limits;
        if l.max_key_bytes == 0
            || l.max_value_bytes == 0
            || l.max_sessions == 0
            || l.max_pending_writes == 0
            || l.max_pending_reads == 0
        {
            return Err("limits must be at least 1".into());
        }
        if self.storage.segment_bytes < 4096 {
            return Err("storage.segment_bytes must be at least 4096".into());
        }
        let c = &self.connections;
        if c.max_clients == 0 {
            return Err("connections.max_clients must be at least 1".into());
        }
        let min_budget = MIN_CONNECTION_BUDGET_BYTES.max(4 * l.max_value_bytes);
        if c.max_buffered_bytes < min_budget || c.reserved_peer_bytes < min_budget {
            return Err(format!(
                "connections.max_buffered_bytes and connections.reserved_peer_bytes must be at \
                 least {min_budget} (16 MiB, and 4x limits.max_value_bytes)"
            ));
        }
        Ok(())
    }

    /// The node with this id.
    pub fn node(&self, id: u64) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// One line: where in the file (`line L, column C`, when known) and what is wrong.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().replace('\n', " ").trim().to_string();
    let Some(start) = error.span().map(|span| span.start.min(text.len())) else {
        return message;
    };
    let before = text.get(..start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
}

fn validate_addr(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("address {addr:?} is not host:port"))?;
    if host.is_empty() {
        return Err(format!("address {addr:?} has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("address {addr:?} has a bad port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cluster_id = "local-dev"
[[nodes]]
id = 1
addr = "127.0.0.1:7001"
[[nodes]]
id = 2
addr = "127.0.0.1:7002"
[[nodes]]
id = 3
addr = "127.0.0.1:7003"
"#;

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!(c.cluster_id, "local-dev");
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.raft, RaftSection::default());
        assert!(c.storage.fsync);
        assert_eq!(c.node(2).unwrap().addr, "127.0.0.1:7002");
    }

    fn error_of(text: &str) -> String {
        let e = ClusterConfig::parse(text).unwrap_err();
        assert!(!e.contains('\n'), "error must be one line: {e:?}");
        e
    }

    #[test]
    fn bad_configs_give_one_line_reasons() {
        assert!(
            error_of("cluster_id = ").contains("string") || !error_of("cluster_id = ").is_empty()
        );
        assert!(error_of("cluster_id = \"x\"\nnodes = []").contains("at least one"));
        let dup = GOOD.replace("id = 2", "id = 1");
        assert!(error_of(&dup).contains("appears twice"));
        let zero = GOOD.replace("id = 3", "id = 0");
        assert!(error_of(&zero).contains("id 0"));
        let bad_port = GOOD.replace("7003", "notaport");
        assert!(error_of(&bad_port).contains("bad port"));
        let unknown = format!("{GOOD}\nbogus = 1");
        assert!(error_of(&unknown).contains("bogus"));
        let syntax = error_of("cluster_id = \"x\"\n[[nodes]\nid = 1\n");
        assert!(syntax.starts_with("line 2, column "), "{syntax}");
        let timing = format!("{GOOD}\n[raft]\nelection_ticks = 2\nheartbeat_ticks = 5");
        assert!(error_of(&timing).contains("election_ticks"));
        let lease_without_quorum = format!("{GOOD}\n[raft]\ncheck_quorum = false");
        assert!(error_of(&lease_without_quorum).contains("lease_reads requires raft.check_quorum"));
        let short_lease = format!("{GOOD}\n[raft]\nelection_ticks = 6\nheartbeat_ticks = 5");
        assert!(error_of(&short_lease).contains("raft.lease_reads needs a lease"));
        let no_lease = format!("{GOOD}\n[raft]\nlease_reads = false\ncheck_quorum = false");
        assert!(ClusterConfig::parse(&no_lease).is_ok());
    }

    // Settings every member must share change the digest; per-node settings do not.
    #[test]
    fn the_settings_digest_covers_shared_settings_only() {
        let base = ClusterConfig::parse(GOOD).unwrap();
        let digest = base.settings_digest();
        let with = |edit: &dyn Fn(&mut ClusterConfig)| {
            let mut c = base.clone();
            edit(&mut c);
            c.settings_digest()
        };
        assert_eq!(with(&|_| {}), digest);
        for shared in [
            with(&|c| c.limits.max_value_bytes = 10),
            with(&|c| c.limits.max_sessions += 1),
            with(&|c| c.raft.election_ticks += 1),
            with(&|c| c.raft.lease_reads = !c.raft.lease_reads),
            with(&|c| c.nodes[2].id = 9),
        ] {
            assert_ne!(shared, digest);
        }
        for per_node in [
            with(&|c| c.nodes[0].addr = "10.0.0.1:7001".into()),
            with(&|c| c.limits.max_pending_writes += 1),
            with(&|c| c.snapshot.threshold_bytes += 4096),
            with(&|c| c.raft.max_inflight_appends += 1),
            with(&|c| c.storage.fsync = false),
        ] {
            assert_eq!(per_node, digest);
        }
    }
}
