//! kvserver: the key-value state machine and server (skeleton; filled in by the KV issue).

#![deny(missing_docs)]
