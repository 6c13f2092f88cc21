//! clerk: the client library of raftkv, and the `kvctl` CLI built on it.
//!
//! ```no_run
//! use clerk::{Clerk, ClerkConfig};
//! let clerk = Clerk::new(ClerkConfig::new(vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()]))?;
//! clerk.put("greeting", "hello")?;
//! clerk.append("greeting", ", world")?;
//! assert_eq!(clerk.get("greeting")?.as_deref(), Some(&b"hello, world"[..]));
//! assert!(clerk.cas("greeting", "hello, world", "bye")?);
//! # Ok::<(), clerk::ClerkError>(())
//! ```
//!
//! [`loadgen`] is the closed-loop load generator behind `kvctl bench`, shared with the
//! etcd load generator under `bench/etcd-load/` so both systems are measured alike.

#![deny(missing_docs)]

mod clerk;
mod error;
mod leader;
pub mod loadgen;
mod retry;
mod session;

pub use crate::clerk::{Clerk, ClerkConfig};
pub use error::{ClerkError, ErrorKind};
pub use proto::kv::{ReadMode, StatusResponse};
