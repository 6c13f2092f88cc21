//! Tests of the state machine: each operation, limits, corrupt and old entries, and a
//! model check that every operation applies exactly once through retries, late duplicates
//! and snapshot restarts.

use super::*;
use prost::Message;
use proto::kv::{Append, Cas, Delete, Put};

/// Client ids 1..=CLIENTS are registered (at indexes 1..=CLIENTS) by [`with_clients`].
const CLIENTS: u64 = 5;

/// A state machine with sessions for clients 1..=CLIENTS.
fn with_clients(limits: Limits) -> StateMachine {
    let mut sm = StateMachine::new(limits);
    for index in 1..=CLIENTS {
        let reply = sm.apply(LogIndex(index), &register_request());
        assert_eq!(reply.client_id, index);
    }
    sm
}

fn request(client_id: u64, seq: u64, op: Op) -> WriteRequest {
    WriteRequest {
        client_id,
        seq,
        first_unacked_seq: 1,
        op: Some(op),
    }
}

fn put(key: &str, value: &str) -> Op {
    Op::Put(Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: value.to_owned().into(),
    })
}

fn append(key: &str, value: &str) -> Op {
    Op::Append(Append {
        key: key.to_owned().into(),
        value: value.to_owned().into(),
    })
}

fn delete(key: &str) -> Op {
    Op::Delete(Delete {
        key: key.to_owned().into(),
    })
}

fn cas(key: &str, expected: &str, new_value: &str) -> Op {
    Op::Cas(Cas {
        key: key.to_owned().into(),
        expected: expected.to_owned().into(),
        new_value: new_value.to_owned().into(),
    })
}

/// Applies `ops` from one client at consecutive indexes and seqs; returns the replies.
fn run(sm: &mut StateMachine, ops: Vec<Op>) -> Vec<WriteResponse> {
    ops.into_iter()
        .map(|op| {
            let index = sm.applied_index().next();
            sm.apply(index, &request(1, index.get(), op))
        })
        .collect()
}

