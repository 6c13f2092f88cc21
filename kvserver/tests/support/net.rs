//! Fault injection for Raft traffic between in-process nodes: partitions, loss,
//! duplication and reordering, as 6.824's labrpc does for its Raft peers.
//!
//! Every node's peer transport is wrapped (through `LaunchOptions::wrap_transport`) in a
//! [`FaultyTransport`] that asks one shared [`NetControl`] what happens to each outgoing
//! message:
//! - a message between nodes in different partition groups is dropped (checked again when a
//!   delayed message comes due, so nothing leaks across a partition made meanwhile);
//! - when unreliable: ~10% are dropped, ~2% are sent twice, ~15% are held back 1..40 ms by
//!   the transport's delay thread, which reorders them against later traffic.
//!
//! Invariants: the delay queue is bounded (`DELAY_QUEUE_MAX` batches; beyond it messages are
//! dropped, which Raft tolerates); `send` never blocks; the delay thread is joined when the
//! node shuts its transport down. All random choices come from one seeded PRNG.

use super::rng::Rng;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use kvserver::launch::TransportWrapper;
use parking_lot::Mutex;
use raft::message::Message;
use raft::transport::Transport;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Messages dropped by an unreliable network, per mille.
const DROP_PER_MILLE: u64 = 100;
/// Messages duplicated by an unreliable network, per mille.
const DUPLICATE_PER_MILLE: u64 = 20;
/// Messages delayed (and so reordered) by an unreliable network, per mille.
const DELAY_PER_MILLE: u64 = 150;
/// Longest delay, in milliseconds.
const DELAY_MAX_MS: u64 = 40;
/// Delayed messages held per node at most.
const DELAY_QUEUE_MAX: usize = 4096;

/// What the network did, for tests to check that faults really happened.
#[derive(Debug, Default)]
pub struct NetStats {
    pub sent: AtomicU64,
    pub cut: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub delayed: AtomicU64,
}

#[derive(Debug)]
struct NetState {
    /// Partition group of each node (by index); nodes talk only within their group.
    group_of: Vec<usize>,
    unreliable: bool,
    rng: Rng,
}

/// The shared switchboard of one test cluster's Raft network. Node indexes are 0-based
/// (node index `i` is Raft `NodeId(i + 1)`).
#[derive(Debug)]
pub struct NetControl {
    state: Mutex<NetState>,
    pub stats: NetStats,
}

/// What happens to one message.
enum Fate {
    Drop,
    Deliver {
        copies: usize,
        delay: Option<Duration>,
    },
}

impl NetControl {
    pub fn new(n: usize, seed: u64) -> Arc<NetControl> {
        Arc::new(NetControl {
            state: Mutex::new(NetState {
                group_of: vec![0; n],
                unreliable: false,
                rng: Rng::new(seed),
            }),
            stats: NetStats::default(),
        })
    }

    /// Splits the nodes into `groups`; a node listed in no group is cut off from everyone.
    pub fn partition(&self, groups: &[&[usize]]) {
        let mut s = self.state.lock();
        let n = s.group_of.len();
        for (i, g) in s.group_of.iter_mut().enumerate() {
            *g = n + i; // alone, unless listed below
        }
        for (gid, group) in groups.iter().enumerate() {
            for &i in group.iter() {
                s.group_of[i] = gid;
            }
        }
    }

    /// Everyone can talk to everyone again.
    pub fn heal(&self) {
        let mut s = self.state.lock();
        s.group_of.iter_mut().for_each(|g| *g = 0);
    }

    /// Cuts node `i` off from every other node; the others keep their links.
    pub fn isolate(&self, i: usize) {
        let mut s = self.state.lock();
        let n = s.group_of.len();
        s.group_of[i] = n + i;
    }

    pub fn set_unreliable(&self, on: bool) {
        self.state.lock().unreliable = on;
    }

