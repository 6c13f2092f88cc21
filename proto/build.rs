//! Generates the messages, server traits and client stubs of raftkv's services.
//! protoc comes from the protoc-bin-vendored crate, so a fresh machine needs only cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/raft.proto", "proto/kv.proto", "proto/kv_log.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.bytes(["."]);
    config.service_generator(Box::new(rpc_framework::build::ServiceGenerator::new()));
    config.compile_protos(&protos, &["proto"])?;
    Ok(())
}
