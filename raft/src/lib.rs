//! raftkv's consensus crate (skeleton).

#![deny(missing_docs)]

pub mod config;
pub mod core;
pub mod error;
pub mod message;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod storage;
pub mod types;

pub use config::Config;
pub use error::{ConfigError, ProposeError, StorageError};
pub use message::{Message, MessageBody};
pub use types::{
    Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term,
};
