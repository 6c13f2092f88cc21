//! The simulated network: per-message delay with jitter, loss, duplication, reordering,
//! node disconnection and partitions, modelled on 6.824's `labrpc`.
//!
//! The network decides the fate of a message when it is sent ([`Network::route`]: when, if
//! ever, each copy arrives) and whether the link is still up when a copy arrives
//! ([`Network::link_up`]). A message crosses only if the link was up at both moments, as in
//! `labrpc`, where a reply is discarded if the server was disconnected meanwhile.
//!
//! Modes, as in `labrpc`:
//! - reliable: every message arrives after `min_delay_us..=max_delay_us`;
//! - unreliable (`set_reliable(false)`): an extra 0..=27 ms delay and 10% loss per message
//!   (requests and responses are separate messages here, so each direction is lost
//!   independently, as in `labrpc`);
//! - long reordering: a response is held back 200 + rand(1 + rand(2000)) ms with probability
//!   2/3 (`labrpc` delays replies this way), so old responses arrive long after newer ones.
//!
//! `labrpc`'s "long delays" only changes how long a Go RPC to a dead server blocks its caller;
//! one-way messages have no caller to block, so there is no such mode here.
//!
//! Counters: `rpc_count` counts REQUEST messages (`Message::is_request`), which is how 6.824
//! counts RPCs (a response travels inside the RPC there); `bytes_total` counts the
//! approximate encoded size of every message sent, requests and responses.

use crate::message::{Message, MessageBody};
use crate::sim::rng::SimRng;
use crate::types::NodeId;

/// How the network behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Smallest delay of a message.
    pub min_delay_us: u64,
    /// Largest delay of a message on a reliable network (uniform jitter in between).
    pub max_delay_us: u64,
    /// `false` = 6.824's unreliable mode (extra delay and loss).
    pub reliable: bool,
    /// Loss probability per message in unreliable mode, in 1/1000.
    pub unreliable_drop_per_mille: u32,
    /// Largest extra delay per message in unreliable mode.
    pub unreliable_delay_max_us: u64,
    /// 6.824's long reordering of responses.
    pub long_reordering: bool,
    /// Probability that a message is delivered twice, in 1/1000 (0 in the 6.824 tests).
    pub duplicate_per_mille: u32,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            min_delay_us: 500,
            max_delay_us: 5_000,
            reliable: true,
            unreliable_drop_per_mille: 100,
            unreliable_delay_max_us: 27_000,
            long_reordering: false,
            duplicate_per_mille: 0,
        }
    }
}

/// Traffic counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Request messages sent (6.824's RPC count), delivered or not.
    pub requests: u64,
    /// Request messages sent, per sender (index = node id - 1).
    pub requests_by_sender: Vec<u64>,
    /// Approximate bytes of every message sent.
    pub bytes: u64,
    /// Messages handed to the network.
    pub messages: u64,
    /// Copies lost (by loss, disconnection or partition).
    pub dropped: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// InstallSnapshot chunks sent.
    pub snapshot_chunks: u64,
}

/// The network between `n` nodes with ids `1..=n`.
#[derive(Clone, Debug)]
pub struct Network {
    config: NetworkConfig,
    connected: Vec<bool>,
    group: Vec<u32>,
    /// Directed links cut on their own (from slot, to slot): partial partitions.
    cut: std::collections::BTreeSet<(usize, usize)>,
    stats: NetStats,
}

/// When the copies of one message arrive: up to two (duplication), each a delay from now.
pub type Deliveries = Vec<u64>;

