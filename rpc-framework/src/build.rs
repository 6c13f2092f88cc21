//! Code generation (skeleton): a prost-build service generator.

/// Generates server traits and client stubs for protobuf services (skeleton: emits nothing yet).
#[derive(Debug, Default)]
pub struct ServiceGenerator;

impl ServiceGenerator {
    /// A generator with default settings.
    pub fn new() -> Self {
        ServiceGenerator
    }
}

impl prost_build::ServiceGenerator for ServiceGenerator {
    fn generate(&mut self, _service: prost_build::Service, _buf: &mut String) {}
}
