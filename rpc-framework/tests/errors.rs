//! Error paths: remote statuses, deadlines, limits, and hostile byte streams sent over raw
//! sockets while a well-behaved client keeps getting answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpc_framework::frame::{FrameDecoder, FrameKind, RpcHeader};
use rpc_framework::{CallOptions, Channel, ChannelConfig, Code, ProviderConfig, RpcError};
use util::raw::{assert_closed_by_server, frame_bytes, raw_connection};
use util::{channel_to, start_probe_server, SERVICE};

fn echo_ok(channel: &Channel) {
    let body = Bytes::from_static(b"still here");
    assert_eq!(
        channel
            .call(SERVICE, "Echo", body.clone(), &CallOptions::default())
            .unwrap(),
        body
    );
}

fn remote_code(result: Result<Bytes, RpcError>) -> Code {
    match result {
        Err(RpcError::Remote(status)) => status.code,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[test]
fn unknown_service_or_method_is_unimplemented_and_the_connection_stays_open() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), false);
    let channel = channel_to(&server);
    let opts = CallOptions::default();
    let err = channel
        .call("no.Such", "Echo", Bytes::new(), &opts)
        .unwrap_err();
    assert!(!err.may_have_executed());
    assert_eq!(remote_code(Err(err)), Code::Unimplemented);
    assert_eq!(
        remote_code(channel.call(SERVICE, "Nope", Bytes::new(), &opts)),
        Code::Unimplemented
    );
    echo_ok(&channel);
}

#[test]
fn handler_status_reaches_the_caller() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), false);
    let channel = channel_to(&server);
    let err = channel
        .call(
            SERVICE,
            "Fail",
            Bytes::from_static(b"key 7"),
            &CallOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        RpcError::Remote(rpc_framework::Status::not_found("key 7"))
    );
}

#[test]
fn dropped_responder_and_panicking_handler_answer_internal() {
    for inline in [false, true] {
        let (server, _control) = start_probe_server(ProviderConfig::default(), inline);
        let channel = channel_to(&server);
        let opts = CallOptions::default();
        assert_eq!(
            remote_code(channel.call(SERVICE, "Drop", Bytes::new(), &opts)),
            Code::Internal
        );
        assert_eq!(
            remote_code(channel.call(SERVICE, "Panic", Bytes::new(), &opts)),
            Code::Internal
        );
        echo_ok(&channel);
    }
}

#[test]
fn blocking_call_times_out_while_the_handler_holds_its_reply() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    echo_ok(&channel); // connected, so the request is certainly sent
    let opts = CallOptions::with_timeout(Duration::from_millis(50));
    let err = channel
        .call(SERVICE, "Hold", Bytes::from_static(b"h"), &opts)
        .unwrap_err();
    assert_eq!(err, RpcError::Timeout { sent: true });
    assert!(err.may_have_executed());
    control.wait_held(1);
    control.release_held(); // the late reply is discarded
    echo_ok(&channel);
}

#[test]
fn async_call_times_out_on_the_io_thread() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    echo_ok(&channel);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let opts = CallOptions::with_timeout(Duration::from_millis(30));
    channel.call_async(SERVICE, "Hold", Bytes::new(), &opts, move |r| {
        tx.send(r).unwrap()
    });
    assert_eq!(rx.recv().unwrap(), Err(RpcError::Timeout { sent: true }));
    control.release_held();
}

#[test]
fn too_many_pending_calls_per_connection_are_resource_exhausted() {
    let config = ProviderConfig {
        max_pending_calls_per_connection: 2,
        ..ProviderConfig::default()
    };
    let (server, control) = start_probe_server(config, true);
    let channel = channel_to(&server);
    let (tx, rx) = crossbeam_channel::unbounded();
    for _ in 0..2 {
        let tx = tx.clone();
        channel.call_async(
            SERVICE,
            "Hold",
            Bytes::new(),
            &CallOptions::default(),
            move |r| tx.send(r).unwrap(),
        );
    }
    control.wait_held(2);
    let third = channel.call(SERVICE, "Echo", Bytes::new(), &CallOptions::default());
    assert_eq!(remote_code(third), Code::ResourceExhausted);
    control.release_held();
    for _ in 0..2 {
        rx.recv().unwrap().unwrap();
    }
    echo_ok(&channel);
}

