//! Many callers on one channel, and calls on one connection completing out of order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::sync::Arc;
use std::thread;

use bytes::Bytes;
use crossbeam_channel::TryRecvError;
use rpc_framework::{CallOptions, ProviderConfig};
use util::{channel_to, start_probe_server, SERVICE};

fn hammer(inline: bool) {
    let (server, _control) = start_probe_server(ProviderConfig::default(), inline);
    let channel = channel_to(&server);
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let channel = channel.clone();
            thread::spawn(move || {
                for i in 0..200 {
                    let body = Bytes::from(format!("thread {t} call {i} {}", "x".repeat(i)));
                    let reply = channel
                        .call(SERVICE, "Echo", body.clone(), &CallOptions::default())
                        .unwrap();
                    assert_eq!(reply, body);
                }
            })
        })
        .collect();
    for handle in threads {
        handle.join().unwrap();
    }
    server.shutdown();
}

#[test]
fn thirty_two_threads_share_one_channel_pooled_handlers() {
    hammer(false);
}

#[test]
fn thirty_two_threads_share_one_channel_inline_handlers() {
    hammer(true);
}

#[test]
fn many_async_calls_in_flight_from_one_thread() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..1000u32 {
        let tx = tx.clone();
        let body = Bytes::from(i.to_be_bytes().to_vec());
        channel.call_async(
            SERVICE,
            "Echo",
            body.clone(),
            &CallOptions::default(),
            move |r| {
                tx.send((body, r)).unwrap();
            },
        );
    }
    for _ in 0..1000 {
        let (body, reply) = rx.recv().unwrap();
        assert_eq!(reply.unwrap(), body);
    }
}

/// The slow handler blocks on a latch the test opens only after the fast call returned,
/// so the fast call cannot have waited for it.
#[test]
fn slow_handler_does_not_delay_a_fast_one() {
    let (server, control) = start_probe_server(ProviderConfig::default(), false);
    let channel = channel_to(&server);
    let (slow_tx, slow_rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Slow",
        Bytes::from_static(b"slow"),
        &CallOptions::default(),
        move |r| slow_tx.send(r).unwrap(),
    );
    let fast = channel
        .call(
            SERVICE,
            "Echo",
            Bytes::from_static(b"fast"),
            &CallOptions::default(),
        )
        .unwrap();
    assert_eq!(fast, Bytes::from_static(b"fast"));
    assert_eq!(
        slow_rx.try_recv(),
        Err(TryRecvError::Empty),
        "slow call finished early"
    );
    control.latch.release();
    assert_eq!(
        slow_rx.recv().unwrap().unwrap(),
        Bytes::from_static(b"slow")
    );
}

/// Inline handlers keep their responders; the test answers them in reverse order and the
/// client sees the replies in that order, all on one connection.
#[test]
fn replies_on_one_connection_complete_in_any_order() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..5u8 {
        let tx = tx.clone();
        channel.call_async(
            SERVICE,
            "Hold",
            Bytes::from(vec![i]),
            &CallOptions::default(),
            move |r| tx.send(r.unwrap()).unwrap(),
        );
    }
    control.wait_held(5);
    let mut held: Vec<_> = control.held.lock().drain(..).collect();
    held.sort_by_key(|(request, _)| request[0]);
    for (request, responder) in held.into_iter().rev() {
        responder.respond(Ok(request.clone()));
        // Each reply arrives before the next one is even sent: out of request order.
        assert_eq!(rx.recv().unwrap(), request);
    }
}

#[test]
fn responder_completes_from_another_thread() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = Arc::new(channel_to(&server));
    let caller = {
        let channel = channel.clone();
        thread::spawn(move || {
            channel.call(
                SERVICE,
                "Hold",
                Bytes::from_static(b"later"),
                &CallOptions::default(),
            )
        })
    };
    control.wait_held(1);
    let releaser = thread::spawn(move || control.release_held());
    releaser.join().unwrap();
    assert_eq!(
        caller.join().unwrap().unwrap(),
        Bytes::from_static(b"later")
    );
}

#[test]
fn public_handles_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<rpc_framework::Channel>();
    send_sync::<rpc_framework::ProviderHandle>();
    send::<rpc_framework::Responder>();
    send::<rpc_framework::Reply<rpc_framework::frame::RpcHeader>>();
    send_sync::<rpc_framework::RpcError>();
}
