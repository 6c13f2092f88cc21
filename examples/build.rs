//! Generates the example services' messages, server traits and client stubs (protoc from
//! protoc-bin-vendored).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/echo.proto"];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.service_generator(Box::new(rpc_framework::build::ServiceGenerator::new()));
    config.compile_protos(&protos, &["proto"])?;
    Ok(())
}
