//! Raw sockets speaking (or abusing) the frame protocol by hand, for tests that need to
//! control every byte: hostile streams, stalled frames, idle connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use rpc_framework::frame::{encode_frame, Frame, FrameDecoder, RpcHeader};
use rpc_framework::ProviderHandle;

use super::SERVICE;

/// A blocking connection to `server` with a 10 s read timeout as a safety net, so a broken
/// server fails the test instead of hanging it.
pub fn raw_connection(server: &ProviderHandle) -> TcpStream {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset); panics on a timeout.
pub fn assert_closed_by_server(mut stream: TcpStream, case: &str) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{case}: server did not close the connection: {e}"),
        }
    }
}

/// One encoded frame.
pub fn frame_bytes(header: &RpcHeader, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(&mut buf, header, body, usize::MAX).unwrap();
    buf.to_vec()
}

/// Sends a request for `method` of the probe service and reads the one frame that answers
/// it. Panics if the server closes the connection instead.
pub fn raw_call(stream: &mut TcpStream, request_id: u64, method: &str, body: &[u8]) -> Frame {
    stream
        .write_all(&frame_bytes(
            &RpcHeader::request(request_id, SERVICE, method),
            body,
        ))
        .unwrap();
    let mut decoder = FrameDecoder::new(64 * 1024 * 1024);
    let mut buf = BytesMut::new();
    loop {
        if let Some(frame) = decoder.decode(&mut buf).unwrap() {
            return frame;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "the server closed the connection instead of answering"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}
