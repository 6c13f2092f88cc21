//! Lifecycle: a server restarting on the same port with the client reconnecting, and both
//! sides' shutdown joining their threads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use rpc_framework::{CallOptions, ProviderConfig, RpcError};
use util::{channel_to, start_probe_server, start_probe_server_at, wait_for, SERVICE};

fn echo(channel: &rpc_framework::Channel) -> Result<Bytes, RpcError> {
    channel.call(
        SERVICE,
        "Echo",
        Bytes::from_static(b"e"),
        &CallOptions::default(),
    )
}

#[test]
fn client_reconnects_after_the_server_restarts_on_the_same_port() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let addr = server.local_addr();
    let channel = channel_to(&server);
    echo(&channel).unwrap();

    // A call pending when the server goes away fails as Disconnected, sent.
    let (tx, rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Hold",
        Bytes::new(),
        &CallOptions::default(),
        move |r| tx.send(r).unwrap(),
    );
    control.wait_held(1);
    // The held responder dies with the service, after its connection is closed.
    server.shutdown();
    assert_eq!(
        rx.recv().unwrap(),
        Err(RpcError::Disconnected { sent: true })
    );

    // While the server is down, calls fail without being sent.
    let err = echo(&channel).unwrap_err();
    assert!(!err.may_have_executed(), "{err:?}");

    let (server, _control) = start_probe_server_at(addr, ProviderConfig::default(), true);
    wait_for("the channel to reconnect", || echo(&channel).is_ok());
    assert!(channel.is_connected());
    server.shutdown();
}

#[test]
fn provider_shutdown_joins_its_threads_and_releases_its_services() {
    for inline in [false, true] {
        let (server, control) = start_probe_server(ProviderConfig::default(), inline);
        let channel = channel_to(&server);
        echo(&channel).unwrap();
        assert!(!control.dropped.load(Ordering::SeqCst));
        server.shutdown();
        // Every thread that held the service has been joined and dropped it.
        assert!(control.dropped.load(Ordering::SeqCst), "inline={inline}");
        let err = echo(&channel).unwrap_err();
        assert!(
            matches!(
                err,
                RpcError::Disconnected { .. } | RpcError::Unreachable(_)
            ),
            "{err:?}"
        );
    }
}

#[test]
fn provider_handle_drop_shuts_down_too() {
    let (server, control) = start_probe_server(ProviderConfig::default(), false);
    drop(server);
    assert!(control.dropped.load(Ordering::SeqCst));
}

#[test]
fn channel_shutdown_fails_pending_and_later_calls() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    let (tx, rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Hold",
        Bytes::new(),
        &CallOptions::default(),
        move |r| tx.send(r).unwrap(),
    );
    control.wait_held(1);
    channel.shutdown();
    assert_eq!(rx.recv().unwrap(), Err(RpcError::Shutdown));
    assert_eq!(echo(&channel), Err(RpcError::Shutdown));
    control.release_held();
}

#[test]
fn dropping_the_last_channel_clone_fails_pending_async_calls() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    let clone = channel.clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Hold",
        Bytes::new(),
        &CallOptions::default(),
        move |r| tx.send(r).unwrap(),
    );
    control.wait_held(1);
    drop(channel);
    echo(&clone).unwrap(); // a clone keeps the channel alive
    drop(clone); // joins the I/O thread, which fails what is pending
    assert_eq!(rx.try_recv().unwrap(), Err(RpcError::Shutdown));
    control.release_held();
}
