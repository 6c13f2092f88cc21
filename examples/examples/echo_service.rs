//! A non-Raft service on rpc-framework: starts a server hosting `demo.echo.EchoService`,
//! then calls it through the generated client, blocking and asynchronously.
//!
//! Run: `cargo run -p raftkv-examples --example echo_service`

#![allow(clippy::print_stdout)]

use std::sync::mpsc;

use raftkv_examples::echo::{
    ComputeRequest, EchoRequest, EchoServiceClient, EchoServiceServer, Operation,
};
use raftkv_examples::echo_impl::Echo;
use rpc_framework::{CallOptions, Channel, ChannelConfig, Provider, ProviderConfig, RpcError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Server: register the generated adapter around our implementation. `register_inline`
    // runs the handlers on the event loop (they never block); `register` would use the
    // worker pool.
    let mut provider = Provider::new(ProviderConfig::default());
    provider.register_inline(EchoServiceServer::new(Echo));
    let server = provider.serve("127.0.0.1:0".parse()?)?;
    println!("server listening on {}", server.local_addr());

    // Client: one channel (one TCP connection), shared by every stub clone and thread.
    let channel = Channel::new(server.local_addr().to_string(), ChannelConfig::default());
    let client = EchoServiceClient::new(channel);
    let options = CallOptions::default();

    let reply = client.echo(
        &EchoRequest {
            text: "hello, rpc".into(),
        },
        &options,
    )?;
    println!("echo: {}", reply.text);

    let sum = client.compute(
        &ComputeRequest {
            operation: Operation::Add as i32,
            left: 40,
            right: 2,
        },
        &options,
    )?;
    println!("40 + 2 = {}", sum.result);

    let division = ComputeRequest {
        operation: Operation::Divide as i32,
        left: 1,
        right: 0,
    };
    match client.compute(&division, &options) {
        Err(RpcError::Remote(status)) => println!("1 / 0 -> {status}"),
        other => println!("1 / 0 -> unexpected {other:?}"),
    }

    // Many calls in flight from one thread: callbacks run on the channel's I/O thread.
    let (tx, rx) = mpsc::channel();
    for i in 0..100 {
        let tx = tx.clone();
        let request = ComputeRequest {
            operation: Operation::Multiply as i32,
            left: i,
            right: i,
        };
        client.compute_async(&request, &options, move |result| {
            let _ = tx.send((i, result));
        });
    }
    drop(tx);
    let total: i64 = rx
        .iter()
        .map(|(_, result)| result.map_or(0, |r| r.result))
        .sum();
    println!("sum of squares 0..100 = {total}");

    server.shutdown();
    Ok(())
}
