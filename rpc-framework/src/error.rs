//! `RpcError`: every way a client call can fail, split by what the caller should do
//! about it (retry now, back off, give up, or treat the outcome as unknown).

use crate::Status;

/// Why a call on a `Channel` failed.
///
/// The variants a caller acts on differently are kept apart: `Unreachable` (back off; the
/// request was definitely not sent), `Timeout`/`Disconnected` (the outcome is unknown if
/// `sent`), `Remote` (the server answered with a status).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The deadline passed first; if `sent`, the server may have executed the call.
    #[error("deadline exceeded (request sent: {sent})")]
    Timeout {
        /// Whether any byte of the request reached the socket.
        sent: bool,
    },
    /// Could not connect (or the last connect attempt failed and the channel is backing
    /// off); the request was definitely not sent.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The connection was lost while the call was pending.
    #[error("connection lost while the call was pending (request sent: {sent})")]
    Disconnected {
        /// Whether any byte of the request reached the socket.
        sent: bool,
    },
    /// The server answered with an error status.
    #[error("remote error: {0}")]
    Remote(Status),
    /// The response body did not decode as the expected message.
    #[error("response does not decode: {0}")]
    Decode(String),
    /// The request frame would exceed the configured maximum; nothing was sent.
    #[error("request frame of {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    FrameTooLarge {
        /// The size the frame would have had.
        size_bytes: usize,
        /// The configured maximum.
        max_bytes: usize,
    },
    /// A client-side limit was hit (pending calls or queued request bytes on this channel);
    /// nothing was sent. Retry after some calls complete.
    #[error("channel overloaded: {0}")]
    Overloaded(String),
    /// The channel was shut down.
    #[error("the channel was shut down")]
    Shutdown,
}

impl RpcError {
    /// Whether the server may have executed the call, i.e. the outcome is unknown (or, for
    /// `Remote`, the handler ran and chose to fail). `false` means it certainly did not run.
    ///
    /// `Remote` counts as "may have executed" except for `Unimplemented`, which the
    /// framework answers before any handler runs.
    pub fn may_have_executed(&self) -> bool {
        match self {
            RpcError::Timeout { sent } | RpcError::Disconnected { sent } => *sent,
            RpcError::Remote(status) => status.code != crate::Code::Unimplemented,
            RpcError::Decode(_) => true,
            RpcError::Unreachable(_)
            | RpcError::FrameTooLarge { .. }
            | RpcError::Overloaded(_)
            | RpcError::Shutdown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsent_failures_are_definitely_not_executed() {
        assert!(RpcError::Timeout { sent: true }.may_have_executed());
        assert!(!RpcError::Timeout { sent: false }.may_have_executed());
        assert!(RpcError::Disconnected { sent: true }.may_have_executed());
        assert!(!RpcError::Disconnected { sent: false }.may_have_executed());
        assert!(!RpcError::Unreachable("refused".into()).may_have_executed());
        assert!(!RpcError::Remote(Status::unimplemented("x")).may_have_executed());
        assert!(RpcError::Remote(Status::internal("x")).may_have_executed());
        assert!(RpcError::Decode("bad".into()).may_have_executed());
        assert!(!RpcError::Shutdown.may_have_executed());
    }
}