fn value(sm: &StateMachine, key: &str) -> Option<String> {
    sm.get(key.as_bytes())
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn code(reply: &WriteResponse) -> Option<ErrorCode> {
    reply
        .error
        .as_ref()
        .map(|e| ErrorCode::try_from(e.code).unwrap())
}

#[test]
fn put_append_delete() {
    let mut sm = with_clients(Limits::default());
    let replies = run(
        &mut sm,
        vec![
            put("a", "1"),
            append("a", "2"),
            append("b", "x"),
            delete("a"),
            delete("zz"),
        ],
    );
    assert!(replies.iter().all(|r| r.error.is_none()));
    assert!(
        replies[3].swapped,
        "delete of an existing key reports it existed"
    );
    assert!(!replies[4].swapped);
    assert_eq!(value(&sm, "a"), None);
    assert_eq!(value(&sm, "b").as_deref(), Some("x"));
    assert_eq!(sm.len(), 1);
    assert_eq!(sm.applied_index(), LogIndex(CLIENTS + 5));
}

#[test]
fn append_concatenates() {
    let mut sm = with_clients(Limits::default());
    run(&mut sm, vec![put("k", "ab"), append("k", "cd")]);
    assert_eq!(value(&sm, "k").as_deref(), Some("abcd"));
}

#[test]
fn cas_with_empty_expected_means_absent() {
    let mut sm = with_clients(Limits::default());
    let r = run(
        &mut sm,
        vec![
            cas("k", "", "v1"), // absent -> swaps
            cas("k", "", "v2"), // present -> no swap
            cas("k", "zz", "v3"),
            cas("k", "v1", "v4"),
            put("e", ""),
            cas("e", "", "v5"), // present with an empty value: not "absent"
        ],
    );
    let swapped: Vec<bool> = r.iter().map(|r| r.swapped).collect();
    assert_eq!(swapped, [true, false, false, true, false, false]);
    assert_eq!(value(&sm, "k").as_deref(), Some("v4"));
    assert_eq!(value(&sm, "e").as_deref(), Some(""));
}

#[test]
fn append_beyond_value_limit_is_invalid_and_changes_nothing() {
    let limits = Limits {
        max_value_bytes: 4,
        ..Limits::default()
    };
    let mut sm = with_clients(limits);
    let r = run(
        &mut sm,
        vec![put("k", "abc"), append("k", "de"), append("k", "d")],
    );
    assert_eq!(code(&r[1]), Some(ErrorCode::InvalidArgument));
    assert!(r[2].error.is_none());
    assert_eq!(value(&sm, "k").as_deref(), Some("abcd"));
}

#[test]
fn oversized_writes_are_rejected_at_apply_too() {
    let limits = Limits {
        max_key_bytes: 2,
        max_value_bytes: 2,
        ..Limits::default()
    };
    let mut sm = with_clients(limits);
    let r = run(
        &mut sm,
        vec![put("key", "v"), put("k", "value"), put("k", "")],
    );
    assert_eq!(code(&r[0]), Some(ErrorCode::InvalidArgument));
    assert_eq!(code(&r[1]), Some(ErrorCode::InvalidArgument));
    assert!(r[2].error.is_none());
    assert_eq!(sm.len(), 1);
}

#[test]
fn validate_write_checks_sizes_and_fields() {
    let limits = Limits {
        max_key_bytes: 3,
        max_value_bytes: 3,
        ..Limits::default()
    };
    let ok = |op| limits.validate_write(&request(1, 1, op));
    assert!(ok(put("k", "v")).is_ok());
    assert!(ok(put("", "v")).is_err());
    assert!(ok(put("long", "v")).is_err());
    assert!(ok(put("k", "long")).is_err());
    assert!(ok(append("k", "long")).is_err());
    assert!(ok(cas("k", "long", "v")).is_err());
    assert!(ok(cas("k", "v", "long")).is_err());
    assert!(ok(delete("long")).is_err());
    let missing = WriteRequest {
        client_id: 1,
        seq: 1,
        first_unacked_seq: 1,
        op: None,
    };
    let error = limits.validate_write(&missing).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument as i32);
    let seq_zero = WriteRequest {
        seq: 0,
        first_unacked_seq: 0,
        ..request(1, 1, put("k", "v"))
    };
    assert!(limits.validate_write(&seq_zero).is_err());
    let acked_ahead = WriteRequest {
        first_unacked_seq: 2,
        ..request(1, 1, put("k", "v"))
    };
    assert!(limits.validate_write(&acked_ahead).is_err());
}

#[test]
fn limits_validate_rejects_zero() {
    assert!(Limits::default().validate().is_ok());
    let limits = Limits {
        max_sessions: 0,
        ..Limits::default()
    };
    assert_eq!(limits.validate().unwrap_err().field, "max_sessions");
    let limits = Limits {
        max_value_bytes: 1 << 33,
        ..Limits::default()
    };
    assert_eq!(limits.validate().unwrap_err().field, "max_value_bytes");
}

#[test]
fn duplicate_entry_returns_cached_reply_without_reapplying() {
    let mut sm = with_clients(Limits::default());
    let append_once = command::encode(&command::from_request(&request(5, 1, append("k", "x"))));
    let first = sm.apply_entry(LogIndex(11), &append_once).unwrap();
    let retry = sm.apply_entry(LogIndex(12), &append_once).unwrap();
    assert!(first.is_some());
    assert_eq!(first, retry);
    assert_eq!(value(&sm, "k").as_deref(), Some("x"));
    assert_eq!(sm.applied_index(), LogIndex(12));
}

#[test]
fn corrupt_entry_is_skipped_and_counts_as_applied() {
    let mut sm = StateMachine::new(Limits::default());
    assert_eq!(
        sm.apply_entry(LogIndex(3), &[0xff, 0xff, 0xff]).unwrap(),
        None
    );
    assert_eq!(sm.applied_index(), LogIndex(3));
    assert!(sm.is_empty());
}

