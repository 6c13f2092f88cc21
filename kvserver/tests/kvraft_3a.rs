//! 6.824 lab 3A (kvraft without snapshots) on real loopback clusters: clerks behind
//! per-client proxies, Raft traffic through a fault-injecting transport, real disks.
//! Every test checks its whole history for linearizability (lincheck) and 6.824's
//! append checks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use lincheck::{check, Budget, CheckResult, KvInput, KvOutput};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::appends::{append_value, check_client_value, check_concurrent_appends, AppendRecord};
use support::generic::{generic_test, get_until_done, put_until_done, Generic};
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
                        assert!(!matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
                        // Not in 6.824 (which does not check this test's history): reads
                        // between the appends keep the linearizability check tractable;
                        // without them it must consider every interleaving of 50 appends.
                        let _ = history.get(clerk.clerk(), me as u64, "k");
                        AppendRecord {
                            j: n,
                            definite: outcome.is_done(),
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
    let rec = |j, definite| AppendRecord { j, definite };
    let ok = format!("{}{}", append_value(0, 0), append_value(0, 2));
    // Append 1 had an unknown outcome and did not happen: fine.
    let appends = [rec(0, true), rec(1, false), rec(2, true)];
    assert_eq!(check_client_value(0, &ok, &appends), Ok(()));
    // ... but a definite one may not be missing.
    assert!(check_client_value(0, &ok, &[rec(0, true), rec(1, true), rec(2, true)]).is_err());
    let dup = format!("{ok}{}", append_value(0, 2));
    assert!(check_client_value(0, &dup, &appends).is_err());
    let swapped = format!("{}{}", append_value(0, 2), append_value(0, 0));
    assert!(check_client_value(0, &swapped, &appends).is_err());
    let mixed = format!(
        "{}{}{}",
        append_value(1, 0),
        append_value(0, 0),
        append_value(1, 1)
    );
    let both = [vec![rec(0, true)], vec![rec(0, true), rec(1, true)]];
    assert_eq!(check_concurrent_appends(&mixed, &both), Ok(()));
    let reordered = [vec![rec(0, true)], vec![rec(1, true), rec(0, true)]];
    assert!(check_concurrent_appends(&mixed, &reordered).is_err());
    assert!(check_concurrent_appends(&dup, &[appends.to_vec()]).is_err());
}
