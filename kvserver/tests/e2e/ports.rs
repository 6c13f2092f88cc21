//! Free loopback ports for test servers.
//!
//! Ports are taken BELOW the kernel's ephemeral range (`ip_local_port_range`): a client's
//! outgoing connection picks its local port from that range, and could otherwise take
//! the port of a node that is down for a restart, making the restart fail with
//! "address in use". Each candidate is probed by binding it; a process-wide cursor makes
//! sure two tests of one binary never get the same port.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const FIRST_PORT: u32 = 20_000;

static CURSOR: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}

/// `n` distinct loopback ports that were free when probed.
pub fn free_ports(n: usize) -> Vec<u16> {
    let end = ephemeral_start().min(65_536);
    if end < FIRST_PORT + 1000 {
        return ephemeral_ports(n);
    }
    let span = end - FIRST_PORT;
    if CURSOR.load(Ordering::Relaxed) == 0 {
        // Start somewhere random so concurrent test binaries rarely probe the same ports.
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let start = h.finish() as u32 % span;
        let _ = CURSOR.compare_exchange(0, start.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut held = Vec::with_capacity(n);
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let port = FIRST_PORT + CURSOR.fetch_add(1, Ordering::Relaxed) % span;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), n, "no {n} free ports below {end}");
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Fallback: `n` ports picked by the kernel.
fn ephemeral_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}