    /// Whether nodes `a` and `b` can exchange messages.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        let s = self.state.lock();
        s.group_of[a] == s.group_of[b]
    }

    /// A `LaunchOptions::wrap_transport` hook (any node: messages carry their ends).
    pub fn wrapper(self: &Arc<Self>) -> TransportWrapper {
        let net = self.clone();
        Box::new(move |inner| Arc::new(FaultyTransport::new(net, inner)) as Arc<dyn Transport>)
    }

    fn fate(&self, msg: &Message) -> Fate {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock();
        let (from, to) = (index_of(msg.from.0), index_of(msg.to.0));
        if s.group_of.get(from) != s.group_of.get(to) {
            self.stats.cut.fetch_add(1, Ordering::Relaxed);
            return Fate::Drop;
        }
        if !s.unreliable {
            return Fate::Deliver {
                copies: 1,
                delay: None,
            };
        }
        if s.rng.chance(DROP_PER_MILLE) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Fate::Drop;
        }
        let copies = if s.rng.chance(DUPLICATE_PER_MILLE) {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let delay = if s.rng.chance(DELAY_PER_MILLE) {
            self.stats.delayed.fetch_add(1, Ordering::Relaxed);
            Some(Duration::from_millis(1 + s.rng.below(DELAY_MAX_MS)))
        } else {
            None
        };
        Fate::Deliver { copies, delay }
    }
}

/// Node ids are 1-based; test indexes 0-based.
fn index_of(id: u64) -> usize {
    (id as usize).saturating_sub(1)
}

/// A delayed message, ordered by due time (then arrival order) in the delay heap.
struct Delayed {
    due: Instant,
    order: u64,
    msg: Message,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// A node's peer transport behind the [`NetControl`].
pub struct FaultyTransport {
    net: Arc<NetControl>,
    inner: Arc<dyn Transport>,
    delay_tx: Mutex<Option<Sender<Delayed>>>,
    delay_thread: Mutex<Option<JoinHandle<()>>>,
    order: AtomicU64,
}

impl FaultyTransport {
    fn new(net: Arc<NetControl>, inner: Arc<dyn Transport>) -> FaultyTransport {
        let (tx, rx) = bounded(DELAY_QUEUE_MAX);
        let (thread_net, thread_inner) = (net.clone(), inner.clone());
        let thread = std::thread::Builder::new()
            .name("test-net-delay".into())
            .spawn(move || run_delay_queue(rx, thread_net, thread_inner))
            .expect("spawn the delay thread");
        FaultyTransport {
            net,
            inner,
            delay_tx: Mutex::new(Some(tx)),
            delay_thread: Mutex::new(Some(thread)),
            order: AtomicU64::new(0),
        }
    }

    fn stop(&self) {
        drop(self.delay_tx.lock().take());
        if let Some(t) = self.delay_thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Transport for FaultyTransport {
    fn send(&self, messages: Vec<Message>) {
        let mut now = Vec::with_capacity(messages.len());
        for msg in messages {
            match self.net.fate(&msg) {
                Fate::Drop => {}
                Fate::Deliver {
                    copies,
                    delay: None,
                } => {
                    for _ in 1..copies {
                        now.push(msg.clone());
                    }
                    now.push(msg);
                }
                Fate::Deliver {
                    copies,
                    delay: Some(delay),
                } => {
                    let tx = self.delay_tx.lock();
                    let Some(tx) = tx.as_ref() else { continue };
                    for _ in 0..copies {
                        let delayed = Delayed {
                            due: Instant::now() + delay,
                            order: self.order.fetch_add(1, Ordering::Relaxed),
                            msg: msg.clone(),
                        };
                        // Full queue: the message is lost, which Raft tolerates.
                        let _ = tx.try_send(delayed);
                    }
                }
            }
        }
        if !now.is_empty() {
            self.inner.send(now);
        }
    }

    fn shutdown(&self) {
        self.stop();
        self.inner.shutdown();
    }
}

impl Drop for FaultyTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The delay thread: holds messages until due, then delivers those whose link is still up.
fn run_delay_queue(rx: Receiver<Delayed>, net: Arc<NetControl>, inner: Arc<dyn Transport>) {
    let mut heap: BinaryHeap<Reverse<Delayed>> = BinaryHeap::new();
    loop {
        let wait = heap.peek().map_or(Duration::from_secs(3600), |Reverse(d)| {
            d.due.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(d) => {
                if heap.len() < DELAY_QUEUE_MAX {
                    heap.push(Reverse(d));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(d)| d.due <= now) {
            let Some(Reverse(d)) = heap.pop() else { break };
            if net.connected(index_of(d.msg.from.0), index_of(d.msg.to.0)) {
                due.push(d.msg);
            } else {
                net.stats.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !due.is_empty() {
            inner.send(due);
        }
    }
}