impl Network {
    /// A network between nodes `1..=nodes`, all connected, in one partition.
    pub fn new(nodes: usize, config: NetworkConfig) -> Network {
        Network {
            config,
            connected: vec![true; nodes],
            group: vec![0; nodes],
            cut: std::collections::BTreeSet::new(),
            stats: NetStats {
                requests_by_sender: vec![0; nodes],
                ..NetStats::default()
            },
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// Changes the configuration (takes effect for messages sent from now on).
    pub fn config_mut(&mut self) -> &mut NetworkConfig {
        &mut self.config
    }

    fn slot(&self, node: NodeId) -> usize {
        let i = node.0 as usize;
        assert!(i >= 1 && i <= self.connected.len(), "unknown node {node:?}");
        i - 1
    }

    /// Reattaches `node` to the network (6.824 `connect`).
    pub fn connect(&mut self, node: NodeId) {
        let i = self.slot(node);
        self.connected[i] = true;
    }

    /// Cuts `node` off from everyone (6.824 `disconnect`).
    pub fn disconnect(&mut self, node: NodeId) {
        let i = self.slot(node);
        self.connected[i] = false;
    }

    /// Whether `node` is attached.
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.connected[self.slot(node)]
    }

    /// Splits the nodes into `groups`; messages cross only within a group. Nodes in no
    /// group are isolated. Independent of `connect`/`disconnect`.
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        let n = self.group.len() as u32;
        for (i, g) in self.group.iter_mut().enumerate() {
            *g = n + 1 + i as u32; // a singleton group by default
        }
        for (gi, members) in groups.iter().enumerate() {
            for node in members {
                let i = self.slot(*node);
                self.group[i] = gi as u32;
            }
        }
    }

    /// Removes any partition and every cut link (connect/disconnect state is kept).
    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
        self.cut.clear();
    }

    /// Cuts the link from `from` to `to` only (messages the other way still cross):
    /// partial partitions, one-way loss. Undone by [`Network::heal`].
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        let link = (self.slot(from), self.slot(to));
        self.cut.insert(link);
    }

    /// Whether a message from `from` to `to` can cross right now.
    pub fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        let (a, b) = (self.slot(from), self.slot(to));
        self.connected[a]
            && self.connected[b]
            && self.group[a] == self.group[b]
            && !self.cut.contains(&(a, b))
    }

    /// The counters.
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    /// Counts `msg` as sent and decides when its copies arrive (empty: lost).
    pub fn route(&mut self, msg: &Message, rng: &mut SimRng) -> Deliveries {
        self.stats.messages += 1;
        self.stats.bytes += message_bytes(msg) as u64;
        if matches!(msg.body, MessageBody::InstallSnapshot(_)) {
            self.stats.snapshot_chunks += 1;
        }
        if msg.is_request() {
            let i = self.slot(msg.from);
            self.stats.requests += 1;
            self.stats.requests_by_sender[i] += 1;
        }
        if !self.link_up(msg.from, msg.to) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let mut deliveries = Vec::with_capacity(1);
        if let Some(delay) = self.one_copy(msg, rng) {
            deliveries.push(delay);
        } else {
            self.stats.dropped += 1;
        }
        if self.config.duplicate_per_mille > 0 && rng.chance(self.config.duplicate_per_mille) {
            if let Some(delay) = self.one_copy(msg, rng) {
                self.stats.duplicated += 1;
                deliveries.push(delay);
            }
        }
        deliveries
    }

    /// Records a copy that found its link down on arrival.
    pub fn count_dropped_on_arrival(&mut self) {
        self.stats.dropped += 1;
    }

    fn one_copy(&self, msg: &Message, rng: &mut SimRng) -> Option<u64> {
        let c = &self.config;
        let mut delay = rng.range_inclusive(c.min_delay_us, c.max_delay_us.max(c.min_delay_us));
        if !c.reliable {
            delay += rng.range_inclusive(0, c.unreliable_delay_max_us);
            if rng.chance(c.unreliable_drop_per_mille) {
                return None;
            }
        }
        if c.long_reordering && !msg.is_request() && rng.below(900) < 600 {
            let spread_ms = rng.range_inclusive(0, 2000);
            delay += (200 + rng.range_inclusive(0, spread_ms)) * 1000;
        }
        Some(delay)
    }
}

