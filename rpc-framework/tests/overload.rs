//! Overload and hostile clients: a flood of connections never locks a newcomer out,
//! promoted (priority) connections survive floods and idleness, stalled frames and idle
//! sockets are closed, and the memory budget bounds what partial frames and unread replies
//! hold while small requests keep being answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use rpc_framework::frame::{FrameKind, RpcHeader};
use rpc_framework::{CallOptions, Channel, ProviderConfig};
use util::raw::{assert_closed_by_server, frame_bytes, raw_call, raw_connection};
use util::{channel_to, start_probe_server, wait_for, SERVICE};

const MIB: usize = 1024 * 1024;

fn echo_ok(channel: &Channel) {
    let body = Bytes::from_static(b"still here");
    let reply = channel
        .call(SERVICE, "Echo", body.clone(), &CallOptions::default())
        .unwrap();
    assert_eq!(reply, body);
}

fn raw_echo_ok(stream: &mut TcpStream, request_id: u64) {
    let frame = raw_call(stream, request_id, "Echo", b"ping");
    assert_eq!(frame.header.frame_kind(), Some(FrameKind::Response));
    assert_eq!(frame.header.request_id, request_id);
    assert_eq!(&frame.body[..], b"ping");
}

fn promoted_connection(server: &rpc_framework::ProviderHandle) -> TcpStream {
    let mut stream = raw_connection(server);
    let frame = raw_call(&mut stream, 1, "Promote", b"me");
    assert_eq!(frame.header.frame_kind(), Some(FrameKind::Response));
    stream
}

#[test]
fn a_newcomer_evicts_the_quietest_connection_instead_of_being_refused() {
    let config = ProviderConfig {
        max_connections: 4,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..4 {
        let mut stream = raw_connection(&server);
        raw_echo_ok(&mut stream, i); // accepted and heard from, in this order
        idle.push(stream);
    }
    let channel = channel_to(&server);
    echo_ok(&channel); // the fifth connection gets in
    let oldest = idle.remove(0);
    assert_closed_by_server(oldest, "the quietest connection makes room");
    raw_echo_ok(&mut idle[2], 10); // the others are untouched
}

#[test]
fn promoted_connections_outlast_a_flood_and_do_not_count_toward_the_limit() {
    let config = ProviderConfig {
        max_connections: 2,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let mut peer = promoted_connection(&server);
    let flood: Vec<TcpStream> = (0..20).map(|_| raw_connection(&server)).collect();
    let channel = channel_to(&server);
    echo_ok(&channel);
    raw_echo_ok(&mut peer, 2);
    // The flood evicted itself: at most `max_connections` ordinary ones remain open.
    drop(flood);
    echo_ok(&channel);
    raw_echo_ok(&mut peer, 3);
}

#[test]
fn idle_ordinary_connections_are_closed_and_promoted_ones_are_not() {
    let config = ProviderConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let mut peer = promoted_connection(&server);
    // Opened after the peer's last request: by the time it is closed for idleness, the
    // peer has been idle longer.
    let idle = raw_connection(&server);
    assert_closed_by_server(idle, "idle connection");
    raw_echo_ok(&mut peer, 2);
}

#[test]
fn a_frame_stalled_midway_is_closed_after_the_partial_frame_timeout() {
    let config = ProviderConfig {
        partial_frame_timeout: Some(Duration::from_millis(100)),
        idle_timeout: None,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let channel = channel_to(&server);
    let mut stalled = raw_connection(&server);
    let whole = frame_bytes(&RpcHeader::request(1, SERVICE, "Echo"), &[7u8; 4096]);
    stalled.write_all(&whole[..100]).unwrap();
    assert_closed_by_server(stalled, "stalled partial frame");
    // Not closed: a connection that keeps completing frames (each read may end mid-frame).
    let mut busy = raw_connection(&server);
    for id in 0..20 {
        raw_echo_ok(&mut busy, id);
        std::thread::sleep(Duration::from_millis(10));
    }
    echo_ok(&channel);
}

#[test]
fn partial_frames_cannot_exhaust_the_budget_nor_starve_small_requests() {
    let budget = 4 * MIB;
    let config = ProviderConfig {
        max_frame_bytes: 16 * MIB,
        max_buffered_bytes: budget,
        reserved_priority_bytes: 0,
        partial_frame_timeout: None,
        idle_timeout: None,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, false);
    let channel = channel_to(&server);
    let header = frame_bytes(&RpcHeader::request(1, SERVICE, "Echo"), &[0u8; 8 * MIB]);
    let sent_part = &header[..2 * MIB]; // of an 8 MiB frame: never completed
    let mut attackers = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let mut stream = raw_connection(&server);
        match stream.write_all(sent_part) {
            Ok(()) => attackers.push(stream),
            Err(_) => refused += 1,
        }
    }
    // 16 MiB offered; partial frames may hold three quarters of 4 MiB (plus 64 KiB each
    // uncharged), so at most one attacker can have all its 2 MiB buffered: the server
    // closes the others as their bytes arrive.
    for stream in &attackers {
        stream.set_nonblocking(true).unwrap();
    }
    wait_for("all attackers but one closed by the server", || {
        let open = attackers.iter().filter(|s| is_open(s)).count();
        refused + (attackers.len() - open) >= 7
    });
    assert!(server.buffered_bytes() <= budget * 3 / 4);
    echo_ok(&channel); // a small request still fits
    drop(attackers);
    wait_for("the budget is returned", || server.buffered_bytes() == 0);
}

/// Whether the server has not closed `stream` (non-blocking: no data and no EOF yet).
fn is_open(mut stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut stream, &mut buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

#[test]
fn a_client_that_does_not_read_its_replies_is_closed_and_its_budget_returned() {
    let config = ProviderConfig {
        max_buffered_bytes: 4 * MIB,
        reserved_priority_bytes: 0,
        ..ProviderConfig::default()
    };
    let (server, _control) = start_probe_server(config, true);
    let channel = channel_to(&server);
    let mut reader_less = raw_connection(&server);
    reader_less
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = frame_bytes(&RpcHeader::request(1, SERVICE, "Echo"), &[1u8; 256 * 1024]);
    // 64 MiB of echoes: far beyond what the socket buffers and the budget hold.
    for _ in 0..256 {
        if reader_less.write_all(&request).is_err() {
            break; // closed by the server
        }
    }
    assert_closed_by_server(reader_less, "replies not read");
    wait_for("every byte buffered for it is returned", || {
        server.buffered_bytes() == 0
    });
    echo_ok(&channel);
}
