//! rpc-framework: length-prefixed protobuf RPC over mio. (Skeleton; filled in by the RPC issue.)

#![deny(missing_docs)]

#[cfg(feature = "build")]
pub mod build;
