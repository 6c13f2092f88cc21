//! Starting a whole node from a [`ClusterConfig`]: storage, Raft node, KV server and the
//! Provider serving both services on one port. Used by the `kvserver` binary, the local
//! cluster example and in-process cluster tests.

use crate::config::{ClusterConfig, ConnectionsSection};
use crate::server::{KvServer, ServerConfig};
use crate::service::KvServiceImpl;
use crate::snapshot_policy::SnapshotPolicy;
use crate::state_machine::Limits;
use proto::kv::KvServiceServer;
use proto::raft::RaftServiceServer;
use raft::node::{NodeConfig, RaftNode, RaftServiceImpl, RpcTransport, RpcTransportConfig};
use raft::storage::{DiskOptions, DiskStorage};
use raft::{Config, NodeId};
use rpc_framework::{Provider, ProviderConfig, ProviderHandle};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a node could not start: one line each, for the binary to print.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The node id is not in the configuration.
    #[error("node {0} is not listed in the configuration's [[nodes]]")]
    UnknownNode(u64),
    /// The address does not resolve.
    #[error("cannot resolve address {addr}: {reason}")]
    Address {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The data directory cannot be used.
    #[error("data directory {dir}: {source}")]
    Storage {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        #[source]
        source: raft::StorageError,
    },
    /// Raft refused to start.
    #[error("raft: {0}")]
    Raft(#[from] raft::node::StartError),
    /// The port cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("spawning a thread failed: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A running node: stop it with [`RunningNode::shutdown`].
#[derive(Debug)]
pub struct RunningNode {
    /// The KV layer.
    pub server: Arc<KvServer>,
    /// The Raft node.
    pub node: Arc<RaftNode>,
    /// The Provider serving both services.
    provider: Option<ProviderHandle>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl RunningNode {
    /// Stops serving, then stops the KV layer and Raft, joining every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(p) = self.provider.take() {
            p.shutdown();
        }
        self.server.shutdown();
        self.node.shutdown();
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The data directory of node `id`: `--data-dir` if given, else `<data_dir>/node-<id>`
/// from the configuration, else `./data/node-<id>`.
pub fn data_dir_for(config: &ClusterConfig, id: u64, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(dir) => dir.to_path_buf(),
        None => config
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"))
            .join(format!("node-{id}")),
    }
}

/// Wraps a node's peer transport, e.g. to inject faults in tests.
pub type TransportWrapper = Box<
    dyn FnOnce(Arc<dyn raft::transport::Transport>) -> Arc<dyn raft::transport::Transport> + Send,
>;

/// How to start a node. The default starts a node that already has its data.
#[derive(Default)]
pub struct LaunchOptions {
    /// This is the first start of a new cluster: a data directory holding nothing of this
    /// node may be initialised (`kvserver --bootstrap`). Without it such a directory is
    /// refused: the node's data may have been lost, or be looked for in the wrong place,
    /// and an empty node must not vote. Ignored once the directory holds the node's data.
    pub bootstrap: bool,
    /// Called once with the node's real peer transport; the node uses what it returns.
    pub wrap_transport: Option<TransportWrapper>,
}

impl std::fmt::Debug for LaunchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchOptions")
            .field("bootstrap", &self.bootstrap)
            .field("wrap_transport", &self.wrap_transport.is_some())
            .finish()
    }
}

/// Starts node `id` of `config` with its data in `data_dir` (which must hold the node's
/// data already; see [`LaunchOptions::bootstrap`] for a new cluster).
///
/// # Errors
/// [`LaunchError`] with a one-line reason.
pub fn launch(
    config: &ClusterConfig,
    id: u64,
    data_dir: &Path,
) -> Result<RunningNode, LaunchError> {
    launch_with(config, id, data_dir, LaunchOptions::default())
}

