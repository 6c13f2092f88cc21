//! Helpers shared by lincheck's integration tests and benchmarks: terse constructors for
//! hand-written histories, a seeded PRNG, and a simulator that produces linearizable KV
//! histories by running concurrent clients against a reference map.
//!
//! The simulator's invariant: every operation takes effect (or, for a dropped one, does not)
//! at one instant strictly between its call and return timestamps, against a sequential
//! `BTreeMap`, so every history it produces is linearizable by construction.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;

use lincheck::{KvInput, KvOperation, KvOutput};

/// A completed operation.
pub fn op(client: u64, input: KvInput, output: KvOutput, call: u64, ret: u64) -> KvOperation {
    KvOperation::new(client, input, output, call, ret)
}

/// An operation with unknown outcome (never returned).
pub fn timed_out(client: u64, input: KvInput, call: u64) -> KvOperation {
    KvOperation::unknown(client, input, KvOutput::Unknown, call)
}

/// SplitMix64: a tiny seeded PRNG, so every generated history can be replayed from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True with probability `percent`%.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The shape of a simulated workload. Percentages are of all operations; whatever the
/// get/append/put/cas percentages leave over are deletes.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub clients: u64,
    pub keys: u64,
    pub ops_per_client: u64,
    pub get_percent: u64,
    pub append_percent: u64,
    pub put_percent: u64,
    pub cas_percent: u64,
    /// Operations that took effect but whose reply was lost (recorded as unknown).
    pub unknown_applied_percent: u64,
    /// Operations that timed out without taking effect (recorded as unknown).
    pub unknown_dropped_percent: u64,
    /// Bytes of padding added to every written value (to make appended values long).
    pub value_padding_bytes: usize,
}

impl Workload {
    /// A 6.824-style load: mostly appends and gets on a few keys, values growing long.
    pub fn appends(clients: u64, keys: u64, ops_per_client: u64) -> Self {
        Self {
            clients,
            keys,
            ops_per_client,
            get_percent: 45,
            append_percent: 45,
            put_percent: 5,
            cas_percent: 5,
            value_padding_bytes: 0,
            unknown_applied_percent: 0,
            unknown_dropped_percent: 0,
        }
    }
}

enum Client {
    Idle {
        remaining: u64,
    },
    Called {
        remaining: u64,
        input: KvInput,
        call: u64,
    },
    Applied {
        remaining: u64,
        input: KvInput,
        call: u64,
        output: Option<KvOutput>,
    },
}

/// The simulated world: the reference store, the clock, and what has been recorded.
struct Simulation {
    workload: Workload,
    rng: Rng,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    history: Vec<KvOperation>,
    now: u64,
    counter: u64,
}

impl Simulation {
    /// Moves client `c` one event forward: call, take effect (or not), or return.
    fn advance(&mut self, c: usize, client: Client) -> Client {
        match client {
            Client::Idle { remaining } => {
                self.counter += 1;
                let input = random_input(&self.workload, &mut self.rng, c as u64, self.counter);
                self.now += 1;
                let call = self.now;
                Client::Called {
                    remaining: remaining - 1,
                    input,
                    call,
                }
            }
            Client::Called {
                remaining,
                input,
                call,
            } => {
                // `None`: the client will never learn the outcome.
                let output = if self.rng.chance(self.workload.unknown_dropped_percent) {
                    None
                } else {
                    let output = apply(&mut self.store, &input);
                    (!self.rng.chance(self.workload.unknown_applied_percent)).then_some(output)
                };
                Client::Applied {
                    remaining,
                    input,
                    call,
                    output,
                }
            }
            Client::Applied {
                remaining,
                input,
                call,
                output,
            } => {
                self.now += 1;
                self.history.push(match output {
                    Some(output) => op(c as u64, input, output, call, self.now),
                    None => timed_out(c as u64, input, call),
                });
                Client::Idle { remaining }
            }
        }
    }
}

/// Runs `workload` with random interleavings from `seed`; returns a linearizable history.
pub fn simulate(workload: Workload, seed: u64) -> Vec<KvOperation> {
    let mut clients: Vec<Client> = (0..workload.clients)
        .map(|_| Client::Idle {
            remaining: workload.ops_per_client,
        })
        .collect();
    let mut simulation = Simulation {
        workload,
        rng: Rng::new(seed),
        store: BTreeMap::new(),
        history: Vec::new(),
        now: 1,
        counter: 0,
    };
    loop {
        let busy: Vec<usize> = (0..clients.len())
            .filter(|&c| !matches!(clients[c], Client::Idle { remaining: 0 }))
            .collect();
        if busy.is_empty() {
            return simulation.history;
        }
        let c = busy[simulation.rng.below(busy.len() as u64) as usize];
        let client = std::mem::replace(&mut clients[c], Client::Idle { remaining: 0 });
        clients[c] = simulation.advance(c, client);
    }
}

fn random_input(workload: &Workload, rng: &mut Rng, client: u64, counter: u64) -> KvInput {
    let key = format!("key{}", rng.below(workload.keys));
    let unique = format!(
        "c{client}.{counter}{};",
        "-".repeat(workload.value_padding_bytes)
    );
    let mut roll = rng.below(100);
    for (percent, kind) in [
        (workload.get_percent, 0),
        (workload.append_percent, 1),
        (workload.put_percent, 2),
        (workload.cas_percent, 3),
    ] {
        if roll < percent {
            return match kind {
                0 => KvInput::get(key),
                1 => KvInput::append(key, unique),
                2 => KvInput::put(key, unique),
                // Expect "absent" half the time so some swaps succeed.
                _ => KvInput::cas(key, if rng.chance(50) { "" } else { "x" }, unique),
            };
        }
        roll -= percent;
    }
    KvInput::delete(key)
}

/// Applies `input` to the reference map and returns what a correct server would reply.
pub fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, input: &KvInput) -> KvOutput {
    match input {
        KvInput::Get { key } => KvOutput::Value(store.get(key).cloned()),
        KvInput::Put { key, value } => {
            store.insert(key.clone(), value.clone());
            KvOutput::Ok
        }
        KvInput::Append { key, value } => {
            store
                .entry(key.clone())
                .or_default()
                .extend_from_slice(value);
            KvOutput::Ok
        }
        KvInput::Delete { key } => {
            store.remove(key);
            KvOutput::Ok
        }
        KvInput::Cas {
            key,
            expected,
            new_value,
        } => {
            let current = store.get(key);
            let swaps = match current {
                None => expected.is_empty(),
                Some(current) => !expected.is_empty() && current == expected,
            };
            if swaps {
                store.insert(key.clone(), new_value.clone());
            }
            KvOutput::Swapped(swaps)
        }
    }
}
