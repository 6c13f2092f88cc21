//! The clerk side of the unreliable network: a TCP proxy in front of one server for one
//! clerk (6.824's per-client endpoints). Clerks are given the proxies' addresses.
//!
//! - Blocked (`set_blocked(true)`): existing connections are killed and new ones are closed
//!   at once, so the clerk cannot reach that server (6.824's `makeClient(subset)` /
//!   `ConnectClient`).
//! - Unreliable: before or after forwarding a chunk, the connection is killed at random
//!   (a request lost, or executed with its reply lost), and some chunks are held back a few
//!   milliseconds.
//!
//! Threads: one accept thread per proxy and two pump threads per live connection; all are
//! joined when the proxy is dropped (killing the sockets unblocks them). The connection
//! registry only holds live connections (each pump removes its entry when it ends).

use super::rng::Rng;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Chance per forwarded chunk, per mille, that the connection dies before it is forwarded.
const KILL_BEFORE_PER_MILLE: u64 = 25;
/// Chance per forwarded chunk, per mille, that the connection dies right after it.
const KILL_AFTER_PER_MILLE: u64 = 25;
/// Chance per chunk, per mille, that it is held back.
const DELAY_PER_MILLE: u64 = 100;
/// Longest hold-back, in milliseconds.
const DELAY_MAX_MS: u64 = 5;

/// Settings every proxy of a cluster shares.
#[derive(Debug, Default)]
pub struct ClientNet {
    /// Whether clerk traffic is unreliable.
    pub unreliable: AtomicBool,
    /// Connections killed on purpose (unreliable mode only).
    pub kills: AtomicU64,
}

#[derive(Debug)]
struct Conn {
    client: TcpStream,
    server: TcpStream,
}

impl Conn {
    fn kill(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[derive(Debug)]
struct ProxyShared {
    target: SocketAddr,
    net: Arc<ClientNet>,
    blocked: AtomicBool,
    stopping: AtomicBool,
    rng: Mutex<Rng>,
    conns: Mutex<BTreeMap<u64, Conn>>,
    next_conn: AtomicU64,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

/// One proxy: listens on a free loopback port, forwards to `target`.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(target: SocketAddr, net: Arc<ClientNet>, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            target,
            net,
            blocked: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            rng: Mutex::new(Rng::new(seed)),
            conns: Mutex::new(BTreeMap::new()),
            next_conn: AtomicU64::new(0),
            pumps: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept_thread = std::thread::Builder::new()
            .name("test-proxy-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn the proxy accept thread");
        Proxy {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// Where clerks connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks (or unblocks) this clerk from this server; blocking kills live connections.
    pub fn set_blocked(&self, blocked: bool) {
        self.shared.blocked.store(blocked, Ordering::SeqCst);
        if blocked {
            for conn in self.shared.conns.lock().values() {
                conn.kill();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for conn in self.shared.conns.lock().values() {
            conn.kill();
        }
        // Wake the accept thread up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        let pumps = std::mem::take(&mut *self.shared.pumps.lock());
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = stream else { continue };
        if shared.blocked.load(Ordering::SeqCst) {
            continue; // dropping it closes it
        }
        let Ok(server) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(1)) else {
            continue; // the server is down: the clerk sees a closed connection
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        shared.conns.lock().insert(id, Conn { client, server });
        // Blocked or stopping meanwhile: the registry sweep may have missed this one.
        if shared.blocked.load(Ordering::SeqCst) || shared.stopping.load(Ordering::SeqCst) {
            if let Some(conn) = shared.conns.lock().remove(&id) {
                conn.kill();
            }
            continue;
        }
        let mut pumps = shared.pumps.lock();
        pumps.retain(|p| !p.is_finished());
        for (from, to) in [(c2, s2), (s3, c3)] {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("test-proxy-pump".into())
                .spawn(move || pump(from, to, id, s));
            match spawned {
                Ok(handle) => pumps.push(handle),
                Err(_) => {
                    if let Some(conn) = shared.conns.lock().remove(&id) {
                        conn.kill();
                    }
                }
            }
        }
    }
}

/// What the unreliable network does with one chunk.
enum ChunkFate {
    Forward { delay_ms: u64, kill_after: bool },
    KillBefore,
}

fn chunk_fate(shared: &ProxyShared) -> ChunkFate {
    if !shared.net.unreliable.load(Ordering::Relaxed) {
        return ChunkFate::Forward {
            delay_ms: 0,
            kill_after: false,
        };
    }
    let mut rng = shared.rng.lock();
    if rng.chance(KILL_BEFORE_PER_MILLE) {
        return ChunkFate::KillBefore;
    }
    let delay_ms = if rng.chance(DELAY_PER_MILLE) {
        1 + rng.below(DELAY_MAX_MS)
    } else {
        0
    };
    ChunkFate::Forward {
        delay_ms,
        kill_after: rng.chance(KILL_AFTER_PER_MILLE),
    }
}

/// Copies `from` to `to` until either side closes or the network kills the connection.
fn pump(mut from: TcpStream, mut to: TcpStream, id: u64, shared: Arc<ProxyShared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match chunk_fate(&shared) {
            ChunkFate::KillBefore => {
                shared.net.kills.fetch_add(1, Ordering::Relaxed);
                break;
            }
            ChunkFate::Forward {
                delay_ms,
                kill_after,
            } => {
                if delay_ms > 0 {
                    std::thread::sleep(Duration::from_millis(delay_ms));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if kill_after {
                    shared.net.kills.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    // Either direction ending ends the connection (the other pump wakes up on the shutdown).
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    shared.conns.lock().remove(&id);
}
