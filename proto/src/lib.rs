//! Generated code for raftkv's own services: the Raft peer protocol (`raft`), the
//! client-facing key-value service (`kv`) and the KV log's command format (`kvlog`). Each
//! `service` in a `.proto` file becomes a server trait plus a client stub over
//! [`rpc_framework::Channel`], produced by [`rpc_framework::build::ServiceGenerator`]. No
//! hand-written logic lives here.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The Raft peer protocol (`proto/raft.proto`).
pub mod raft {
    include!(concat!(env!("OUT_DIR"), "/raftkv.raft.rs"));
}

/// The client-facing key-value service (`proto/kv.proto`).
pub mod kv {
    include!(concat!(env!("OUT_DIR"), "/raftkv.kv.rs"));
}

/// The commands the KV state machine stores in the Raft log (`proto/kv_log.proto`).
pub mod kvlog {
    include!(concat!(env!("OUT_DIR"), "/raftkv.kvlog.rs"));
}
