//! MIT 6.824 Lab 2C (persistence), ported to the seeded simulator: restarts from the
//! simulated disk (which loses unsynced writes, keeping a random prefix or a random
//! subset of the pages of them), Figure 8
//! with crashes, and the unreliable/long-reordering variants. 6.824's goroutine clients
//! become actors stepped in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::sim::{cmd, cmd_value, run_seeds, Cluster, OneClient, SimConfig};
use raft::{LogIndex, NodeId};

const ELECTION_TIMEOUT_MS: u64 = 1000;
const SEEDS: u64 = 30;

fn cluster(nodes: usize, seed: u64, scenario: &str) -> Cluster {
    Cluster::new(SimConfig::new(nodes, seed).scenario(scenario))
}

fn random_cmd(c: &mut Cluster) -> u64 {
    c.rng().next_u64() >> 1
}

// TestPersist12C: basic persistence.
#[test]
fn persist1() {
    run_seeds("persist1", SEEDS, |seed| {
        let mut c = cluster(3, seed, "persist1");
        let servers = c.len();
        c.one(11, servers, true);
        // Crash and re-start all.
        for id in c.node_ids() {
            c.restart(id);
        }
        for id in c.node_ids() {
            c.disconnect(id);
            c.connect(id);
        }
        c.one(12, servers, true);
        let leader1 = c.check_one_leader();
        c.disconnect(leader1);
        c.restart(leader1);
        c.connect(leader1);
        c.one(13, servers, true);
        let leader2 = c.check_one_leader();
        c.disconnect(leader2);
        let i14 = c.one(14, servers - 1, true);
        c.restart(leader2);
        c.connect(leader2);
        c.wait(i14, servers, None); // wait for leader2 to join before killing i3
        let leader3 = c.check_one_leader();
        let i3 = c.peer(leader3, 1);
        c.disconnect(i3);
        c.one(15, servers - 1, true);
        c.restart(i3);
        c.connect(i3);
        c.one(16, servers, true);
    });
}

// TestPersist22C: more persistence.
#[test]
fn persist2() {
    run_seeds("persist2", SEEDS, |seed| {
        let mut c = cluster(5, seed, "persist2");
        let servers = c.len();
        let mut index = 1u64;
        for _ in 0..5 {
            c.one(10 + index, servers, true);
            index += 1;
            let leader1 = c.check_one_leader();
            c.disconnect(c.peer(leader1, 1));
            c.disconnect(c.peer(leader1, 2));
            c.one(10 + index, servers - 2, true);
            index += 1;
            for k in [0, 3, 4] {
                c.disconnect(c.peer(leader1, k));
            }
            for k in [1, 2] {
                c.restart(c.peer(leader1, k));
            }
            for k in [1, 2] {
                c.connect(c.peer(leader1, k));
            }
            c.run_for_ms(ELECTION_TIMEOUT_MS);
            c.restart(c.peer(leader1, 3));
            c.connect(c.peer(leader1, 3));
            c.one(10 + index, servers - 2, true);
            index += 1;
            c.connect(c.peer(leader1, 4));
            c.connect(c.peer(leader1, 0));
        }
        c.one(1000, servers, true);
    });
}

// TestPersist32C: partitioned leader and one follower crash, leader restarts.
#[test]
fn persist3() {
    run_seeds("persist3", SEEDS, |seed| {
        let mut c = cluster(3, seed, "persist3");
        c.one(101, 3, true);
        let leader = c.check_one_leader();
        c.disconnect(c.peer(leader, 2));
        c.one(102, 2, true);
        c.crash(c.peer(leader, 0));
        c.crash(c.peer(leader, 1));
        c.connect(c.peer(leader, 2));
        c.restart(c.peer(leader, 0));
        c.connect(c.peer(leader, 0));
        c.one(103, 2, true);
        c.restart(c.peer(leader, 1));
        c.connect(c.peer(leader, 1));
        c.one(104, 3, true);
    });
}

/// 6.824's sleep between Figure 8 iterations: 10% up to half an election timeout, else < 13 ms.
fn figure_8_sleep(c: &mut Cluster) {
    let ms = if c.rng().below(1000) < 100 {
        c.rng().below(ELECTION_TIMEOUT_MS / 2)
    } else {
        c.rng().below(13)
    };
    c.run_for_ms(ms);
}