#[test]
fn old_entries_are_ignored() {
    let mut sm = with_clients(Limits::default());
    let entry = command::encode(&command::from_request(&request(5, 1, put("k", "v"))));
    assert!(sm.apply_entry(LogIndex(14), &entry).unwrap().is_some());
    // An entry written before the log had its own format (a bare WriteRequest).
    let legacy = request(5, 2, put("k", "w")).encode_to_vec();
    assert_eq!(sm.apply_entry(LogIndex(14), &legacy).unwrap(), None);
    assert_eq!(value(&sm, "k").as_deref(), Some("v"));
    sm.apply_noop(LogIndex(16));
    sm.apply_noop(LogIndex(15));
    assert_eq!(sm.applied_index(), LogIndex(16));
    assert_eq!(
        sm.apply_entry(LogIndex(17), &legacy)
            .unwrap()
            .map(|r| r.error),
        Some(None)
    );
    assert_eq!(value(&sm, "k").as_deref(), Some("w"));
}

#[test]
fn an_entry_of_a_newer_format_applies_nothing() {
    let mut sm = with_clients(Limits::default());
    let before = sm.clone();
    let mut entry = command::encode(&command::from_request(&request(5, 1, put("k", "v")))).to_vec();
    entry[0] = command::FORMAT_VERSION + 1;
    assert!(matches!(
        sm.apply_entry(LogIndex(20), &entry),
        Err(command::CommandError::UnknownVersion(_))
    ));
    assert_eq!(
        sm, before,
        "not applied, and the index does not count as applied"
    );
}

#[test]
fn missing_op_replies_invalid_argument() {
    let mut sm = with_clients(Limits::default());
    let entry = WriteRequest {
        client_id: 1,
        seq: 1,
        first_unacked_seq: 1,
        op: None,
    };
    let reply = sm.apply(LogIndex(11), &entry);
    assert_eq!(code(&reply), Some(ErrorCode::InvalidArgument));
}

#[test]
fn approx_bytes_tracks_data() {
    let mut sm = with_clients(Limits::default());
    let empty = sm.approx_bytes();
    run(&mut sm, vec![put("k", "0123456789")]);
    let one = sm.approx_bytes();
    assert!(one > empty + 11);
    run(&mut sm, vec![put("k", "0"), delete("k")]);
    assert_eq!(sm.store.data_bytes, 0);
}
// ---- Exactly-once model check ---------------------------------------------------------

/// What a test client does next.
#[derive(Debug, Clone)]
enum Action {
    /// Send a new operation.
    Send,
    /// Send an outstanding operation again.
    Retry(usize),
    /// See the reply of an outstanding operation already in the log.
    Receive(usize),
    /// A copy of an earlier log entry arrives late (a duplicate from an old leader).
    Duplicate(usize),
    /// Round-trip the state machine through a snapshot, as a restart does.
    Restart,
}

#[derive(Debug, Clone, Default)]
struct TestClient {
    next_seq: u64,
    outstanding: std::collections::BTreeSet<u64>,
}

enum Event {
    Write(WriteRequest),
    Restart,
}

