//! 6.824 lab 3A (kvraft without snapshots) on real loopback clusters: clerks behind
//! per-client proxies, Raft traffic through a fault-injecting transport, real disks.
//! Every test checks its whole history for linearizability (lincheck) and 6.824's
//! append checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use lincheck::{check, Budget, CheckResult, KvInput, KvOutput};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::appends::{
    append_value, check_client_value, check_concurrent_appends, AppendRecord,
    Applied::{Maybe, No, Yes},
};
use support::generic::{generic_test, get_until_done, partitioner, put_until_done, Generic};
use support::history::{History, Outcome};
use support::{TestCluster, EVENTUALLY, FAST_RAFT};

#[test]
fn basic_one_client() {
    generic_test(&Generic::new(1, 5));
}

#[test]
fn concurrent_many_clients() {
    generic_test(&Generic::new(5, 5));
}

#[test]
fn unreliable_many_clients() {
    generic_test(&Generic {
        unreliable: true,
        ..Generic::new(5, 5)
    });
}

/// Concurrent appends to one key over an unreliable network: each client's appends appear
/// exactly once (at most once if the outcome was unknown), in order.
#[test]
fn unreliable_concurrent_appends_to_one_key() {
    const CLIENTS: usize = 5;
    const UPTO: usize = 10;
    let cluster = TestCluster::start(3, FAST_RAFT);
    cluster.set_unreliable(true);
    let history = History::new();
    let ck = cluster.make_clerk(&cluster.all());
    put_until_done(&history, &ck, CLIENTS as u64, "k", "");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|me| {
            let clerk = cluster.make_clerk(&cluster.all());
            let history = history.clone();
            std::thread::spawn(move || {
                (0..UPTO)
                    .map(|n| {
                        let outcome =
                            history.append(clerk.clerk(), me as u64, "k", &append_value(me, n));
                        // Not in 6.824 (which does not check this test's history): reads
                        // between the appends keep the linearizability check tractable;
                        // without them it must consider every interleaving of 50 appends.
                        let _ = history.get(clerk.clerk(), me as u64, "k");
                        AppendRecord {
                            j: n,
                            applied: outcome.applied(),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let records: Vec<Vec<AppendRecord>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let value = get_until_done(&history, &ck, CLIENTS as u64, "k").unwrap_or_default();
    check_concurrent_appends(&String::from_utf8_lossy(&value), &records).unwrap();
    history.assert_linearizable();
}

/// A request in the minority partition does not go through until the partition heals;
/// the majority keeps making progress. The leader starts out in the minority.
#[test]
fn one_partition_minority_waits_majority_progresses() {
    let cluster = TestCluster::start(5, FAST_RAFT);
    let history = History::new();
    let ck = cluster.make_clerk(&cluster.all());
    put_until_done(&history, &ck, 0, "1", "13");

    // Progress in the majority.
    let leader = cluster.wait_for_leader(EVENTUALLY);
    let p2 = vec![leader, (leader + 1) % 5];
    let p1: Vec<usize> = (0..5).filter(|i| !p2.contains(i)).collect();
    cluster.partition(&[&p1, &p2]);
    let ckp1 = cluster.make_clerk(&p1);
    let ckp2a = Arc::new(cluster.make_clerk(&p2));
    let ckp2b = Arc::new(cluster.make_clerk(&p2));
    put_until_done(&history, &ckp1, 1, "1", "14");
    assert_get(&history, &ckp1, 1, "1", "14");

    // No progress in the minority.
    let (done_put, put_rx) = mpsc::channel();
    let (done_get, get_rx) = mpsc::channel();
    let (h, c) = (history.clone(), ckp2a.clone());
    let put = std::thread::spawn(move || done_put.send(h.put(c.clerk(), 2, "1", "15")).unwrap());
    let (h, c) = (history.clone(), ckp2b.clone());
    let get = std::thread::spawn(move || done_get.send(h.get(c.clerk(), 3, "1")).unwrap());
    // Not a timing assertion: nothing may complete in the minority however long we wait.
    if let Ok(outcome) = put_rx.recv_timeout(Duration::from_secs(1)) {
        panic!("a put in the minority completed: {outcome:?}");
    }
    if let Ok(outcome) = get_rx.try_recv() {
        panic!("a get in the minority completed: {outcome:?}");
    }
    assert_get(&history, &ckp1, 1, "1", "14");
    put_until_done(&history, &ckp1, 1, "1", "16");
    assert_get(&history, &ckp1, 1, "1", "16");

    // Completion after the heal.
    cluster.heal();
    ckp2a.connect(&cluster.all());
    ckp2b.connect(&cluster.all());
    let put_outcome = put_rx
        .recv_timeout(EVENTUALLY)
        .expect("the put did not complete after the heal");
    let get_outcome = get_rx
        .recv_timeout(EVENTUALLY)
        .expect("the get did not complete after the heal");
    put.join().unwrap();
    get.join().unwrap();
    assert_eq!(put_outcome, Outcome::Done(()));
    assert!(get_outcome.is_done(), "{get_outcome:?}");
    assert_get(&history, &ck, 0, "1", "15");
    history.assert_linearizable();
}

fn assert_get(history: &History, clerk: &support::TestClerk, client: u64, key: &str, want: &str) {
    let value = get_until_done(history, clerk, client, key);
    assert_eq!(value.as_deref(), Some(want.as_bytes()), "get {key}");
}

#[test]
fn many_partitions_one_client() {
    generic_test(&Generic {
        partitions: true,
        ..Generic::new(1, 5)
    });
}

#[test]
fn many_partitions_many_clients() {
    generic_test(&Generic {
        partitions: true,
        ..Generic::new(5, 5)
    });
}

#[test]
fn persist_one_client() {
    generic_test(&Generic {
        crash: true,
        ..Generic::new(1, 5)
    });
}

#[test]
fn persist_concurrent() {
    generic_test(&Generic {
        crash: true,
        ..Generic::new(5, 5)
    });
}

#[test]
fn persist_concurrent_unreliable() {
    generic_test(&Generic {
        crash: true,
        unreliable: true,
        ..Generic::new(5, 5)
    });
}

#[test]
fn persist_partition() {
    generic_test(&Generic {
        crash: true,
        partitions: true,
        ..Generic::new(5, 5)
    });
}

#[test]
fn persist_partition_unreliable() {
    generic_test(&Generic {
        crash: true,
        partitions: true,
        unreliable: true,
        ..Generic::new(5, 5)
    });
}

#[test]
fn persist_partition_unreliable_linearizable() {
    generic_test(&Generic {
        crash: true,
        partitions: true,
        unreliable: true,
        randomkeys: true,
        ..Generic::new(15, 7)
    });
}

/// Not in 6.824 (its clerks never give up): clients abandon operations after 250 ms while
/// the servers are repartitioned and restarted over an unreliable network, so many writes
/// end with an unknown outcome. Every definite append must still appear exactly once and in
/// order, abandoned ones at most once and in order, and the history (unknowns included) must
/// be linearizable.
#[test]
fn abandoned_operations_stay_at_most_once_and_in_order() {
    let history = generic_test(&Generic {
        unreliable: true,
        crash: true,
        partitions: true,
        op_timeout: Duration::from_millis(250),
        ..Generic::new(5, 5)
    });
    assert_some_unknown(&history);
}

/// As above with random keys (Puts and Appends from every client on every key).
#[test]
fn abandoned_operations_random_keys_linearizable() {
    let history = generic_test(&Generic {
        unreliable: true,
        crash: true,
        partitions: true,
        randomkeys: true,
        op_timeout: Duration::from_millis(250),
        ..Generic::new(10, 5)
    });
    assert_some_unknown(&history);
}

fn assert_some_unknown(history: &History) {
    let unknown = history
        .operations()
        .iter()
        .filter(|o| o.is_outcome_unknown())
        .count();
    assert!(
        unknown > 0,
        "no operation was abandoned with an unknown outcome"
    );
}

/// Regression (clerk session watermark): a clerk whose first write was abandoned with an
/// unknown outcome (never applied) must still be able to write. The clerk used to send the
/// next write with watermark 2; servers that had never seen the client read that as an
/// evicted session and refused every later write of that clerk with SESSION_EXPIRED.
#[test]
fn a_clerk_whose_first_write_was_abandoned_can_still_write() {
    let cluster = TestCluster::start(3, FAST_RAFT);
    let history = History::new();
    let mut tries = 0;
    // The first write goes to a leader cut off from its followers, so it cannot commit.
    let clerk = loop {
        tries += 1;
        assert!(tries <= 10, "no first write ended with an unknown outcome");
        let leader = cluster.wait_for_leader(EVENTUALLY);
        cluster.net.isolate(leader);
        let clerk = cluster.make_clerk_with_timeout(&[leader], Duration::from_secs(1));
        let first = history.put(clerk.clerk(), 0, "k", "lost");
        cluster.heal();
        clerk.connect(&cluster.all());
        if matches!(first, Outcome::Unknown(_)) {
            break clerk;
        }
    };
    let deadline = std::time::Instant::now() + EVENTUALLY;
    loop {
        match history.put(clerk.clerk(), 0, "k", "kept") {
            Outcome::Done(()) => break,
            Outcome::Unknown(e) | Outcome::Failed(e) => {
                assert_ne!(e.kind, clerk::ErrorKind::SessionExpired, "{e}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "the write never succeeded: {e}"
                );
            }
        }
    }
    assert_get(&history, &clerk, 0, "k", "kept");
    history.assert_linearizable();
}

/// Not in 6.824: compare-and-swap and delete, whose replies depend on the state, under an
/// unreliable, repartitioned network. A retried Cas or Delete must return the result of its
/// one execution (the session's cached reply), not a re-evaluation.
#[test]
fn unreliable_partitioned_cas_and_delete_linearizable() {
    let cluster = TestCluster::start(5, FAST_RAFT);
    cluster.set_unreliable(true);
    let history = History::new();
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..5)
        .map(|cli| {
            let (clerk, history, done) = (
                cluster.make_clerk(&cluster.all()),
                history.clone(),
                done.clone(),
            );
            let rng = cluster.fork_rng();
            std::thread::spawn(move || cas_client_loop(&clerk, &history, &done, cli, rng))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let partitioner = {
        let (net, rng, done) = (cluster.net.clone(), cluster.fork_rng(), done.clone());
        std::thread::spawn(move || partitioner(&net, 5, rng, &done))
    };
    std::thread::sleep(Duration::from_secs(2));
    done.store(true, Ordering::SeqCst);
    partitioner.join().unwrap();
    cluster.heal();
    for c in clients {
        c.join().unwrap();
    }
    // Still unreliable: lost replies make clerks retry, and a retried Cas must return its
    // first answer (swapped) even though re-evaluating it now would say "not swapped".
    let own_keys: Vec<_> = (0..5)
        .map(|cli| {
            let (clerk, history) = (cluster.make_clerk(&cluster.all()), history.clone());
            std::thread::spawn(move || cas_own_key(&clerk, &history, cli))
        })
        .collect();
    let swapped: usize = own_keys.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(swapped > 0, "no compare-and-swap completed");
    history.assert_linearizable();
}

/// On a key only this client writes: Put a, Cas a->b (must swap), Cas a->c (must not).
/// Returns how many Cas swapped.
fn cas_own_key(clerk: &support::TestClerk, history: &History, cli: usize) -> usize {
    let (id, key) = (cli as u64, format!("own{cli}"));
    let mut swapped = 0;
    for i in 0..10 {
        let (a, b, c) = (format!("a{i}"), format!("b{i}"), format!("c{i}"));
        put_until_done(history, clerk, id, &key, &a);
        match history.cas(clerk.clerk(), id, &key, &a, &b) {
            Outcome::Done(s) => assert!(s, "client {cli}: Cas {a}->{b} on {key} did not swap"),
            _ => continue, // outcome unknown: nothing to assert
        }
        swapped += 1;
        if let Outcome::Done(s) = history.cas(clerk.clerk(), id, &key, &a, &c) {
            assert!(
                !s,
                "client {cli}: Cas {a}->{c} on {key} swapped after {a}->{b}"
            );
        }
        if let Outcome::Done(true) = history.delete(clerk.clerk(), id, &key) {
            if let Outcome::Done(existed) = history.delete(clerk.clerk(), id, &key) {
                assert!(!existed, "client {cli}: {key} existed after it was deleted");
            }
        }
    }
    swapped
}

/// Random Get/Put/Cas/Delete/Append on three keys until `done`; Cas expects the value the
/// client last read.
fn cas_client_loop(
    clerk: &support::TestClerk,
    history: &History,
    done: &AtomicBool,
    cli: usize,
    mut rng: support::rng::Rng,
) {
    const KEYS: u64 = 3;
    let (id, mut n) = (cli as u64, 0);
    let mut last_seen: Vec<Option<String>> = vec![None; KEYS as usize];
    while !done.load(Ordering::SeqCst) {
        let k = rng.below(KEYS) as usize;
        let key = format!("k{k}");
        let fresh = format!("{cli}.{n}");
        n += 1;
        match rng.below(10) {
            0..=2 => {
                if let Outcome::Done(v) = history.get(clerk.clerk(), id, &key) {
                    last_seen[k] = v.map(|v| String::from_utf8_lossy(&v).into_owned());
                }
            }
            3 | 4 => drop(history.put(clerk.clerk(), id, &key, &fresh)),
            5..=7 => {
                let expected = last_seen[k].clone().unwrap_or_default();
                drop(history.cas(clerk.clerk(), id, &key, &expected, &fresh));
            }
            8 => drop(history.delete(clerk.clerk(), id, &key)),
            _ => drop(history.append(clerk.clerk(), id, &key, &fresh)),
        }
    }
}

/// 6.824's full-length version (5 s of load per round) of the hardest 3A test.
#[test]
#[ignore = "soak: ~20 s"]
fn soak_persist_partition_unreliable_linearizable() {
    generic_test(&Generic {
        crash: true,
        partitions: true,
        unreliable: true,
        randomkeys: true,
        load: Duration::from_secs(5),
        ..Generic::new(15, 7)
    });
}

/// The checks are not vacuous: a history recorded from a real run passes, and the same
/// history with one read made stale (or made to return a value nobody wrote) fails.
#[test]
fn the_checker_rejects_a_real_history_with_a_corrupted_read() {
    let cluster = TestCluster::start(3, FAST_RAFT);
    let history = History::new();
    let clients: Vec<_> = (0..3)
        .map(|cli| {
            let clerk = cluster.make_clerk(&cluster.all());
            let history = history.clone();
            std::thread::spawn(move || {
                let key = cli.to_string();
                put_until_done(&history, &clerk, cli as u64, &key, "");
                for j in 0..20 {
                    assert!(history
                        .append(clerk.clerk(), cli as u64, &key, &append_value(cli, j))
                        .is_done());
                    assert!(history.get(clerk.clerk(), cli as u64, &key).is_done());
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    let ops = history.operations();
    assert!(
        ops.iter().all(|o| !o.is_outcome_unknown()),
        "a reliable run has no unknown outcomes"
    );
    assert!(check(&lincheck::KvModel, &ops, Budget::default()).is_ok());

    // A read that misses an append which returned before the read was called.
    let (read, append) = stale_read_candidate(&ops).expect("a get right after an append");
    let mut stale = ops.clone();
    let KvOutput::Value(Some(seen)) = &ops[read].output else {
        unreachable!()
    };
    let KvInput::Append { value: suffix, .. } = &ops[append].input else {
        unreachable!()
    };
    stale[read].output = KvOutput::found(&seen[..seen.len() - suffix.len()]);
    match check(&lincheck::KvModel, &stale, Budget::default()) {
        CheckResult::Illegal { explanation, .. } => eprintln!("stale read caught:\n{explanation}"),
        other => panic!("a stale read was not caught: {other}"),
    }

    let mut invented = ops;
    invented[read].output = KvOutput::found("never written");
    assert!(check(&lincheck::KvModel, &invented, Budget::default()).is_illegal());
}

/// A completed Get whose value ends with the text of an Append on the same key that
/// returned before the Get was called, with no other operation on that key in between.
fn stale_read_candidate(ops: &[lincheck::KvOperation]) -> Option<(usize, usize)> {
    ops.iter().enumerate().find_map(|(a, append)| {
        let KvInput::Append { key, value } = &append.input else {
            return None;
        };
        let next = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.input.key() == key.as_slice() && o.call > append.ret)
            .min_by_key(|(_, o)| o.call)?;
        let (read, get) = next;
        let overlaps = ops.iter().any(|o| {
            o.input.key() == key.as_slice()
                && o.call < get.call
                && o.ret > append.ret
                && !std::ptr::eq(o, get)
        });
        match (&get.input, &get.output) {
            (KvInput::Get { .. }, KvOutput::Value(Some(v))) if !overlaps && v.ends_with(value) => {
                Some((read, a))
            }
            _ => None,
        }
    })
}

#[test]
fn the_append_checks_catch_missing_duplicate_and_reordered_appends() {
    let rec = |j, applied| AppendRecord { j, applied };
    let value = |js: &[usize]| js.iter().map(|&j| append_value(0, j)).collect::<String>();
    let appends = [rec(0, Yes), rec(1, Maybe), rec(2, Yes), rec(3, No)];
    // The unknown append 1 may be missing, or present once after append 0.
    assert_eq!(check_client_value(0, &value(&[0, 2]), &appends), Ok(()));
    assert_eq!(check_client_value(0, &value(&[0, 1, 2]), &appends), Ok(()));
    assert_eq!(check_client_value(0, &value(&[0, 2, 1]), &appends), Ok(()));
    assert!(check_client_value(0, &value(&[1, 0, 2]), &appends).is_err());
    // Definite appends: exactly once, in order; failed ones: never.
    assert!(check_client_value(0, &value(&[0]), &appends).is_err());
    assert!(check_client_value(0, &value(&[2, 0]), &appends).is_err());
    assert!(check_client_value(0, &value(&[0, 2, 2]), &appends).is_err());
    assert!(check_client_value(0, &value(&[0, 1, 1, 2]), &appends).is_err());
    assert!(check_client_value(0, &value(&[0, 2, 3]), &appends).is_err());
    assert!(check_client_value(0, &value(&[0, 2, 4]), &appends).is_err());
    assert!(check_client_value(0, &format!("{}junk", value(&[0, 2])), &appends).is_err());
    // Several clients on one key: each client's order is checked on its own.
    let mixed = format!(
        "{}{}{}",
        append_value(1, 0),
        append_value(0, 0),
        append_value(1, 1)
    );
    let both = [vec![rec(0, Yes)], vec![rec(0, Yes), rec(1, Yes)]];
    assert_eq!(check_concurrent_appends(&mixed, &both), Ok(()));
    let reordered = [vec![rec(0, Yes)], vec![rec(1, Yes), rec(0, Yes)]];
    assert!(check_concurrent_appends(&mixed, &reordered).is_err());
}
