//! Why a load run could not be carried out (as opposed to operations that failed during
//! it, which the report counts).

/// A load run that could not start or finish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The [`super::LoadSpec`] (or the number of targets) is unusable.
    #[error("invalid load spec: {0}")]
    InvalidSpec(String),
    /// A client thread could not be started.
    #[error("could not start client thread {client}: {reason}")]
    Spawn {
        /// Index of the client.
        client: usize,
        /// The OS error.
        reason: String,
    },
    /// A client thread panicked (a bug in a [`super::LoadTarget`]).
    #[error("client thread {client} panicked")]
    ClientPanicked {
        /// Index of the client.
        client: usize,
    },
    /// The prefill could not write a key.
    #[error("prefill failed at key {key_index}: {reason}")]
    Prefill {
        /// Index of the key in the key space.
        key_index: u64,
        /// The target's error.
        reason: String,
    },
}