// TestFigure82C: leaders fail quickly (often before committing), the next leader in a new
// term may finish replicating entries that were not committed (paper Figure 8).
#[test]
fn figure_8() {
    run_seeds("figure_8", SEEDS, |seed| {
        let mut c = cluster(5, seed, "figure_8");
        let servers = c.len();
        let v = random_cmd(&mut c);
        c.one(v, 1, true);
        let mut nup = servers;
        for _ in 0..1000 {
            let mut leader = None;
            for id in c.node_ids() {
                let v = random_cmd(&mut c);
                if c.start(id, cmd(v)).is_some() {
                    leader = Some(id);
                }
            }
            figure_8_sleep(&mut c);
            if let Some(l) = leader {
                c.crash(l);
                nup -= 1;
            }
            if nup < 3 {
                let s = NodeId(c.rng().below(servers as u64) + 1);
                if !c.is_up(s) {
                    c.restart(s);
                    c.connect(s);
                    nup += 1;
                }
            }
        }
        for id in c.node_ids() {
            if !c.is_up(id) {
                c.restart(id);
                c.connect(id);
            }
        }
        let v = random_cmd(&mut c);
        c.one(v, servers, true);
    });
}

// TestUnreliableAgree2C: concurrent agreements on an unreliable network.
#[test]
fn unreliable_agree() {
    run_seeds("unreliable_agree", SEEDS, |seed| {
        let mut c = cluster(5, seed, "unreliable_agree");
        c.set_unreliable(true);
        let servers = c.len();
        let mut clients: Vec<OneClient> = Vec::new();
        for iters in 1..50u64 {
            for j in 0..4 {
                clients.push(OneClient::new(cmd(100 * iters + j), 1, true));
            }
            clients.push(OneClient::new(cmd(iters), 1, true));
            c.run_clients(&mut clients, |cl| {
                cl.last().and_then(OneClient::done).is_some()
            });
            clients.pop();
        }
        c.set_unreliable(false);
        c.run_clients(&mut clients, |cl| cl.iter().all(|k| k.done().is_some()));
        c.one(100, servers, true);
    });
}

// TestFigure8Unreliable2C: Figure 8 on an unreliable network, with long reordering from
// iteration 200 on; leaders are disconnected rather than crashed.
#[test]
fn figure_8_unreliable() {
    run_seeds("figure_8_unreliable", SEEDS, |seed| {
        let mut c = cluster(5, seed, "figure_8_unreliable");
        c.set_unreliable(true);
        let servers = c.len();
        let v = c.rng().below(10_000);
        c.one(v, 1, true);
        let mut nup = servers;
        for iters in 0..1000 {
            if iters == 200 {
                c.set_long_reordering(true);
            }
            let mut leader = None;
            for id in c.node_ids() {
                let v = c.rng().below(10_000);
                if c.start(id, cmd(v)).is_some() && c.is_connected(id) {
                    leader = Some(id);
                }
            }
            figure_8_sleep(&mut c);
            if let Some(l) = leader {
                if c.rng().below(1000) < ELECTION_TIMEOUT_MS / 2 {
                    c.disconnect(l);
                    nup -= 1;
                }
            }
            if nup < 3 {
                let s = NodeId(c.rng().below(servers as u64) + 1);
                if !c.is_connected(s) {
                    c.connect(s);
                    nup += 1;
                }
            }
        }
        for id in c.node_ids() {
            if !c.is_connected(id) {
                c.connect(id);
            }
        }
        let v = c.rng().below(10_000);
        c.one(v, servers, true);
    });
}

/// One of 6.824's churn clients: starts a random command on every live server, then
/// checks for it with backoffs of 10, 20, 50, 100, 200 ms; idles 79 + me * 17 ms when no
/// server accepted.
struct ChurnClient {
    me: u64,
    wake_ms: u64,
    pending: Option<(u64, LogIndex, usize)>,
    values: Vec<u64>,
}

const CHURN_BACKOFF_MS: [u64; 5] = [10, 20, 50, 100, 200];

impl ChurnClient {
    fn step(&mut self, c: &mut Cluster) -> u64 {
        if let Some((x, index, k)) = self.pending {
            let (nd, got) = c.n_committed(index);
            if nd > 0 {
                if got.as_deref().and_then(cmd_value) == Some(x) {
                    self.values.push(x);
                }
                self.pending = None;
                return 0;
            }
            if k == CHURN_BACKOFF_MS.len() {
                self.pending = None;
                return 0;
            }
            self.pending = Some((x, index, k + 1));
            return CHURN_BACKOFF_MS[k];
        }
        let x = random_cmd(c);
        let mut index = None;
        for id in c.node_ids() {
            if let Some((i, _)) = c.start(id, cmd(x)) {
                index = Some(i);
            }
        }
        match index {
            Some(i) => {
                self.pending = Some((x, i, 0));
                self.step(c)
            }
            None => 79 + self.me * 17,
        }
    }
}

