//! Code generation for build scripts (feature `build`): a prost-build `ServiceGenerator`
//! that turns each protobuf `service` into a server trait, a `Service` adapter and a
//! client stub over a `Channel`.
//!
//! For `service KvService { rpc Get(GetRequest) returns (GetResponse); }` in package
//! `raftkv.kv` it emits:
//!
//! ```text
//! pub const KV_SERVICE_NAME: &str = "raftkv.kv.KvService";
//! pub trait KvService: Send + Sync + 'static {
//!     fn get(&self, request: GetRequest, reply: ::rpc_framework::Reply<GetResponse>);
//! }
//! pub struct KvServiceServer<T: KvService>      // ::new(T), ::from_arc(Arc<T>); impl Service
//! #[derive(Clone, Debug)] pub struct KvServiceClient   // ::new(Channel), .channel()
//! impl KvServiceClient {
//!     pub fn get(&self, &GetRequest, &CallOptions) -> Result<GetResponse, RpcError>;
//!     pub fn get_async(&self, &GetRequest, &CallOptions,
//!                      impl FnOnce(Result<GetResponse, RpcError>) + Send + 'static);
//!     pub fn get_one_way(&self, &GetRequest) -> Result<(), RpcError>;  // no reply
//! }
//! ```
//!
//! Invariants: generated code names everything by absolute path (`::rpc_framework`,
//! `::prost`, `::std`), documents every public item, and compiles without warnings under
//! the workspace lints. Streaming rpcs are not supported and become a `compile_error!`.

use std::fmt::Write as _;

/// Generates server traits and client stubs; plug it into `prost_build::Config`:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = prost_build::Config::new();
/// config.service_generator(Box::new(rpc_framework::build::ServiceGenerator::new()));
/// config.compile_protos(&["proto/echo.proto"], &["proto"])?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct ServiceGenerator;

impl ServiceGenerator {
    /// A generator with default settings.
    pub fn new() -> Self {
        ServiceGenerator
    }
}

impl prost_build::ServiceGenerator for ServiceGenerator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let names = ServiceNames::of(&service);
        for method in &service.methods {
            if method.client_streaming || method.server_streaming {
                let _ = writeln!(
                    buf,
                    "compile_error!(\"rpc-framework does not support streaming rpc {}.{}\");",
                    names.full, method.proto_name
                );
                return;
            }
        }
        generate_name_const(&service, &names, buf);
        generate_server_trait(&service, &names, buf);
        generate_server_adapter(&service, &names, buf);
        generate_client(&service, &names, buf);
    }
}

/// The identifiers derived from one service.
struct ServiceNames {
    /// `KvService`
    rust: String,
    /// `raftkv.kv.KvService`
    full: String,
    /// `KV_SERVICE_NAME`
    name_const: String,
}

impl ServiceNames {
    fn of(service: &prost_build::Service) -> ServiceNames {
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        ServiceNames {
            rust: service.name.clone(),
            full,
            name_const: format!("{}_NAME", screaming_snake(&service.name)),
        }
    }
}

fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower_or_digit = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower_or_digit {
            out.push('_');
        }
        previous_lower_or_digit = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_uppercase());
    }
    out
}

/// The method name without a raw-identifier prefix, for building other identifiers.
fn bare_name(method: &prost_build::Method) -> &str {
    method.name.trim_start_matches("r#")
}

fn doc_lines(comments: &prost_build::Comments, indent: &str, buf: &mut String) {
    for line in comments.leading.iter().chain(&comments.trailing) {
        let line = line.trim_end();
        if line.is_empty() {
            let _ = writeln!(buf, "{indent}///");
        } else {
            let _ = writeln!(
                buf,
                "{indent}///{}{}",
                if line.starts_with(' ') { "" } else { " " },
                line
            );
        }
    }
}

fn generate_name_const(service: &prost_build::Service, names: &ServiceNames, buf: &mut String) {
    let _ = writeln!(
        buf,
        "/// Fully-qualified name of the `{}` service.\npub const {}: &str = \"{}\";\n",
        service.proto_name, names.name_const, names.full
    );
}

fn generate_server_trait(service: &prost_build::Service, names: &ServiceNames, buf: &mut String) {
    doc_lines(&service.comments, "", buf);
    if service.comments.leading.is_empty() && service.comments.trailing.is_empty() {
        let _ = writeln!(buf, "/// The server side of `{}`.", names.full);
    }
    let _ = writeln!(buf, "///");
    let _ = writeln!(
        buf,
        "/// Each method must complete its `reply` exactly once, from any thread, at any later\n\
         /// time (dropping it answers `Internal`). Host it with `{}Server`.",
        names.rust
    );
    let _ = writeln!(buf, "pub trait {}: Send + Sync + 'static {{", names.rust);
    for method in &service.methods {
        doc_lines(&method.comments, "    ", buf);
        if method.comments.leading.is_empty() && method.comments.trailing.is_empty() {
            let _ = writeln!(buf, "    /// Handles `{}`.", method.proto_name);
        }
        let _ = writeln!(
            buf,
            "    fn {}(&self, request: {}, reply: ::rpc_framework::Reply<{}>);",
            method.name, method.input_type, method.output_type
        );
    }
    let _ = writeln!(buf, "}}\n");
}

