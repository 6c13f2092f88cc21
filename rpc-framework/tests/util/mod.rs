//! Loopback helpers for the integration tests: a raw-bytes test service whose handlers can
//! echo, fail, block on a latch or hold their responder, servers on ephemeral ports, and a
//! bounded condition wait.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rpc_framework::{
    Channel, ChannelConfig, Provider, ProviderConfig, ProviderHandle, Responder, Service, Status,
};

pub const SERVICE: &str = "test.Probe";

/// A gate that blocked handlers wait on until the test opens it.
#[derive(Clone)]
pub struct Latch {
    open: Arc<(Mutex<bool>, parking_lot::Condvar)>,
}

impl Latch {
    pub fn new() -> Latch {
        Latch {
            open: Arc::new((Mutex::new(false), parking_lot::Condvar::new())),
        }
    }
    pub fn wait(&self) {
        let (open, cond) = &*self.open;
        let mut guard = open.lock();
        while !*guard {
            cond.wait(&mut guard);
        }
    }
    pub fn release(&self) {
        let (open, cond) = &*self.open;
        *open.lock() = true;
        cond.notify_all();
    }
}

/// Handlers:
/// - `Echo`: replies with the request;
/// - `Fail`: replies `NotFound` with the request as message;
/// - `Slow`: blocks on the latch, then echoes (run it on the pool);
/// - `Hold`: stores the responder (reply later with `release_held`); tells `held_tx`;
/// - `Drop`: drops the responder; `Panic`: panics;
/// - `Promote`: promotes the connection to priority, then echoes.
pub struct Probe {
    pub latch: Latch,
    pub held: Arc<Mutex<Vec<(Bytes, Responder)>>>,
    pub held_tx: Sender<Bytes>,
    pub dropped: Arc<AtomicBool>,
}

pub struct ProbeControl {
    pub latch: Latch,
    pub held: Arc<Mutex<Vec<(Bytes, Responder)>>>,
    pub held_rx: Receiver<Bytes>,
    pub dropped: Arc<AtomicBool>,
}

impl ProbeControl {
    /// Waits until `n` more calls are being held.
    pub fn wait_held(&self, n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|_| {
                self.held_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("call not held")
            })
            .collect()
    }
    /// Replies to every held call with its own request (in the order given by `order`).
    pub fn release_held(&self) {
        let held: Vec<_> = self.held.lock().drain(..).collect();
        for (request, responder) in held {
            responder.respond(Ok(request));
        }
    }
}

pub fn probe() -> (Probe, ProbeControl) {
    let latch = Latch::new();
    let held = Arc::new(Mutex::new(Vec::new()));
    let (held_tx, held_rx) = crossbeam_channel::unbounded();
    let dropped = Arc::new(AtomicBool::new(false));
    (
        Probe {
            latch: latch.clone(),
            held: held.clone(),
            held_tx,
            dropped: dropped.clone(),
        },
        ProbeControl {
            latch,
            held,
            held_rx,
            dropped,
        },
    )
}

impl Service for Probe {
    fn name(&self) -> &'static str {
        SERVICE
    }
    fn methods(&self) -> &'static [&'static str] {
        &["Echo", "Fail", "Slow", "Hold", "Drop", "Panic", "Promote"]
    }
    fn call(&self, method: &str, request: Bytes, responder: Responder) {
        match method {
            "Echo" => responder.respond(Ok(request)),
            "Fail" => responder.respond(Err(Status::not_found(
                String::from_utf8_lossy(&request).into_owned(),
            ))),
            "Slow" => {
                self.latch.wait();
                responder.respond(Ok(request));
            }
            "Hold" => {
                self.held.lock().push((request.clone(), responder));
                self.held_tx.send(request).unwrap();
            }
            "Drop" => drop(responder),
            "Promote" => {
                responder.promote_connection();
                responder.respond(Ok(request));
            }
            "Panic" => panic!("the Panic method panics"),
            other => unreachable!("routed an unknown method {other}"),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// A server on 127.0.0.1:0 hosting a probe (on the pool, or inline).
pub fn start_probe_server(config: ProviderConfig, inline: bool) -> (ProviderHandle, ProbeControl) {
    start_probe_server_at("127.0.0.1:0".parse().unwrap(), config, inline)
}

pub fn start_probe_server_at(
    addr: SocketAddr,
    config: ProviderConfig,
    inline: bool,
) -> (ProviderHandle, ProbeControl) {
    let (service, control) = probe();
    let mut provider = Provider::new(config);
    if inline {
        provider.register_inline(service);
    } else {
        provider.register(service);
    }
    (provider.serve(addr).unwrap(), control)
}

pub fn channel_to(server: &ProviderHandle) -> Channel {
    Channel::new(server.local_addr().to_string(), ChannelConfig::default())
}

/// Polls `condition` until it holds, for at most 10 s (then panics with `what`).
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < give_up, "gave up waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}
