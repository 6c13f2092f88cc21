//! The outcome of a call as the server states it: a `Code` plus a message.
//!
//! Codes use gRPC's numbering on the wire (`Code::as_u32`), so they read the same in
//! logs and packet dumps as anywhere else; an unknown number decodes as `Code::Unknown`
//! rather than failing.

use std::fmt;

/// Why a call failed (or `Ok`). `u32` on the wire, gRPC numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Not an error.
    Ok,
    /// The operation was cancelled, typically by the caller.
    Cancelled,
    /// An error with no better code (also: a number this version does not know).
    Unknown,
    /// The request is invalid regardless of server state (e.g. it does not decode).
    InvalidArgument,
    /// The deadline expired before the operation completed.
    DeadlineExceeded,
    /// A requested entity was not found.
    NotFound,
    /// A limit was hit (pending calls, queue capacity, sizes).
    ResourceExhausted,
    /// The system is not in a state required for the operation.
    FailedPrecondition,
    /// The service or method is not implemented by this server.
    Unimplemented,
    /// An invariant broke on the server (e.g. a handler dropped its responder).
    Internal,
    /// The service is unavailable right now (overloaded, shutting down); retry later.
    Unavailable,
}

impl Code {
    /// The wire number (gRPC numbering).
    pub fn as_u32(self) -> u32 {
        match self {
            Code::Ok => 0,
            Code::Cancelled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
        }
    }

    /// The code for a wire number; numbers this version does not know become `Unknown`.
    pub fn from_u32(value: u32) -> Code {
        match value {
            0 => Code::Ok,
            1 => Code::Cancelled,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A code plus a human-readable message: what a handler returns instead of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Why the call failed.
    pub code: Code,
    /// Details for humans; not meant to be parsed.
    pub message: String,
}

macro_rules! status_constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    status_constructors! {
        /// `Code::Cancelled`.
        cancelled => Cancelled;
        /// `Code::Unknown`.
        unknown => Unknown;
        /// `Code::InvalidArgument`.
        invalid_argument => InvalidArgument;
        /// `Code::DeadlineExceeded`.
        deadline_exceeded => DeadlineExceeded;
        /// `Code::NotFound`.
        not_found => NotFound;
        /// `Code::ResourceExhausted`.
        resource_exhausted => ResourceExhausted;
        /// `Code::FailedPrecondition`.
        failed_precondition => FailedPrecondition;
        /// `Code::Unimplemented`.
        unimplemented => Unimplemented;
        /// `Code::Internal`.
        internal => Internal;
        /// `Code::Unavailable`.
        unavailable => Unavailable;
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_number() {
        let all = [
            Code::Ok,
            Code::Cancelled,
            Code::Unknown,
            Code::InvalidArgument,
            Code::DeadlineExceeded,
            Code::NotFound,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
        ];
        for code in all {
            assert_eq!(Code::from_u32(code.as_u32()), code);
        }
        assert_eq!(Code::from_u32(999), Code::Unknown);
    }

    #[test]
    fn display_names_code_and_message() {
        assert_eq!(Status::not_found("k1").to_string(), "NotFound: k1");
    }
}