/// The approximate encoded size of a message (a fixed header plus its payload), used for
/// `bytes_total`.
pub fn message_bytes(msg: &Message) -> usize {
    const HEADER_BYTES: usize = 24;
    HEADER_BYTES
        + match &msg.body {
            MessageBody::AppendEntries(a) => {
                24 + a.entries.iter().map(|e| e.size_bytes()).sum::<usize>()
            }
            MessageBody::InstallSnapshot(s) => 40 + s.data.len(),
            MessageBody::RequestVote(_) => 18,
            MessageBody::AppendEntriesResponse(_) => 33,
            MessageBody::InstallSnapshotResponse(_) => 26,
            MessageBody::RequestVoteResponse(_)
            | MessageBody::Heartbeat(_)
            | MessageBody::HeartbeatResponse(_)
            | MessageBody::TimeoutNow => 16,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Heartbeat, HeartbeatResponse};
    use crate::types::Term;

    fn heartbeat(from: u64, to: u64) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(1),
            body: MessageBody::Heartbeat(Heartbeat {
                commit: Default::default(),
                read_seq: 0,
            }),
        }
    }

    fn response(from: u64, to: u64) -> Message {
        Message {
            body: MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq: 0 }),
            ..heartbeat(from, to)
        }
    }

    #[test]
    fn reliable_network_delivers_everything_within_the_delay_bounds() {
        let mut net = Network::new(3, NetworkConfig::default());
        let mut rng = SimRng::new(1);
        for _ in 0..1000 {
            let d = net.route(&heartbeat(1, 2), &mut rng);
            assert_eq!(d.len(), 1);
            assert!((500..=5_000).contains(&d[0]));
        }
        net.route(&response(2, 1), &mut rng);
        assert_eq!(net.stats().requests, 1000);
        assert_eq!(net.stats().requests_by_sender, vec![1000, 0, 0]);
        assert_eq!(net.stats().messages, 1001);
    }

    #[test]
    fn disconnect_and_partition_cut_links() {
        let mut net = Network::new(5, NetworkConfig::default());
        net.disconnect(NodeId(2));
        assert!(!net.link_up(NodeId(1), NodeId(2)));
        assert!(!net.link_up(NodeId(2), NodeId(1)));
        assert!(net.link_up(NodeId(1), NodeId(3)));
        net.connect(NodeId(2));
        net.partition(&[vec![NodeId(1), NodeId(2)], vec![NodeId(3), NodeId(4)]]);
        assert!(net.link_up(NodeId(1), NodeId(2)));
        assert!(!net.link_up(NodeId(2), NodeId(3)));
        assert!(
            !net.link_up(NodeId(5), NodeId(4)),
            "unlisted nodes are isolated"
        );
        let mut rng = SimRng::new(1);
        assert!(net.route(&heartbeat(1, 3), &mut rng).is_empty());
        net.heal();
        assert!(net.link_up(NodeId(5), NodeId(1)));
    }

    #[test]
    fn unreliable_network_loses_about_ten_percent() {
        let mut net = Network::new(
            2,
            NetworkConfig {
                reliable: false,
                ..Default::default()
            },
        );
        let mut rng = SimRng::new(9);
        let delivered: usize = (0..10_000)
            .map(|_| net.route(&heartbeat(1, 2), &mut rng).len())
            .sum();
        assert!((8_700..9_300).contains(&delivered), "delivered {delivered}");
    }

    #[test]
    fn long_reordering_delays_only_responses() {
        let cfg = NetworkConfig {
            long_reordering: true,
            ..Default::default()
        };
        let mut net = Network::new(2, cfg);
        let mut rng = SimRng::new(3);
        let late = (0..3000)
            .filter(|_| net.route(&response(2, 1), &mut rng)[0] >= 200_000)
            .count();
        assert!((1_800..2_200).contains(&late), "late {late}");
        assert!((0..1000).all(|_| net.route(&heartbeat(1, 2), &mut rng)[0] < 200_000));
    }

    #[test]
    fn duplication_creates_second_copies() {
        let cfg = NetworkConfig {
            duplicate_per_mille: 500,
            ..Default::default()
        };
        let mut net = Network::new(2, cfg);
        let mut rng = SimRng::new(5);
        let copies: usize = (0..1000)
            .map(|_| net.route(&heartbeat(1, 2), &mut rng).len())
            .sum();
        assert!((1_400..1_600).contains(&copies), "copies {copies}");
    }
}