/// [`launch`] with hooks: `options.wrap_transport` sees the peer transport first.
///
/// # Errors
/// [`LaunchError`] with a one-line reason.
pub fn launch_with(
    config: &ClusterConfig,
    id: u64,
    data_dir: &Path,
    options: LaunchOptions,
) -> Result<RunningNode, LaunchError> {
    let me = config.node(id).ok_or(LaunchError::UnknownNode(id))?;
    let addr = resolve(&me.addr)?;
    // Hold the port before touching the data directory. A second instance of a running
    // node (same config, same directory) must fail here: opening storage runs recovery,
    // which writes (a new WAL segment whose head restates an old hard state, a cut torn
    // tail) and would damage the live node's files.
    let port_reservation =
        std::net::TcpListener::bind(addr).map_err(|source| LaunchError::Bind { addr, source })?;
    let disk_options = DiskOptions {
        fsync: config.storage.fsync,
        segment_bytes: config.storage.segment_bytes,
        bootstrap: options.bootstrap,
        ..DiskOptions::new(config.cluster_id.clone(), NodeId(id))
    };
    let storage =
        DiskStorage::open(data_dir, disk_options).map_err(|source| LaunchError::Storage {
            dir: data_dir.to_path_buf(),
            source,
        })?;
    let addrs: BTreeMap<NodeId, String> = config
        .nodes
        .iter()
        .map(|n| (NodeId(n.id), n.addr.clone()))
        .collect();
    let voters: Vec<NodeId> = addrs.keys().copied().collect();
    let node_config = node_config(config, NodeId(id), voters.clone());
    let settings_digest = config.settings_digest();
    tracing::info!(node = id, digest = %format!("{settings_digest:016x}"),
        settings = %config.shared_settings(), "cluster settings (must match on every node)");
    let transport_config = RpcTransportConfig {
        settings_digest,
        ..RpcTransportConfig::new(config.cluster_id.clone(), NodeId(id))
    };
    let transport: Arc<dyn raft::transport::Transport> =
        Arc::new(RpcTransport::new(transport_config, &addrs));
    let transport = match options.wrap_transport {
        Some(wrap) => wrap(transport),
        None => transport,
    };
    let (apply_tx, apply_rx) = crossbeam_channel::bounded(4096);
    let node = Arc::new(RaftNode::new(
        node_config,
        Box::new(storage),
        transport,
        apply_tx,
    )?);
    let server_config = ServerConfig {
        id: NodeId(id),
        addrs,
        limits: limits(config),
        max_pending_writes: config.limits.max_pending_writes,
        max_pending_reads: config.limits.max_pending_reads,
        write_timeout: Duration::from_secs(10),
        snapshot_policy: SnapshotPolicy {
            threshold_bytes: config.snapshot.threshold_bytes,
            log_percent: config.snapshot.log_percent,
        },
    };
    let server = KvServer::start(server_config, node.clone(), apply_rx)?;
    let mut provider = Provider::new(provider_config(&config.connections));
    let raft_service = RaftServiceImpl::new(node.clone(), config.cluster_id.clone(), voters)
        .with_settings_digest(settings_digest);
    provider.register_inline(RaftServiceServer::new(raft_service));
    provider.register_inline(KvServiceServer::new(KvServiceImpl::new(server.clone())));
    // The Provider binds the address itself: hand the port over (a rebind on the spot;
    // only a process binding in this instant could take it, and then serve() fails).
    drop(port_reservation);
    let handle = match provider.serve(addr) {
        Ok(h) => h,
        Err(source) => {
            server.shutdown();
            node.shutdown();
            return Err(LaunchError::Bind { addr, source });
        }
    };
    tracing::info!(node = id, %addr, cluster = %config.cluster_id, dir = %data_dir.display(), "serving");
    Ok(RunningNode {
        server,
        node,
        provider: Some(handle),
        addr,
        data_dir: data_dir.to_path_buf(),
    })
}

fn node_config(config: &ClusterConfig, id: NodeId, voters: Vec<NodeId>) -> NodeConfig {
    let r = &config.raft;
    let raft = Config {
        election_timeout_ticks: r.election_ticks,
        heartbeat_interval_ticks: r.heartbeat_ticks,
        pre_vote: r.pre_vote,
        check_quorum: r.check_quorum,
        lease_reads: r.lease_reads,
        max_entries_per_append: r.max_entries_per_append,
        max_bytes_per_append: r.max_bytes_per_append,
        max_inflight_appends: r.max_inflight_appends,
        max_proposal_bytes: max_write_request_bytes(config),
        seed: id.0 ^ std::process::id() as u64,
        ..Config::new(id, voters)
    };
    NodeConfig {
        raft,
        tick_interval: Duration::from_millis(r.tick_ms),
        ..NodeConfig::new(Config::new(id, vec![id]))
    }
}

/// The largest encoded `WriteRequest` the limits allow: a CAS carries a key and two
/// values (expected and new), each up to its limit, plus the session fields and framing.
fn max_write_request_bytes(config: &ClusterConfig) -> usize {
    const FIELDS_AND_FRAMING_BYTES: usize = 1024;
    config.limits.max_key_bytes + 2 * config.limits.max_value_bytes + FIELDS_AND_FRAMING_BYTES
}

fn limits(config: &ClusterConfig) -> Limits {
    Limits {
        max_key_bytes: config.limits.max_key_bytes,
        max_value_bytes: config.limits.max_value_bytes,
        max_sessions: config.limits.max_sessions,
        ..Limits::default()
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, LaunchError> {
    let err = |reason: String| LaunchError::Address {
        addr: addr.to_string(),
        reason,
    };
    addr.to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no addresses".into()))
}

/// The Provider's limits from `[connections]`.
fn provider_config(connections: &ConnectionsSection) -> ProviderConfig {
    let timeout = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
    ProviderConfig {
        max_connections: connections.max_clients,
        max_buffered_bytes: connections.max_buffered_bytes,
        reserved_priority_bytes: connections.reserved_peer_bytes,
        idle_timeout: timeout(connections.idle_timeout_ms),
        partial_frame_timeout: timeout(connections.partial_frame_timeout_ms),
        ..ProviderConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use proto::kv::{write_request::Op, Cas, WriteRequest};

    // A CAS whose expected and new values are both at the value limit is a valid write;
    // the Raft proposal limit must let it through (it once allowed one value only).
    #[test]
    fn the_largest_valid_cas_fits_in_a_proposal() {
        let config = ClusterConfig::parse(
            "cluster_id = \"c\"\n[[nodes]]\nid = 1\naddr = \"127.0.0.1:7001\"\n",
        )
        .unwrap();
        let max_value = config.limits.max_value_bytes;
        let request = WriteRequest {
            client_id: u64::MAX,
            seq: u64::MAX,
            first_unacked_seq: u64::MAX,
            op: Some(Op::Cas(Cas {
                key: vec![b'k'; config.limits.max_key_bytes].into(),
                expected: vec![b'e'; max_value].into(),
                new_value: vec![b'n'; max_value].into(),
            })),
        };
        limits(&config).validate_write(&request).unwrap();
        let proposal = node_config(&config, NodeId(1), vec![NodeId(1)])
            .raft
            .max_proposal_bytes;
        assert!(
            request.encoded_len() <= proposal,
            "{} > {proposal}",
            request.encoded_len()
        );
    }
}
