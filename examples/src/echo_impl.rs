//! `Echo`: the example's implementation of the generated `EchoService` trait. Handlers
//! answer at once, so the service can be registered inline (on the server's event loop).

use rpc_framework::{Reply, Status};

use crate::echo::{
    ComputeRequest, ComputeResponse, EchoRequest, EchoResponse, EchoService, Operation,
};

/// Echoes text and does checked integer arithmetic.
#[derive(Debug, Default)]
pub struct Echo;

impl EchoService for Echo {
    fn echo(&self, request: EchoRequest, reply: Reply<EchoResponse>) {
        reply.ok(EchoResponse { text: request.text });
    }

    fn compute(&self, request: ComputeRequest, reply: Reply<ComputeResponse>) {
        let (left, right) = (request.left, request.right);
        let result = match request.operation() {
            Operation::Add => left.checked_add(right),
            Operation::Subtract => left.checked_sub(right),
            Operation::Multiply => left.checked_mul(right),
            Operation::Divide => left.checked_div(right),
        };
        reply.send(
            result
                .map(|result| ComputeResponse { result })
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "{:?} of {left} and {right} overflows or divides by zero",
                        request.operation()
                    ))
                }),
        );
    }
}