#[test]
fn client_side_limits_fail_fast_without_sending() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let config = ChannelConfig {
        max_pending_calls: 1,
        max_frame_bytes: 1024,
        ..ChannelConfig::default()
    };
    let channel = Channel::new(server.local_addr().to_string(), config);
    let big = channel.call(
        SERVICE,
        "Echo",
        Bytes::from(vec![0; 2000]),
        &CallOptions::default(),
    );
    assert!(matches!(
        big,
        Err(RpcError::FrameTooLarge {
            max_bytes: 1024,
            ..
        })
    ));
    let (tx, rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Hold",
        Bytes::new(),
        &CallOptions::default(),
        move |r| tx.send(r).unwrap(),
    );
    control.wait_held(1);
    let err = channel
        .call(SERVICE, "Echo", Bytes::new(), &CallOptions::default())
        .unwrap_err();
    assert!(matches!(err, RpcError::Overloaded(_)), "{err:?}");
    assert!(!err.may_have_executed());
    control.release_held();
    rx.recv().unwrap().unwrap();
}

#[test]
fn nothing_listening_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = Channel::new(format!("127.0.0.1:{port}"), ChannelConfig::default());
    let err = channel
        .call(SERVICE, "Echo", Bytes::new(), &CallOptions::default())
        .unwrap_err();
    assert!(matches!(err, RpcError::Unreachable(_)), "{err:?}");
    assert!(!err.may_have_executed());
    let unresolvable = Channel::new("no-such-host.invalid:1", ChannelConfig::default());
    let err = unresolvable
        .call(SERVICE, "Echo", Bytes::new(), &CallOptions::default())
        .unwrap_err();
    assert!(matches!(err, RpcError::Unreachable(_)), "{err:?}");
}

// ---- hostile byte streams -------------------------------------------------------------

#[test]
fn hostile_streams_close_only_their_own_connection() {
    let config = ProviderConfig {
        max_frame_bytes: 1024 * 1024,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let channel = channel_to(&server);
    echo_ok(&channel);
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let over_max = (2u32 * 1024 * 1024).to_be_bytes().to_vec();
    let mut bad_header = vec![0, 0, 0, 8, 0, 0, 0, 4];
    bad_header.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let mut inconsistent = vec![0, 0, 0, 8, 0, 0, 0, 200];
    inconsistent.extend_from_slice(&[0; 4]);
    let response_kind = frame_bytes(&RpcHeader::response(1), b"");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("length prefix over the maximum", over_max),
        ("header that does not decode", bad_header),
        ("header longer than the frame", inconsistent),
        ("a response sent to the server", response_kind),
    ];
    for (name, bytes) in cases {
        let mut stream = raw_connection(&server);
        stream.write_all(&bytes).unwrap();
        assert_closed_by_server(stream, name);
        echo_ok(&channel);
    }
    // A truncated frame followed by the peer hanging up.
    let mut stream = raw_connection(&server);
    let whole = frame_bytes(&RpcHeader::request(1, SERVICE, "Echo"), b"0123456789");
    stream.write_all(&whole[..whole.len() - 3]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_closed_by_server(stream, "truncated frame");
    echo_ok(&channel);
}

#[test]
fn raw_client_gets_unimplemented_and_then_its_echo_on_the_same_connection() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), false);
    let mut stream = raw_connection(&server);
    let mut bytes = frame_bytes(&RpcHeader::request(1, SERVICE, "Missing"), b"");
    bytes.extend(frame_bytes(
        &RpcHeader::request(2, SERVICE, "Echo"),
        b"pong",
    ));
    stream.write_all(&bytes).unwrap();
    let mut decoder = FrameDecoder::new(1024 * 1024);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    frames.sort_by_key(|f| f.header.request_id);
    assert_eq!(frames[0].header.frame_kind(), Some(FrameKind::Error));
    assert_eq!(
        Code::from_u32(frames[0].header.error_code),
        Code::Unimplemented
    );
    assert_eq!(frames[1].header.frame_kind(), Some(FrameKind::Response));
    assert_eq!(frames[1].body, Bytes::from_static(b"pong"));
}

#[test]
fn blocking_call_from_a_callback_of_the_same_channel_fails_instead_of_deadlocking() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    let inner = channel.clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    channel.call_async(
        SERVICE,
        "Echo",
        Bytes::new(),
        &CallOptions::default(),
        move |r| {
            r.unwrap();
            let nested = inner.call(SERVICE, "Echo", Bytes::new(), &CallOptions::default());
            tx.send(nested).unwrap();
        },
    );
    assert!(matches!(rx.recv().unwrap(), Err(RpcError::Unreachable(_))));
    echo_ok(&channel);
}

#[test]
fn garbage_from_the_server_fails_pending_calls_as_disconnected() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake_server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1];
        stream.read_exact(&mut request).unwrap(); // the request has arrived
        stream.write_all(&[0xFF; 64]).unwrap(); // a length prefix far over the maximum
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest); // until the client hangs up
    });
    let channel = Channel::new(addr.to_string(), ChannelConfig::default());
    let err = channel
        .call(SERVICE, "Echo", Bytes::new(), &CallOptions::default())
        .unwrap_err();
    assert_eq!(err, RpcError::Disconnected { sent: true });
    drop(channel);
    fake_server.join().unwrap();
}
