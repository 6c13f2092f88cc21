//! kvserver: the key-value state machine and server.

#![deny(missing_docs)]

pub mod config;
pub mod launch;
pub mod server;
pub mod service;
mod waiters;
