//! A real 3-node cluster on loopback: elect, write, read, survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::TestCluster;

#[test]
fn three_nodes_elect_write_and_read() {
    let cluster = TestCluster::start(3, "");
    cluster.wait_for_leader(Duration::from_secs(10));
    let clerk = cluster.clerk();
    clerk.put("a", "1").unwrap();
    clerk.append("a", "2").unwrap();
    assert_eq!(clerk.get("a").unwrap().as_deref(), Some(&b"12"[..]));
    assert!(clerk.cas("a", "12", "3").unwrap());
    assert!(!clerk.cas("a", "12", "4").unwrap());
    assert!(clerk.delete("a").unwrap());
    assert_eq!(clerk.get("a").unwrap(), None);
}

#[test]
fn a_restarted_node_keeps_committed_data() {
    let mut cluster = TestCluster::start(3, "");
    cluster.wait_for_leader(Duration::from_secs(10));
    let clerk = cluster.clerk();
    for i in 0..50 {
        clerk.put(format!("k{i}"), format!("v{i}")).unwrap();
    }
    for i in 0..3 {
        cluster.stop_node(i);
    }
    for i in 0..3 {
        cluster.start_node(i);
    }
    for i in 0..50 {
        assert_eq!(
            clerk.get(format!("k{i}")).unwrap().unwrap(),
            format!("v{i}").as_bytes()
        );
    }
}

/// Sessions are registered explicitly (issue 12 item 6): with room for one session, a
/// second clerk's registration evicts the first clerk's session; the first clerk's next
/// write is refused unapplied (SESSION_EXPIRED on its first attempt), so the clerk
/// registers again and applies it exactly once.
#[test]
fn an_evicted_session_is_registered_again_and_its_write_applies_once() {
    let cluster = TestCluster::start(3, "[limits]\nmax_sessions = 1\n");
    cluster.wait_for_leader(Duration::from_secs(10));
    let first = cluster.clerk();
    let second = cluster.clerk();
    first.append("log", "a").unwrap();
    let first_session = first.client_id();
    assert_ne!(first_session, 0, "registered at the first write");
    second.append("log", "b").unwrap();
    assert_ne!(second.client_id(), first_session);
    first.append("log", "c").unwrap();
    assert_ne!(first.client_id(), first_session, "a new session");
    assert_eq!(first.get("log").unwrap().as_deref(), Some(&b"abc"[..]));
}
