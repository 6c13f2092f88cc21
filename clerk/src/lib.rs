//! clerk: raftkv's client library (skeleton; filled in by the KV issue).

#![deny(missing_docs)]