/// Runs the simulation for `ms` with the churn clients acting at their wake-up times.
fn run_with_churn_clients(c: &mut Cluster, clients: &mut [ChurnClient], ms: u64) {
    let end = c.now_ms() + ms;
    loop {
        let next = clients
            .iter()
            .map(|k| k.wake_ms)
            .min()
            .unwrap_or(end)
            .min(end);
        if next > c.now_ms() {
            c.run_for_ms(next - c.now_ms());
        }
        if c.now_ms() >= end {
            return;
        }
        for k in clients.iter_mut() {
            if k.wake_ms <= c.now_ms() {
                let delay = k.step(c);
                k.wake_ms = c.now_ms() + delay;
            }
        }
    }
}

// internalChurn (TestReliableChurn2C / TestUnreliableChurn2C).
fn churn(scenario: &str, unreliable: bool) {
    run_seeds(scenario, SEEDS, |seed| {
        churn_seed(scenario, unreliable, seed)
    });
}

fn churn_seed(scenario: &str, unreliable: bool, seed: u64) {
    let mut c = cluster(5, seed, scenario);
    c.set_unreliable(unreliable);
    let servers = c.len() as u64;
    let mut clients: Vec<ChurnClient> = (0..3)
        .map(|me| ChurnClient {
            me,
            wake_ms: 0,
            pending: None,
            values: Vec::new(),
        })
        .collect();
    for _ in 0..20 {
        if c.rng().below(1000) < 200 {
            let i = NodeId(c.rng().below(servers) + 1);
            c.disconnect(i);
        }
        if c.rng().below(1000) < 500 {
            let i = NodeId(c.rng().below(servers) + 1);
            if !c.is_up(i) {
                c.restart(i);
            }
            c.connect(i);
        }
        if c.rng().below(1000) < 200 {
            let i = NodeId(c.rng().below(servers) + 1);
            if c.is_up(i) {
                c.crash(i);
            }
        }
        // Infrequent enough that peers can often keep up, but not so infrequent that
        // everything settles between changes.
        run_with_churn_clients(&mut c, &mut clients, ELECTION_TIMEOUT_MS * 7 / 10);
    }
    run_with_churn_clients(&mut c, &mut clients, ELECTION_TIMEOUT_MS);
    c.set_unreliable(false);
    for id in c.node_ids() {
        if !c.is_up(id) {
            c.restart(id);
        }
        c.connect(id);
    }
    // Stop the clients: a client in the middle of its check loop finishes it, as the
    // goroutines only look at `stop` between commands.
    while clients.iter().any(|k| k.pending.is_some()) {
        let next = clients
            .iter()
            .filter(|k| k.pending.is_some())
            .map(|k| k.wake_ms)
            .min()
            .unwrap_or(0);
        if next > c.now_ms() {
            c.run_for_ms(next - c.now_ms());
        }
        let now = c.now_ms();
        for k in clients
            .iter_mut()
            .filter(|k| k.pending.is_some() && k.wake_ms <= now)
        {
            let delay = k.step(&mut c);
            k.wake_ms = c.now_ms() + delay;
        }
    }
    c.run_for_ms(ELECTION_TIMEOUT_MS);
    let v = random_cmd(&mut c);
    let last_index = c.one(v, servers as usize, true);
    let mut really = Vec::new();
    for index in 1..=last_index.0 {
        if let Some(data) = c.wait(LogIndex(index), servers as usize, None) {
            really.extend(cmd_value(&data));
        }
    }
    for k in &clients {
        for v1 in &k.values {
            c.ensure(really.contains(v1), || format!("didn't find a value: {v1}"));
        }
    }
}

/// Postmortem (a checker bug, found in the 5,000-seed run): a client's Start on a follower
/// makes its idle thread take the queued inputs at once, among them an append that raised
/// its commit index; the checker compared that commit with the entries the storage had
/// written before the rest of the round wrote them. The checker now looks at a node only
/// between rounds.
#[test]
fn seed_4930_reliable_churn_checked_between_rounds() {
    churn_seed("reliable_churn", false, 4930);
}

// TestReliableChurn2C
#[test]
fn reliable_churn() {
    churn("reliable_churn", false);
}

// TestUnreliableChurn2C
#[test]
fn unreliable_churn() {
    churn("unreliable_churn", true);
}
