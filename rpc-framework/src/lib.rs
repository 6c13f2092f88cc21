//! rpc-framework: length-prefixed protobuf RPC over mio.
//!
//! A server ([`Provider`]) hosts any number of protobuf services; a client ([`Channel`])
//! keeps one multiplexed TCP connection per server that any number of threads share.
//! Generated code (see [`build::ServiceGenerator`](crate#code-generation)) gives each
//! `service` a server trait, an adapter implementing [`Service`], and a typed client stub.
//! Nothing here knows about Raft.
//!
//! # Wire format
//!
//! Both directions carry the same frames, back to back on one TCP connection:
//!
//! ```text
//!  0               4               8                       8+H                     4+L
//!  +---------------+---------------+-----------------------+-----------------------+
//!  | frame length L| header len. H | RpcHeader (protobuf)  | body (protobuf)       |
//!  | u32 big-endian| u32 big-endian| H bytes               | L - 4 - H bytes       |
//!  +---------------+---------------+-----------------------+-----------------------+
//!  |<-- 4 bytes -->|<------------------------ L bytes ---------------------------->|
//! ```
//!
//! - `L` counts everything after the first four bytes (so `L >= 4`) and must not exceed
//!   `max_frame_bytes` (default 64 MiB, [`frame::DEFAULT_MAX_FRAME_BYTES`]); `H <= L - 4`.
//! - `RpcHeader` (`proto/rpc.proto`): `request_id` (u64, 1), `service` (string, 2),
//!   `method` (string, 3), `kind` (enum, 4: 0 request, 1 response, 2 error, 3 one-way
//!   request), `error_code`
//!   (u32, 5: a [`Code`], gRPC numbering) and `error_message` (string, 6).
//! - A request names `service` (fully qualified, e.g. `raftkv.kv.KvService`) and `method`
//!   (as in the `.proto`, e.g. `Get`); its body is the request message.
//! - A reply carries the request's `request_id`: `response` with the response message as
//!   body, or `error` with a code and message and an empty body. Replies come in
//!   completion order, not request order: one connection carries many calls at once.
//! - A one-way request ([`Channel::send_one_way`], `request_id` 0) gets no reply at all,
//!   not even an error (the server logs failures): for protocols that acknowledge at
//!   their own level, such as Raft between peers.
//! - A frame over the maximum, inconsistent lengths, or a header that does not decode
//!   close the connection (logged); everybody else's connections are unaffected. An
//!   unknown service or method gets an `Unimplemented` error reply and the connection
//!   stays open.
//!
//! # Threads
//!
//! - [`Provider`]: one mio event-loop thread accepts, reads, decodes and routes; handlers
//!   run on a bounded worker pool ([`Provider::register`]) or directly on the loop
//!   ([`Provider::register_inline`], for handlers that never block). A [`Responder`]
//!   completes from any thread and writes its reply straight to the socket when nothing is
//!   queued; the loop only flushes what could not be written at once.
//! - [`Channel`]: callers write their request frames straight to the socket; one I/O
//!   thread per channel reads replies, matches them by request id, enforces async
//!   deadlines and reconnects with capped backoff. See the [`client`](Channel) rules.
//!
//! # Quick start
//!
//! ```no_run
//! use bytes::Bytes;
//! use rpc_framework::{
//!     CallOptions, Channel, ChannelConfig, Provider, ProviderConfig, Responder, Service,
//! };
//!
//! struct Echo;
//! impl Service for Echo {
//!     fn name(&self) -> &'static str { "demo.Echo" }
//!     fn methods(&self) -> &'static [&'static str] { &["Echo"] }
//!     fn call(&self, _method: &str, request: Bytes, responder: Responder) {
//!         responder.respond(Ok(request));
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut provider = Provider::new(ProviderConfig::default());
//! provider.register(Echo);
//! let server = provider.serve("127.0.0.1:0".parse()?)?;
//!
//! let channel = Channel::new(server.local_addr().to_string(), ChannelConfig::default());
//! let reply = channel.call("demo.Echo", "Echo", Bytes::from_static(b"hi"), &CallOptions::default())?;
//! assert_eq!(reply, Bytes::from_static(b"hi"));
//! server.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! # Code generation
//!
//! With the `build` feature, `rpc_framework::build::ServiceGenerator` plugs into
//! prost-build from a `build.rs`; each `service Foo` in package `pkg` becomes
//! `FOO_NAME` (`"pkg.Foo"`), a `Foo` server trait (one method per rpc taking the request
//! and a [`Reply`]), `FooServer<T: Foo>` (implements [`Service`]; requests that do not
//! decode are answered `InvalidArgument`) and `FooClient` (a blocking and an `_async`
//! method per rpc over a [`Channel`]).

#![deny(missing_docs)]

#[cfg(feature = "build")]
pub mod build;
mod client;
mod error;
pub mod frame;
mod reply_batch;
mod server;
mod service;
mod socket_writer;
mod status;

pub use client::{CallOptions, Channel, ChannelConfig};
pub use error::RpcError;
pub use reply_batch::ReplyBatch;
pub use server::{Provider, ProviderConfig, ProviderHandle};
pub use service::{Reply, Responder, Service};
pub use status::{Code, Status};

/// Re-exported for generated code and users: the byte buffer type of bodies.
pub use bytes;
/// Re-exported for generated code: the protobuf runtime.
pub use prost;
