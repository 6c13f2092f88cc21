//! Generated code for raftkv's own services: the Raft peer protocol (`raft`) and the
//! client-facing key-value service (`kv`). Each `service` in a `.proto` file becomes a
//! server trait plus a client stub over [`rpc_framework::Channel`], produced by
//! [`rpc_framework::build::ServiceGenerator`]. No hand-written logic lives here.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The Raft peer protocol (`proto/raft.proto`).
pub mod raft {
    include!(concat!(env!("OUT_DIR"), "/raftkv.raft.rs"));
}

/// The key-value service and the command format stored in the Raft log (`proto/kv.proto`).
pub mod kv {
    include!(concat!(env!("OUT_DIR"), "/raftkv.kv.rs"));
}
