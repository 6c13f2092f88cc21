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
