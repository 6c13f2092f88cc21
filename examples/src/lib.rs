//! Shared code of the runnable examples in `examples/`: the generated code of
//! `proto/echo.proto` (messages, the `EchoService` server trait and client stub) and its
//! implementation, so that the example binary and the tests use the same service.

pub mod echo {
    //! `demo.echo`: messages, `EchoService` trait, `EchoServiceServer`, `EchoServiceClient`.
    #![allow(missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/demo.echo.rs"));
}

pub mod echo_impl;
