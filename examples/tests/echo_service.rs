//! The generated `EchoService` code end to end: typed stubs, status mapping, undecodable
//! requests answered InvalidArgument, and the async form.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use raftkv_examples::echo::{
    ComputeRequest, EchoRequest, EchoServiceClient, EchoServiceServer, Operation, ECHO_SERVICE_NAME,
};
use raftkv_examples::echo_impl::Echo;
use rpc_framework::{
    CallOptions, Channel, ChannelConfig, Code, Provider, ProviderConfig, ProviderHandle, RpcError,
};

fn start(inline: bool) -> (ProviderHandle, EchoServiceClient) {
    let mut provider = Provider::new(ProviderConfig::default());
    if inline {
        provider.register_inline(EchoServiceServer::new(Echo));
    } else {
        provider.register(EchoServiceServer::new(Echo));
    }
    let server = provider.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let channel = Channel::new(server.local_addr().to_string(), ChannelConfig::default());
    (server, EchoServiceClient::new(channel))
}

#[test]
fn typed_calls_round_trip_and_statuses_map_to_remote_errors() {
    for inline in [false, true] {
        let (_server, client) = start(inline);
        let opts = CallOptions::default();
        let reply = client
            .echo(&EchoRequest { text: "hi".into() }, &opts)
            .unwrap();
        assert_eq!(reply.text, "hi");
        let request = ComputeRequest {
            operation: Operation::Subtract as i32,
            left: 5,
            right: 7,
        };
        assert_eq!(client.compute(&request, &opts).unwrap().result, -2);
        let overflow = ComputeRequest {
            operation: Operation::Add as i32,
            left: i64::MAX,
            right: 1,
        };
        match client.compute(&overflow, &opts) {
            Err(RpcError::Remote(status)) => assert_eq!(status.code, Code::InvalidArgument),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn undecodable_request_is_invalid_argument_and_unknown_method_unimplemented() {
    let (_server, client) = start(true);
    let channel = client.channel();
    let opts = CallOptions::default();
    // Field 1 as a length-delimited string of 10 bytes, but only 1 byte follows.
    let err = channel
        .call(
            ECHO_SERVICE_NAME,
            "Echo",
            Bytes::from_static(&[0x0A, 10, b'x']),
            &opts,
        )
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Remote(ref s) if s.code == Code::InvalidArgument),
        "{err:?}"
    );
    let err = channel
        .call(ECHO_SERVICE_NAME, "Shout", Bytes::new(), &opts)
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Remote(ref s) if s.code == Code::Unimplemented),
        "{err:?}"
    );
}

#[test]
fn async_stub_delivers_typed_results() {
    let (_server, client) = start(false);
    let (tx, rx) = crossbeam_like_channel();
    for i in 0..50i64 {
        let tx = tx.clone();
        let request = ComputeRequest {
            operation: Operation::Multiply as i32,
            left: i,
            right: 2,
        };
        client.compute_async(&request, &CallOptions::default(), move |r| {
            tx.send((i, r.unwrap().result)).unwrap()
        });
    }
    drop(tx);
    let mut results: Vec<(i64, i64)> = rx.iter().collect();
    results.sort_unstable();
    assert_eq!(results, (0..50).map(|i| (i, 2 * i)).collect::<Vec<_>>());
}

fn crossbeam_like_channel<T>() -> (std::sync::mpsc::Sender<T>, std::sync::mpsc::Receiver<T>) {
    std::sync::mpsc::channel()
}
