//! One-way calls: the handler runs, nothing comes back (not even an error), and the
//! connection goes on serving ordinary calls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpc_framework::frame::{encode_frame, FrameDecoder, FrameKind, RpcHeader};
use rpc_framework::{CallOptions, ProviderConfig};
use util::{channel_to, start_probe_server, SERVICE};

fn frame_bytes(header: &RpcHeader, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, header, body, usize::MAX).unwrap();
    buf.to_vec()
}

#[test]
fn one_way_calls_reach_the_handler_in_order() {
    let (server, control) = start_probe_server(ProviderConfig::default(), true);
    let channel = channel_to(&server);
    for i in 0..100u32 {
        channel
            .send_one_way(SERVICE, "Hold", &i.to_be_bytes())
            .unwrap();
    }
    let held = control.wait_held(100);
    let expected: Vec<Bytes> = (0..100u32)
        .map(|i| Bytes::copy_from_slice(&i.to_be_bytes()))
        .collect();
    assert_eq!(held, expected);
    // Completing a one-way responder sends nothing and leaves the connection usable.
    control.release_held();
    let echo = channel
        .call(
            SERVICE,
            "Echo",
            Bytes::from_static(b"after"),
            &CallOptions::default(),
        )
        .unwrap();
    assert_eq!(echo, Bytes::from_static(b"after"));
}

/// On a raw connection: a one-way echo, a one-way call of a missing method and a one-way
/// failure, then an ordinary echo. The first (and only) frame back is the ordinary echo's.
#[test]
fn nothing_comes_back_for_one_way_calls_not_even_errors() {
    let (server, _control) = start_probe_server(ProviderConfig::default(), true);
    let mut stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bytes = frame_bytes(&RpcHeader::one_way(SERVICE, "Echo"), b"quiet");
    bytes.extend(frame_bytes(&RpcHeader::one_way(SERVICE, "Missing"), b""));
    bytes.extend(frame_bytes(&RpcHeader::one_way(SERVICE, "Fail"), b"x"));
    bytes.extend(frame_bytes(
        &RpcHeader::request(7, SERVICE, "Echo"),
        b"loud",
    ));
    stream.write_all(&bytes).unwrap();
    let mut decoder = FrameDecoder::new(1024 * 1024);
    let mut buf = BytesMut::new();
    let frame = loop {
        if let Some(frame) = decoder.decode(&mut buf).unwrap() {
            break frame;
        }
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    assert_eq!(frame.header.request_id, 7);
    assert_eq!(frame.header.frame_kind(), Some(FrameKind::Response));
    assert_eq!(frame.body, Bytes::from_static(b"loud"));
    assert!(buf.is_empty(), "extra bytes after the only reply");
    // Nothing more arrives.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut chunk = [0u8; 64];
    match stream.read(&mut chunk) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

#[test]
fn a_one_way_call_to_an_unreachable_server_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let channel = rpc_framework::Channel::new(
        format!("127.0.0.1:{port}"),
        rpc_framework::ChannelConfig::default(),
    );
    // Either refused at once or queued on a connection that then fails; never blocks.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let _ = channel.send_one_way(SERVICE, "Echo", b"lost");
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}