/// Turns client actions into a log: requests carry the client's acknowledgement state at
/// send time. Each operation appends "seq," to the client's own key.
fn build_log(actions: &[(usize, Action)]) -> Vec<Event> {
    let mut clients = vec![
        TestClient {
            next_seq: 1,
            ..TestClient::default()
        };
        3
    ];
    let mut log: Vec<Event> = Vec::new();
    let mut sent: Vec<WriteRequest> = Vec::new();
    for (client_index, action) in actions {
        let client = &mut clients[*client_index];
        let client_id = *client_index as u64 + 1;
        let seq = match action {
            Action::Send => {
                client.next_seq += 1;
                client.outstanding.insert(client.next_seq - 1);
                client.next_seq - 1
            }
            Action::Retry(pick) if !client.outstanding.is_empty() => *client
                .outstanding
                .iter()
                .nth(pick % client.outstanding.len())
                .unwrap(),
            Action::Receive(pick) if !client.outstanding.is_empty() => {
                let seq = *client
                    .outstanding
                    .iter()
                    .nth(pick % client.outstanding.len())
                    .unwrap();
                let in_log = sent
                    .iter()
                    .any(|r| r.client_id == client_id && r.seq == seq);
                if in_log {
                    client.outstanding.remove(&seq);
                }
                continue;
            }
            Action::Duplicate(pick) if !sent.is_empty() => {
                log.push(Event::Write(sent[pick % sent.len()].clone()));
                continue;
            }
            Action::Restart => {
                log.push(Event::Restart);
                continue;
            }
            _ => continue,
        };
        let first_unacked_seq = client.outstanding.first().copied().unwrap_or(seq).min(seq);
        let key = format!("c{client_id}");
        let request = WriteRequest {
            client_id,
            seq,
            first_unacked_seq,
            op: Some(append(&key, &format!("{seq},"))),
        };
        sent.push(request.clone());
        log.push(Event::Write(request));
    }
    log
}

fn action_strategy() -> impl proptest::strategy::Strategy<Value = (usize, Action)> {
    use proptest::prelude::*;
    let action = prop_oneof![
        4 => Just(Action::Send),
        2 => any::<usize>().prop_map(Action::Retry),
        3 => any::<usize>().prop_map(Action::Receive),
        1 => any::<usize>().prop_map(Action::Duplicate),
        1 => Just(Action::Restart),
    ];
    (0usize..3, action)
}

proptest::proptest! {
    /// Whatever the retries, duplicates and restarts, each operation in the log takes
    /// effect exactly once, in the order of its first appearance.
    #[test]
    fn every_operation_applies_exactly_once(
        actions in proptest::collection::vec(action_strategy(), 0..150),
    ) {
        let log = build_log(&actions);
        let mut sm = with_clients(Limits::default());
        let mut first_seen: Vec<Vec<u64>> = vec![Vec::new(); 3];
        for (position, event) in log.into_iter().enumerate() {
            match event {
                Event::Restart => sm = crate::snapshot::decode(&crate::snapshot::encode(&sm)).unwrap(),
                Event::Write(request) => {
                    let seen = &mut first_seen[request.client_id as usize - 1];
                    if !seen.contains(&request.seq) {
                        seen.push(request.seq);
                    }
                    let reply = sm.apply(LogIndex(CLIENTS + position as u64 + 1), &request);
                    if let Some(error) = reply.error {
                        // Only a late duplicate of an acknowledged write may be refused.
                        proptest::prop_assert_eq!(error.code, ErrorCode::SessionExpired as i32);
                        proptest::prop_assert!(request.seq < request.first_unacked_seq
                            || sm.sessions().get(request.client_id).unwrap().first_unacked_seq() > request.seq);
                    }
                }
            }
        }
        for (index, seen) in first_seen.iter().enumerate() {
            let expected: String = seen.iter().map(|seq| format!("{seq},")).collect();
            let actual = value(&sm, &format!("c{}", index + 1)).unwrap_or_default();
            proptest::prop_assert_eq!(actual, expected);
        }
    }
}

#[test]
fn register_opens_a_session_named_by_its_index_and_unknown_clients_are_refused() {
    let mut sm = StateMachine::new(Limits::default());
    let refused = sm.apply(LogIndex(1), &request(7, 1, put("k", "v")));
    assert_eq!(code(&refused), Some(ErrorCode::SessionExpired));
    assert_eq!(value(&sm, "k"), None);
    let registered = sm.apply(LogIndex(2), &register_request());
    assert!(registered.error.is_none());
    assert_eq!(registered.client_id, 2);
    let reply = sm.apply(LogIndex(3), &request(2, 1, put("k", "v")));
    assert!(reply.error.is_none());
    assert_eq!(value(&sm, "k").as_deref(), Some("v"));
    assert!(Limits::default()
        .validate_write(&register_request())
        .is_ok());
}
