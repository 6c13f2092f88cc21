//! The clerk's error: what went wrong, and whether the operation certainly did not
//! take effect (`definite`) or might have (`definite == false`, e.g. the deadline passed
//! while a write may still commit).

use std::fmt;

/// What kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The operation's deadline passed.
    Timeout,
    /// The request is invalid (key or value too large, ...). Retrying will not help.
    InvalidArgument,
    /// The client's session was evicted by the servers.
    SessionExpired,
    /// No server could be used (bad configuration, no endpoints).
    Unavailable,
}

/// A failed clerk operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ClerkError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// `true`: the operation certainly did not take effect. `false`: it may have.
    pub definite: bool,
    /// Details, on one line.
    pub message: String,
}

impl ClerkError {
    pub(crate) fn new(kind: ErrorKind, definite: bool, message: impl Into<String>) -> ClerkError {
        ClerkError {
            kind,
            definite,
            message: message.into(),
        }
    }
}

impl fmt::Display for ClerkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.definite {
            "not applied"
        } else {
            "outcome unknown"
        };
        write!(f, "{} ({outcome})", self.message)
    }
}