fn generate_server_adapter(service: &prost_build::Service, names: &ServiceNames, buf: &mut String) {
    let rust = &names.rust;
    let _ = writeln!(
        buf,
        r#"/// Hosts a `{rust}` implementation on an `rpc_framework::Provider`.
pub struct {rust}Server<T: {rust}> {{
    inner: ::std::sync::Arc<T>,
}}

impl<T: {rust}> {rust}Server<T> {{
    /// Wraps an implementation.
    pub fn new(inner: T) -> Self {{
        Self::from_arc(::std::sync::Arc::new(inner))
    }}

    /// Wraps a shared implementation.
    pub fn from_arc(inner: ::std::sync::Arc<T>) -> Self {{
        {rust}Server {{ inner }}
    }}
}}

impl<T: {rust}> ::std::fmt::Debug for {rust}Server<T> {{
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{
        f.write_str("{rust}Server")
    }}
}}
"#
    );
    generate_service_impl(service, names, buf);
}

fn generate_service_impl(service: &prost_build::Service, names: &ServiceNames, buf: &mut String) {
    let rust = &names.rust;
    let _ = writeln!(
        buf,
        r#"impl<T: {rust}> ::rpc_framework::Service for {rust}Server<T> {{
    fn name(&self) -> &'static str {{
        {name_const}
    }}

    fn methods(&self) -> &'static [&'static str] {{
        &[{method_list}]
    }}

    fn call(
        &self,
        method: &str,
        request: ::rpc_framework::bytes::Bytes,
        responder: ::rpc_framework::Responder,
    ) {{
        match method {{"#,
        name_const = names.name_const,
        method_list = service
            .methods
            .iter()
            .map(|m| format!("\"{}\"", m.proto_name))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for method in &service.methods {
        let _ = writeln!(
            buf,
            r#"            "{proto_name}" => match <{input} as ::prost::Message>::decode(request) {{
                Ok(request) => self.inner.{name}(request, ::rpc_framework::Reply::new(responder)),
                Err(e) => responder.respond(Err(::rpc_framework::Status::invalid_argument(
                    ::std::format!("{full}.{proto_name}: request does not decode: {{e}}"),
                ))),
            }},"#,
            proto_name = method.proto_name,
            input = method.input_type,
            name = method.name,
            full = names.full,
        );
    }
    let _ = writeln!(
        buf,
        r#"            other => responder.respond(Err(::rpc_framework::Status::unimplemented(
                ::std::format!("{full} has no method {{other:?}}"),
            ))),
        }}
    }}
}}
"#,
        full = names.full
    );
}

fn generate_client(service: &prost_build::Service, names: &ServiceNames, buf: &mut String) {
    let rust = &names.rust;
    let _ = writeln!(
        buf,
        r#"/// Client stub for `{full}` over an `rpc_framework::Channel`.
#[derive(Clone, Debug)]
pub struct {rust}Client {{
    channel: ::rpc_framework::Channel,
}}

impl {rust}Client {{
    /// A stub calling through `channel`.
    pub fn new(channel: ::rpc_framework::Channel) -> Self {{
        {rust}Client {{ channel }}
    }}

    /// The channel underneath.
    pub fn channel(&self) -> &::rpc_framework::Channel {{
        &self.channel
    }}
"#,
        full = names.full
    );
    for method in &service.methods {
        generate_client_method(method, names, buf);
    }
    let _ = writeln!(buf, "}}\n");
}

fn generate_client_method(method: &prost_build::Method, names: &ServiceNames, buf: &mut String) {
    let _ = writeln!(
        buf,
        r#"    /// Calls `{proto_name}` and blocks until the reply, an error or the deadline.
    pub fn {name}(
        &self,
        request: &{input},
        options: &::rpc_framework::CallOptions,
    ) -> ::std::result::Result<{output}, ::rpc_framework::RpcError> {{
        let body = ::prost::Message::encode_to_vec(request);
        let reply = self.channel.call({name_const}, "{proto_name}", body.into(), options)?;
        <{output} as ::prost::Message>::decode(reply)
            .map_err(|e| ::rpc_framework::RpcError::Decode(e.to_string()))
    }}

    /// Starts `{proto_name}` without blocking; `done` gets the result on the channel's I/O
    /// thread (keep it quick), or on this thread if the call fails before it is queued.
    pub fn {bare}_async(
        &self,
        request: &{input},
        options: &::rpc_framework::CallOptions,
        done: impl FnOnce(::std::result::Result<{output}, ::rpc_framework::RpcError>)
            + Send
            + 'static,
    ) {{
        let body = ::prost::Message::encode_to_vec(request);
        self.channel.call_async({name_const}, "{proto_name}", body.into(), options, move |reply| {{
            done(reply.and_then(|reply| {{
                <{output} as ::prost::Message>::decode(reply)
                    .map_err(|e| ::rpc_framework::RpcError::Decode(e.to_string()))
            }}))
        }});
    }}

    /// Sends `{proto_name}` one-way: the server runs the handler and discards its reply
    /// (failures are only logged there). `Ok` means the request was handed to the
    /// connection, not that it arrived. Does not wait for the server.
    pub fn {bare}_one_way(
        &self,
        request: &{input},
    ) -> ::std::result::Result<(), ::rpc_framework::RpcError> {{
        let body = ::prost::Message::encode_to_vec(request);
        self.channel.send_one_way({name_const}, "{proto_name}", &body)
    }}
"#,
        proto_name = method.proto_name,
        name = method.name,
        bare = bare_name(method),
        input = method.input_type,
        output = method.output_type,
        name_const = names.name_const,
    );
}

#[cfg(test)]
mod tests {
    use super::screaming_snake;

    #[test]
    fn service_names_become_screaming_snake() {
        assert_eq!(screaming_snake("KvService"), "KV_SERVICE");
        assert_eq!(screaming_snake("RaftService"), "RAFT_SERVICE");
        assert_eq!(screaming_snake("Echo2Service"), "ECHO2_SERVICE");
        assert_eq!(screaming_snake("HTTPGateway"), "HTTPGATEWAY");
    }
}
